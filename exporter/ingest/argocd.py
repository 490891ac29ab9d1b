# SPDX-License-Identifier: Apache-2.0
"""Ingesting Argo CD Applications: deployments, failed syncs and health, into the store.

Daemon layer: the Argo CD source says what an Application looks like now; this module decides what
that means (docs/semantics.md, "Argo CD") and writes it in one transaction per observation. Every
write is keyed (history entries by ``(uid, id)``, operations by ``(uid, startedAt)``, failures by
natural keys), so a relist, a restart or a replayed event converges on the same rows.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import structlog

from exporter import keys
from exporter.core.correlate import Transition, image_version, rollback_kind, within
from exporter.errors import SourceError
from exporter.ingest import unify
from exporter.ingest.restores import restore_open
from exporter.model import Deployment, DeploymentSource, FailureReason, Skip
from exporter.settings import AppMapping, Config
from exporter.sources.git.repository import Git
from exporter.store import ArgoApp, Store, Tx


class Repos(Protocol):
    """The open GitOps repositories (``ingest.repos.Repos``), to ask git about ancestry."""

    def get(self, repo: str, key: str, refresh: bool) -> Git: ...


if TYPE_CHECKING:  # annotations only: the kubernetes client loads with the watch, not with this module
    from exporter.sources.argocd.apps import App, HistoryEntry, Operation

log = structlog.get_logger(__name__)

SOURCE = "argocd"
EARLIER_REVISION = "earlier_history_revision"  # the detail of a rollback judged from Argo CD's history alone
DELETED = "Deleted"  # the status of the health transition recorded when an app is gone


def map_app(app: App, mapping: AppMapping) -> tuple[str, str] | None:
    """(service, environment) of an Application, or ``None``; see ``AppMapping`` for the order."""
    service: str | None = None
    environment: str | None = None
    if app.name in mapping.apps:
        return mapping.apps[app.name]
    if mapping.service_label:
        service = app.labels.get(mapping.service_label) or None
    if mapping.environment_label:
        environment = app.labels.get(mapping.environment_label) or None
    candidates: list[tuple[re.Pattern[str], str | None]] = [(t, app.name) for t in mapping.name_templates]
    if mapping.destination_namespace is not None:
        candidates.append((mapping.destination_namespace, app.destination_namespace))
    for regex, text in candidates:
        if service and environment:
            break
        m = regex.match(text or "")
        if m is None:
            continue
        groups = m.groupdict()
        service = service or groups.get("service")
        environment = environment or groups.get("environment")
    if service and environment:
        return service, environment
    return None


@dataclass
class Outcome:
    """What one observation changed, for logs and for deciding whether to recompute."""

    deployments: int = 0
    failures: int = 0
    restores: int = 0
    gaps: int = 0
    changed: bool = False


class ArgoIngester:
    """Turns observed Applications into rows; thread-safe (one lock, one transaction per app)."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        repos: Repos | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.repos = repos
        self._repo_keys = tuple(g.key for g in cfg.gitops)  # GitOps rows are found by their natural keys
        self.clock = clock or (lambda: datetime.now(UTC))
        self._seen: dict[str, tuple[object, ...]] = {}
        self._lock = threading.Lock()

    def apply(self, app: App) -> Outcome:
        """Record one observation of ``app``; a repeat of the last one (a ``reconciledAt`` tick) is a no-op."""
        with self._lock:
            fp = app.fingerprint()
            if self._seen.get(app.uid) == fp:
                return Outcome()
            pair = self._pair(app)
            with self.store.transaction() as tx:
                if pair is None:
                    out = Outcome()
                    if tx.record_skip(Skip(SOURCE, "unmapped_app", app.uid, f"{app.namespace}/{app.name}")):
                        log.warning("argocd.unmapped_app", app=app.name, namespace=app.namespace)
                        out.changed = True
                else:
                    out = self._apply(tx, app, pair)
            self._seen[app.uid] = fp
            return out

    def deleted(self, app: App) -> bool:
        """A watched ``DELETED`` event: the Application is gone (``forget``), at its
        ``deletionTimestamp`` when it has one (a deletion held by finalizers), else now."""
        at = app.deletion_requested or self.clock()
        with self._lock:
            return self._forget(app.uid, min(at, self.clock()), why="deleted")

    def listed(self, apps: Sequence[App], *, namespace: str | None) -> Outcome:
        """A complete list of one scope (``namespace``, ``None`` for all): apply each app, then
        forget every stored app of the scope that the list lacks. A list is the whole truth for
        its scope (namespace and label selector): an app missing from it was deleted while the
        exporter was not watching (stopped, disconnected, or before a ``410 Gone``)."""
        total = Outcome()
        for app in apps:
            out = self.apply(app)
            total.deployments += out.deployments
            total.failures += out.failures
            total.restores += out.restores
            total.gaps += out.gaps
            total.changed |= out.changed
        present = {a.uid for a in apps if self._pair(a) is not None}  # one that maps to nothing now is gone too
        with self._lock:
            now = self.clock()
            for uid in self.store.argocd_live_uids(namespace):
                if uid not in present and self._forget(uid, now, why="missing_from_list"):
                    total.changed = True
        return total

    def _forget(self, uid: str, at: datetime, *, why: str) -> bool:
        """The app is gone: its rows stay (they happened), its live state stops counting, and
        its own open failures (failed syncs, degradations) are restored at ``at``. The caller
        holds the lock. False when it was already known to be gone (or never stored)."""
        self._seen.pop(uid, None)
        with self.store.transaction() as tx:
            app = tx.argocd_app(uid)
            if app is None or app.deleted or not tx.mark_argocd_app_deleted(uid):
                return False
            pair = (app.service, app.environment)
            tx.add_argocd_health(uid, at.timestamp(), DELETED, pair)
            restored = tx.restore_app_failures(
                keys.argocd_failure_prefixes(uid), at.timestamp(), note=f"restored: application deleted ({why})"
            )
        log.info("argocd.app_deleted", app=app.name, uid=uid, why=why, restored_failures=restored)
        return True

    # -- one app ---------------------------------------------------------------------------------

    def _pair(self, app: App) -> tuple[str, str] | None:
        """The app's (service, environment) after name normalisation; ``None`` when it maps to
        nothing or to an environment that is not configured (``cert-manager`` under the
        ``{service}-{environment}`` template is not service ``cert`` in environment ``manager``)."""
        pair = map_app(app, self.cfg.argocd.mapping)
        if pair is None:
            return None
        service, environment = self.cfg.names.service(pair[0]), self.cfg.names.environment(pair[1])
        if environment not in self.cfg.environments:
            log.debug("argocd.unknown_environment", app=app.name, environment=environment)
            return None
        return service, environment

    def _apply(self, tx: Tx, app: App, pair: tuple[str, str]) -> Outcome:
        out = Outcome(changed=True)
        now = self.clock()
        prev = tx.argocd_app(app.uid)
        known_max = prev.max_history_id if prev else None
        new = [e for e in app.history if not tx.has_argocd_history(app.uid, e.id)]
        if known_max is not None:
            later = [e for e in new if e.id > known_max]
            if later and later[0].id > known_max + 1 and tx.add_argocd_gap(app.uid, known_max + 1, later[0].id - 1):
                out.gaps += later[0].id - known_max - 1
                log.warning("argocd.history_gap", app=app.name, lost_from=known_max + 1, lost_to=later[0].id - 1)
        latest_id = app.history[-1].id if app.history else None
        for entry in new:
            self._history(tx, app, pair, entry, entry.id == latest_id)
            out.deployments += 1
        op = app.operation
        sync_failing = prev.sync_failing if prev else False
        if op is not None and op.completed:
            if tx.add_argocd_operation(
                app.uid, app.name, pair, op.started_at.timestamp(), op.phase,
                op.finished_at.timestamp() if op.finished_at else None, op.retry_count, op.revision, op.message,
            ):  # fmt: skip
                log.info("argocd.sync_completed", app=app.name, phase=op.phase, retries=op.retry_count)
                if op.failed:
                    self._sync_failed(tx, app, pair, op)
                    out.failures += 1
            sync_failing = op.failed
        health = app.health
        healthy_since = prev.healthy_since if prev else None
        if health != (prev.health if prev else None) and health is not None:
            changed_at = self._health_changed_at(app, now)
            tx.add_argocd_health(app.uid, changed_at.timestamp(), health, pair)
            log.info("argocd.health", app=app.name, health=health, was=prev.health if prev else None,
                     at=changed_at.isoformat(), observed=app.health_since is None)  # fmt: skip
            if health == "Healthy":
                # first sight of a Healthy app without a transition time: healthy since before anything we know of
                first_unknown = prev is None and app.health_since is None
                healthy_since = 0.0 if first_unknown else changed_at.timestamp()
                out.restores += self._restore(tx, pair, FailureReason.DEGRADED, changed_at.timestamp())
            elif health == "Degraded" and self._degraded(tx, app, pair, changed_at):
                out.failures += 1
            if health != "Healthy":
                healthy_since = None
        if op is not None and op.completed and op.phase == "Succeeded" and health == "Healthy":
            # restored by the next Succeeded sync whose app is Healthy: when both are true
            finished = op.finished_at.timestamp() if op.finished_at else now.timestamp()
            at = max(finished, healthy_since or finished)
            by = tx.argocd_history_deployment(app.uid, op.started_at.timestamp())
            out.restores += restore_open(tx, pair, FailureReason.SYNC_FAILED, finished, at, by)
        ids = [i for i in (known_max, latest_id) if i is not None]
        max_id = max(ids) if ids else None
        tx.upsert_argocd_app(
            ArgoApp(app.uid, app.name, *pair, max_id, health, healthy_since, sync_failing, False), app.namespace
        )
        return out

    def _version(self, app: App, pair: tuple[str, str], entry: HistoryEntry | None, op: Operation | None) -> str:
        pattern = self.cfg.argocd.image_pattern
        if op is not None and op.images:
            v = image_version(op.images, pair[0], pattern)
            if v:
                return v
        if entry is None or (app.history and entry.id == app.history[-1].id):
            v = image_version(app.images, pair[0], pattern)
            if v:
                return v
        rev = entry.revision_for(self.cfg.argocd.source_repo) if entry else (op.revision if op else None)
        return rev or "unknown"

    def _history(self, tx: Tx, app: App, pair: tuple[str, str], entry: HistoryEntry, latest: bool) -> None:
        revision = entry.revision_for(self.cfg.argocd.source_repo)
        at = entry.time.timestamp()
        same = unify.row_for_argocd_sync(tx, pair, revision, repo_keys=self._repo_keys) if revision else None
        in_effect: str | None = None
        if same is None and revision:
            same, in_effect = self._gitops_at(tx, pair, revision)
        if same is not None:
            tx.set_deployed_at(same.id, at)
            dep_id = same.id
            log.info("argocd.deployment_unified", app=app.name, history_id=entry.id, deployment=dep_id)
        else:
            op = app.operation
            matching_op = op if op is not None and entry.started_at and op.started_at == entry.started_at else None
            known = in_effect or (
                unify.gitops_version(tx, pair, revision, repo_keys=self._repo_keys) if revision else None
            )
            version = known or self._version(app, pair, entry if latest else None, matching_op)
            if known is None and not latest and matching_op is None:
                version = revision or "unknown"
            dep_id, _ = tx.add_deployment(
                natural_key=keys.argocd_deployment_key(app.uid, entry.id),
                service=pair[0],
                environment=pair[1],
                version=version,
                deployed_at=at,
                source=DeploymentSource.ARGOCD,
                manifest_repo=None,
                manifest_commit=revision,
                commit=None,
                message=f"Argo CD {app.namespace}/{app.name} history {entry.id}",
                baseline=tx.last_deployment(*pair) is None,
            )
            log.info("argocd.deployment", app=app.name, history_id=entry.id, version=version)
        if not self.cfg.gitops and revision:
            self._history_rollback(tx, app, entry, revision, dep_id)
        tx.add_argocd_history(
            app.uid, entry.id, app.name, pair, revision, entry.started_at.timestamp() if entry.started_at else None,
            entry.deployed_at.timestamp(), dep_id,
        )  # fmt: skip

    def _history_rollback(self, tx: Tx, app: App, entry: HistoryEntry, revision: str, dep_id: int) -> bool:
        """Without a GitOps repository (no ancestry to ask), a history entry whose revision differs
        from the previous entry's and equals an older entry's is a return to an earlier version
        (what ``argocd app rollback`` records): the previous entry's deployment failed, this one is
        rework, under the same age guard as every rollback (``rollback_min_age``)."""
        earlier = tx.argocd_history_before(app.uid, entry.id)
        if not earlier or earlier[0][1] in (None, revision) or earlier[0][2] is None:
            return False
        if revision not in {rev for _, rev, _ in earlier[1:]}:
            return False
        prev = tx.deployment(earlier[0][2])
        if prev is None or prev.id == dep_id:
            return False
        guard = Transition(prev.version, prev.deployed_at, revision, entry.time, "", is_ancestor_of_previous=True)
        if rollback_kind(guard, self.cfg.revert_pattern, self.cfg.rollback_min_age) is None:
            log.info("argocd.rollback_too_soon", app=app.name, history_id=entry.id, revision=revision)
            return False
        tx.add_failure(
            natural_key=keys.rollback_key(prev.id),
            service=prev.service,
            environment=prev.environment,
            reason=FailureReason.ROLLBACK,
            started_at=prev.deployed_at.timestamp(),
            deployment_id=prev.id,
            restored_at=max(entry.time.timestamp(), prev.deployed_at.timestamp()),
            restored_by=dep_id,
            detail=EARLIER_REVISION,
        )
        tx.mark_rework(dep_id)
        log.info("argocd.rollback", app=app.name, history_id=entry.id, revision=revision, failed=prev.id)
        return True

    def _gitops_at(self, tx: Tx, pair: tuple[str, str], revision: str) -> tuple[Deployment | None, str | None]:
        """``unify.gitops_in_effect`` on the configured GitOps repositories' clones; (None, None)
        when there are none, or when git fails (logged)."""
        cache = self.repos
        if cache is None or not self.cfg.gitops:
            return None, None
        repos = {g.key: g for g in self.cfg.gitops}

        def git_of(repo_key: str) -> Git | None:
            repo = repos.get(repo_key)
            return None if repo is None else cache.get(repo.repo, repo.key, refresh=False)

        try:
            return unify.gitops_in_effect(tx, pair, revision, git_of=git_of)
        except SourceError as exc:
            log.warning("argocd.unify_skipped", revision=revision, error=str(exc))
        return None, None

    def _sync_failed(self, tx: Tx, app: App, pair: tuple[str, str], op: Operation) -> None:
        """A final Failed/Error sync: the attempted deployment counts, and it failed."""
        started = op.started_at.timestamp()
        dep_id, _ = tx.add_deployment(
            natural_key=keys.argocd_failed_sync_deployment_key(app.uid, started),
            service=pair[0],
            environment=pair[1],
            version=(unify.gitops_version(tx, pair, op.revision, repo_keys=self._repo_keys) if op.revision else None)
            or self._version(app, pair, None, op),
            deployed_at=started,
            source=DeploymentSource.ARGOCD,
            manifest_repo=None,
            manifest_commit=op.revision,
            commit=None,
            message=f"Argo CD {app.namespace}/{app.name} sync {op.phase}: {op.message}"[:500],
            baseline=tx.last_deployment(*pair) is None,
        )
        tx.add_failure(
            natural_key=keys.sync_failed_key(app.uid, started),
            service=pair[0],
            environment=pair[1],
            reason=FailureReason.SYNC_FAILED,
            started_at=(op.finished_at or op.started_at).timestamp(),
            deployment_id=dep_id,
            detail=f"{op.phase} after {op.retry_count} retries: {op.message}"[:300],
        )
        log.warning("argocd.sync_failed", app=app.name, phase=op.phase, retries=op.retry_count)

    def _health_changed_at(self, app: App, now: datetime) -> datetime:
        """When the health status changed: ``status.health.lastTransitionTime`` (Argo CD 2.14+) when
        present, so a change seen late (after a restart or an outage) is timed when it happened;
        else ``now``, the observation. Never later than ``now`` (a controller clock ahead of ours)."""
        return min(app.health_since, now) if app.health_since is not None else now

    def _degraded(self, tx: Tx, app: App, pair: tuple[str, str], at: datetime) -> bool:
        """A Degraded transition at ``at`` fails the pair's latest deployment at or before it, when
        that deployment is at most ``failure_window`` older."""
        last = tx.deployment_before(*pair, at.timestamp())
        if last is None or not within(last.deployed_at, at, self.cfg.failure_window):
            log.info("argocd.degraded_unattributed", app=app.name)
            return False
        return tx.add_failure(
            natural_key=keys.degraded_key(app.uid, at.timestamp()),
            service=pair[0],
            environment=pair[1],
            reason=FailureReason.DEGRADED,
            started_at=at.timestamp(),
            deployment_id=last.id,
            detail=f"{app.name} turned Degraded",
        )

    def _restore(self, tx: Tx, pair: tuple[str, str], reason: FailureReason, at: float) -> int:
        n = 0
        last = tx.last_deployment(*pair)
        for f in tx.open_failures(*pair, reason):
            by = last.id if last is not None and last.deployed_at.timestamp() > f.started_at.timestamp() else None
            tx.restore_failure(f.id, max(at, f.started_at.timestamp()), by)
            n += 1
        return n
