# SPDX-License-Identifier: Apache-2.0
"""Ingesting GitHub deployments (the Deployments API): deployments, failed attempts and their restores.

For teams that record deployments in GitHub. Each configured repository's deployments are read
newest first down to the last one already read (the high-water mark, a cursor: deployment ids
grow with creation), then applied oldest first, one transaction each with the cursor, so a run
stopped by its budget or a fault resumes where it stopped. A deployment whose statuses are not
final yet (``queued``, ``pending``, ``in_progress``) is kept in ``github_deployments`` and read
again on every pass until it is final or ``pending_max_age`` old.

- The first ``success`` status is a deployment of (service, environment) at that status's time,
  of the deployment's ``sha`` (natural key ``github-deployment:<owner/name>:<id>``). When a GitOps
  (or Argo CD) deployment of the same pair and commit lies within ``match_window``, it is the
  same deployment: the existing row is claimed, and GitHub's time replaces a GitOps commit time
  (an Argo CD sync time stays). Otherwise a new row is written, and GitOps adopts it later
  (``ingest.unify``).
- A ``failure``/``error`` status before any success is a failed attempt: a deployment of its own,
  failed with reason ``deployment_failed`` from that status's time, restored by the pair's next
  deployment from any source that is not itself a failed attempt (as a failed Argo CD sync is).
- ``inactive`` alone (superseded before it finished) is final and records nothing.

docs/semantics.md ("GitHub deployments") is the contract.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from exporter import keys
from exporter.core.correlate import Transition
from exporter.errors import ErrorKind, SourceError
from exporter.ingest import unify
from exporter.ingest.repos import Repos
from exporter.ingest.restores import restore_open
from exporter.ingest.rollbacks import record_rollback
from exporter.model import Deployment, DeploymentSource, FailureReason, Skip, utc
from exporter.settings import GITHUB_REPO_PREFIX, Config, DeploymentRepo
from exporter.sources.github.client import Client
from exporter.sources.github.deployments import (
    FINAL_STATES,
    DeploymentStatus,
    GitHubDeployment,
    deployment_statuses,
    deployments,
)
from exporter.store import GitHubDeploymentRow, Store, Tx

log = structlog.get_logger(__name__)

SOURCE = "github"
FAILED_STATES = frozenset({"failure", "error"})


@dataclass
class DeploymentsResult:
    read: int = 0  # deployments read for the first time
    deployments: int = 0  # successes written as new rows
    matched: int = 0  # successes that were an existing deployment of another source
    failures: int = 0
    restores: int = 0
    waiting: int = 0  # not final yet: read again next pass
    expired: int = 0
    unmatched: int = 0
    stopped: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.deployments or self.matched or self.failures or self.restores or self.expired)


@dataclass(frozen=True)
class _Outcome:
    """What a deployment's statuses (oldest first) say."""

    state: str
    final: bool
    success: DeploymentStatus | None
    failure: DeploymentStatus | None


def outcome(statuses: Sequence[DeploymentStatus]) -> _Outcome:
    success = next((s for s in statuses if s.state == "success"), None)
    failure = next(
        (s for s in statuses if s.state in FAILED_STATES and (success is None or s.created_at <= success.created_at)),
        None,
    )
    state = statuses[-1].state if statuses else "pending"
    return _Outcome(state, any(s.state in FINAL_STATES for s in statuses), success, failure)


