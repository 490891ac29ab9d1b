# SPDX-License-Identifier: Apache-2.0
"""Ingesting from GitHub: the changes of deployments of ``github:`` services.

**Changes.** The GitOps poll records a deployment of a ``github:`` service at once and queues it
(``pending_changes``); ``ChangeResolver`` then resolves its tag, lists its changes against the
previous resolved deployment of the pair and checks ancestry for rollbacks, one deployment per
transaction, oldest first. A GitHub fault stops the pass where it is; the queue keeps the rest
for the next run, so a slow or failing GitHub never holds up a GitOps poll and nothing is lost.

A range GitHub will never list (no common ancestor, a base it does not know, a diff it will not
compute, more than 10,000 commits) is not a fault to retry: the deployment is settled without
changes, counted once in ``unmatched{reason=...}`` and logged, and the queue moves on. Retrying it
would hold every later deployment of every ``github:`` service back for good.

Incidents are ingested by ``github_incidents``; the source's cache in the store is ``github_cache``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import structlog

from exporter.core.correlate import Transition, tag_commit_candidate
from exporter.errors import ErrorKind, SourceError
from exporter.ingest.repos import Repos
from exporter.ingest.rollbacks import record_rollback
from exporter.model import Change, Skip
from exporter.settings import Config
from exporter.sources.github.repos import RangeUnreadable
from exporter.store import Store

log = structlog.get_logger(__name__)


@dataclass
class ResolveResult:
    deployments: int = 0
    changes: int = 0
    unresolved: int = 0
    unreadable: int = 0  # settled without changes: GitHub cannot list their range (RangeUnreadable)
    stopped: bool = False


class ChangeResolver:
    """Reads the commits and changes of queued deployments through the API, oldest first."""

    def __init__(self, cfg: Config, store: Store, repos: Repos) -> None:
        self.cfg = cfg
        self.store = store
        self.repos = repos

    def pending(self) -> int:
        return len(self.store.pending_changes())

    def poll(self, stop: threading.Event | None = None) -> ResolveResult:
        """One pass over the queue; raises ``SourceError`` on a GitHub fault (what is done stays done)."""
        stop = stop or threading.Event()
        result = ResolveResult()
        for dep_id, repo, key in self.store.pending_changes():
            if stop.is_set():
                result.stopped = True
                break
            try:
                self._resolve(dep_id, repo, key, result)
            except SourceError as exc:
                if exc.kind != ErrorKind.BUDGET_EXHAUSTED:
                    raise
                result.stopped = True  # what is done is committed; the rest waits for the next run
                break
        return result

    def _resolve(self, dep_id: int, repo: str, key: str, result: ResolveResult) -> None:
        """Read everything from GitHub first, holding no store lock (a slow answer must not hold up
        a GitOps batch), then write the deployment's commit, changes and rollback in one transaction."""
        d = self.store.deployment(dep_id)
        svc = self.cfg.service(d.service) if d is not None else None
        if d is None or svc is None or svc.repo != repo:
            with self.store.transaction() as tx:
                tx.resolve_pending(dep_id, None)  # the service moved to another repo: nothing to read here
            return
        lister = self.repos.lister(repo, "", None)
        candidate = d.commit or tag_commit_candidate(d.version, svc.tag_pattern)  # a GitHub deployment names it
        commit = lister.resolve(candidate) if candidate else None
        prev = self.store.deployment_preceding(d)
        base = self.store.deployment_preceding(d, resolved=True)
        changes: list[Change] = []
        rollback = False
        unreadable: RangeUnreadable | None = None
        if commit is not None and prev is not None and base is not None and base.commit:
            try:
                changes = lister.changes(commit, [base.commit], svc.paths)
            except RangeUnreadable as exc:
                unreadable = exc  # settled below with no changes: asking again gives the same answer
        if commit is not None and prev is not None and prev.commit and prev.commit != commit:
            rollback = lister.is_ancestor(commit, prev.commit)
        with self.store.transaction() as tx:
            if commit is None:
                skip = Skip("gitops", "unresolved_tag", key, f"{d.service} {d.environment} tag {d.version}")
                if tx.record_skip(skip):
                    result.unresolved += 1
                    log.warning("github.unresolved_tag", service=d.service, environment=d.environment, tag=d.version)
                tx.resolve_pending(dep_id, None)
                return
            if unreadable is not None:
                result.unreadable += 1
                if tx.record_skip(Skip("github", unreadable.reason, key, f"{d.service} {d.environment} {unreadable}")):
                    log.warning(
                        "github.compare_unreadable",
                        service=d.service,
                        environment=d.environment,
                        reason=unreadable.reason,
                        detail=str(unreadable),
                    )
            result.changes += tx.add_changes(dep_id, d.service, d.environment, changes)
            if rollback and prev is not None:
                record_rollback(
                    tx,
                    self.cfg,
                    prev,
                    Transition(prev.version, prev.deployed_at, d.version, d.deployed_at, d.message, True),
                    dep_id,
                )
            tx.resolve_pending(dep_id, commit)
        result.deployments += 1
