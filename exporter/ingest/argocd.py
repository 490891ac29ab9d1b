# SPDX-License-Identifier: Apache-2.0
"""Ingesting Argo CD Applications: deployments, failed syncs and health, into the store.

Daemon layer: the Argo CD source says what an Application looks like now; this module decides what
that means (docs/semantics.md, "Argo CD") and writes it in one transaction per observation. Every
write is keyed (history entries by ``(uid, id)``, operations by ``(uid, startedAt)``, failures by
natural keys), so a relist, a restart or a replayed event converges on the same rows.

``ArgoIngester`` orchestrates; the rules it applies live beside it: what a health transition
means (``ingest.argocd_health``), an app that is gone (``ingest.argocd_deletions``), and the
history-only rollback rule (``ingest.argocd_rollbacks``).
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
from exporter.core.correlate import image_version
from exporter.errors import SourceError
from exporter.ingest import unify
from exporter.ingest.argocd_deletions import DELETED as DELETED  # re-exported: named here before the split
from exporter.ingest.argocd_deletions import forget_app
from exporter.ingest.argocd_health import degraded, health_changed_at, restore
from exporter.ingest.argocd_rollbacks import EARLIER_REVISION as EARLIER_REVISION  # re-exported, as DELETED
from exporter.ingest.argocd_rollbacks import history_rollback
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
        return forget_app(self.store, uid, at, why=why)

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
            changed_at = health_changed_at(app, now)
            tx.add_argocd_health(app.uid, changed_at.timestamp(), health, pair)
            log.info("argocd.health", app=app.name, health=health, was=prev.health if prev else None,
                     at=changed_at.isoformat(), observed=app.health_since is None)  # fmt: skip
            if health == "Healthy":
                # first sight of a Healthy app without a transition time: healthy since before anything we know of
                first_unknown = prev is None and app.health_since is None
                healthy_since = 0.0 if first_unknown else changed_at.timestamp()
                out.restores += restore(tx, pair, FailureReason.DEGRADED, changed_at.timestamp())
            elif health == "Degraded" and degraded(tx, self.cfg, app, pair=pair, at=changed_at):
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
            history_rollback(tx, self.cfg, app, entry=entry, revision=revision, dep_id=dep_id)
        tx.add_argocd_history(
            app.uid, entry.id, app.name, pair, revision, entry.started_at.timestamp() if entry.started_at else None,
            entry.deployed_at.timestamp(), dep_id,
        )  # fmt: skip

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