class DeploymentIngester:
    """Reads every configured repository's deployments; thread-safe per instance (one pass at a time)."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        client: Client,
        repos: Repos,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = cfg.github.deployments
        self.store = store
        self.client = client
        self.repos = repos
        self.clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()

    def poll(self, stop: threading.Event | None = None) -> DeploymentsResult:
        """One pass; raises ``SourceError`` on a GitHub fault (what was applied stays applied). A spent
        budget ends the pass normally with ``stopped``."""
        stop = stop or threading.Event()
        result = DeploymentsResult()
        with self._lock:
            try:
                for target in self.settings.repos:
                    if stop.is_set():
                        result.stopped = True
                        break
                    self._revisit(target, result)
                    self._read_new(target, result, stop)
            except SourceError as exc:
                if exc.kind != ErrorKind.BUDGET_EXHAUSTED:
                    raise
                result.stopped = True
            finally:
                with self.store.transaction() as tx:
                    result.restores += restore_failed_attempts(tx)
        return result

    # -- reading ----------------------------------------------------------------------------------

    def _environment(self, raw: str) -> str | None:
        env = self.settings.environments.get(raw) or self.cfg.names.environment(raw)
        return env if env in self.cfg.environments else None

    def _read_new(self, target: DeploymentRepo, result: DeploymentsResult, stop: threading.Event) -> None:
        cursor_name = f"github:deployments:{target.repo}"
        cursor = self.store.cursor(cursor_name)
        since = self.clock() - timedelta(seconds=self.settings.backfill)
        new = list(deployments(self.client, target.repo, int(cursor) if cursor else None, since))
        for d in reversed(new):  # oldest first, so the cursor only ever moves forward
            if stop.is_set():
                result.stopped = True
                return
            env = self._environment(d.environment)
            statuses = deployment_statuses(self.client, target.repo, d.id, conditional=False) if env else []
            with self.store.transaction() as tx:
                if env is None:
                    self._unknown_environment(tx, d, result)
                else:
                    self._apply(tx, target, d, env, statuses, result)
                tx.set_cursor(cursor_name, str(d.id))
            result.read += 1

    def _revisit(self, target: DeploymentRepo, result: DeploymentsResult) -> None:
        oldest = (self.clock() - timedelta(seconds=self.settings.pending_max_age)).timestamp()
        for row in self.store.open_github_deployments(target.repo):
            d = GitHubDeployment(row.repo, row.id, row.sha, "", row.environment, utc(row.created_at))
            if row.created_at < oldest:
                with self.store.transaction() as tx:
                    key = keys.github_deployment_key(row.repo, row.id)
                    if tx.record_skip(Skip(SOURCE, "deployment_unfinished", key, f"last state {row.state}")):
                        result.unmatched += 1
                    tx.upsert_github_deployment(dataclasses.replace(row, terminal=True))
                log.warning("github.deployment_unfinished", repo=row.repo, id=row.id, state=row.state)
                result.expired += 1
                continue
            statuses = deployment_statuses(self.client, target.repo, row.id, conditional=True)
            with self.store.transaction() as tx:
                self._apply(tx, target, d, row.environment, statuses, result, row)

    def _unknown_environment(self, tx: Tx, d: GitHubDeployment, result: DeploymentsResult) -> None:
        """Counted and logged once per repository and environment name, never per deployment."""
        key = keys.github_environment_key(d.repo, d.environment)
        if tx.record_skip(Skip(SOURCE, "unknown_environment", key, f"GitHub environment {d.environment!r}")):
            result.unmatched += 1
            log.warning("github.deployment_environment_unknown", repo=d.repo, environment=d.environment)

    # -- writing ----------------------------------------------------------------------------------

    def _apply(
        self,
        tx: Tx,
        target: DeploymentRepo,
        d: GitHubDeployment,
        env: str,
        statuses: Sequence[DeploymentStatus],
        result: DeploymentsResult,
        known: GitHubDeploymentRow | None = None,
    ) -> None:
        out = outcome(statuses)
        pair = (target.service, env)
        failed_id = known.failed_deployment_id if known else None
        dep_id = known.deployment_id if known else None
        if out.failure is not None and failed_id is None:
            failed_id = self._failed_attempt(tx, d, pair, out.failure)
            result.failures += 1
        if out.success is not None and dep_id is None:
            dep_id = self._succeeded(tx, target, d, pair, out.success, result)
        elif not out.final:
            result.waiting += 1
        tx.upsert_github_deployment(
            GitHubDeploymentRow(
                *(d.repo, d.id, target.service, env, d.sha),
                d.created_at.timestamp(),
                out.state,
                out.final,
                dep_id,
                failed_id,
            )
        )

    def _failed_attempt(self, tx: Tx, d: GitHubDeployment, pair: tuple[str, str], status: DeploymentStatus) -> int:
        """Mirrors a failed Argo CD sync: the attempt counts as a deployment and fails; no commit, so it
        is never the base of a later deployment's changes."""
        at = status.created_at.timestamp()
        dep_id, _ = tx.add_deployment(
            natural_key=keys.github_deployment_failed_key(d.repo, d.id),
            service=pair[0],
            environment=pair[1],
            version=d.sha,
            deployed_at=at,
            source=DeploymentSource.GITHUB,
            manifest_repo=None,
            manifest_commit=None,
            commit=None,
            message=f"GitHub deployment {d.repo}#{d.id} to {d.environment}: {status.state}"[:500],
            baseline=tx.last_deployment(*pair) is None,
        )
        tx.add_failure(
            natural_key=keys.github_deployment_failure_key(d.repo, d.id),
            service=pair[0],
            environment=pair[1],
            reason=FailureReason.DEPLOYMENT_FAILED,
            started_at=at,
            deployment_id=dep_id,
            detail=f"{d.repo}#{d.id} {status.state}",
        )
        log.warning("github.deployment_failed", repo=d.repo, id=d.id, service=pair[0], environment=pair[1])
        return dep_id

    def _succeeded(
        self,
        tx: Tx,
        target: DeploymentRepo,
        d: GitHubDeployment,
        pair: tuple[str, str],
        status: DeploymentStatus,
        result: DeploymentsResult,
    ) -> int:
        at = status.created_at.timestamp()
        same = self._same(tx, pair, d.sha, at)
        if same is not None:
            if same.source is DeploymentSource.GITOPS:  # an Argo CD sync time stays: it is when the rollout ran
                tx.set_deployed_at(same.id, at, DeploymentSource.GITHUB)
            result.matched += 1
            log.info("github.deployment_unified", repo=d.repo, id=d.id, deployment=same.id)
            return same.id
        key = keys.github_deployment_key(d.repo, d.id)
        dep_id, inserted = tx.add_deployment(
            natural_key=key,
            service=pair[0],
            environment=pair[1],
            version=d.sha,
            deployed_at=at,
            source=DeploymentSource.GITHUB,
            manifest_repo=None,
            manifest_commit=None,
            commit=d.sha,
            message=f"GitHub deployment {d.repo}#{d.id} of {d.ref or d.sha[:12]} to {d.environment}"[:500],
            baseline=tx.last_deployment(*pair) is None,
        )
        if inserted:
            result.deployments += 1
            log.info("github.deployment", repo=d.repo, id=d.id, service=pair[0], environment=pair[1])
            self._changes(tx, target, dep_id, key)
        return dep_id

    def _same(self, tx: Tx, pair: tuple[str, str], sha: str, at: float) -> Deployment | None:
        """The deployment another source already recorded of this commit within the match window."""
        svc = self.cfg.service(pair[0])
        return unify.row_for_github(
            tx,
            pair,
            sha=sha,
            at=at,
            tolerance=self.settings.match_window,
            tag_pattern=svc.tag_pattern if svc else None,
        )

    def _changes(self, tx: Tx, target: DeploymentRepo, dep_id: int, key: str) -> None:
        """Changes and rollback of a new row: queued for the GitHub change job (``github:`` repos), or
        read from the clone as the GitOps ingester does; nothing without a service repository."""
        svc = self.cfg.service(target.service)
        if svc is None or not svc.repo:
            return
        if svc.repo.startswith(GITHUB_REPO_PREFIX):
            tx.add_pending_changes(dep_id, svc.repo, key)
            return
        d = tx.deployment(dep_id)
        assert d is not None and d.commit is not None
        lister = self.repos.lister(svc.repo, "", None)
        commit = lister.resolve(d.commit)
        prev = tx.deployment_preceding(d)
        base = tx.deployment_preceding(d, resolved=True)
        if commit is None or prev is None:
            return
        if base is not None and base.commit and lister.resolve(base.commit) is not None:
            tx.add_changes(dep_id, d.service, d.environment, lister.changes(commit, [base.commit], svc.paths))
        is_ancestor = bool(
            prev.commit
            and prev.commit != commit
            and lister.resolve(prev.commit) is not None
            and lister.is_ancestor(commit, prev.commit)
        )
        t = Transition(prev.version, prev.deployed_at, d.version, d.deployed_at, d.message, is_ancestor)
        record_rollback(tx, self.cfg, prev, t, dep_id)


def restore_failed_attempts(tx: Tx) -> int:
    """Restore every open ``deployment_failed`` failure whose pair has deployed since (from any
    source: a GitOps or Argo CD deployment restores it too), at that deployment's time."""
    n = 0
    reason = FailureReason.DEPLOYMENT_FAILED
    for pair in tx.open_failure_pairs(reason):
        while open_ := tx.open_failures(*pair, reason):
            nxt = tx.deployment_after(*pair, open_[0].started_at.timestamp())
            if nxt is None:
                break
            at = nxt.deployed_at.timestamp()
            n += restore_open(tx, pair, reason, at, at, nxt.id)
    return n
