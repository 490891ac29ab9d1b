"""Ingesting from GitHub: the changes of deployments of ``github:`` services, and incidents.

**Changes.** The GitOps poll records a deployment of a ``github:`` service at once and queues it
(``pending_changes``); ``ChangeResolver`` then resolves its tag, lists its changes against the
previous resolved deployment of the pair and checks ancestry for rollbacks, one deployment per
transaction, oldest first. A GitHub fault stops the pass where it is; the queue keeps the rest
for the next run, so a slow or failing GitHub never holds up a GitOps poll and nothing is lost.

**Incidents.** Issues with the incident label become failures in the store.

An incident maps to a service by label or title pattern and is attributed, once, when first seen,
to the latest deployment of that service in the incident environment (default: production) that
finished before the issue was opened and within ``github.incidents.failure_window``. Outside the
window (or with no deployment) it is an *unattributed* failure: ``deployment_id`` NULL, still
counted in time to restore, and counted once in ``unmatched{reason="incident_unattributed"}``.
A closed issue restores the failure at ``closed_at``; a reopened one reopens it.

The issue list is read incrementally (``since`` = the last update applied, minus an overlap so an
issue that moved between pages during a pass is read again); every write is an upsert on
``incident:<owner/name>#<number>``, so re-reading never double counts. Each issue commits with its
cursor: a run stopped by its budget or a rate limit resumes where it stopped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from exporter import keys
from exporter.core.correlate import Transition, tag_commit_candidate
from exporter.errors import SourceError
from exporter.ingest.gitops import Repos, record_rollback
from exporter.model import Change, Skip
from exporter.settings import Config, IncidentService
from exporter.sources.github.client import Client, Issue, incident_issues, parse_time
from exporter.store import Store, Tx

log = structlog.get_logger(__name__)

SINCE_OVERLAP = timedelta(hours=1)


class StoreCache:
    """The GitHub source's cache (commit facts, ETags) kept in the store's ``github_cache`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> tuple[str | None, str] | None:
        return self.store.cache_get(key)

    def put(self, key: str, etag: str | None, body: str) -> None:
        with self.store.transaction() as tx:
            tx.cache_put(key, etag, body)


@dataclass
class ResolveResult:
    deployments: int = 0
    changes: int = 0
    unresolved: int = 0
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
                if exc.kind != "budget_exhausted":
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
        if commit is not None and prev is not None and base is not None and base.commit:
            changes = lister.changes(commit, [base.commit], svc.paths)
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


@dataclass
class IncidentResult:
    issues: int = 0
    new: int = 0
    unattributed: int = 0
    unmapped: int = 0
    deferred: int = 0
    stopped: bool = False


def service_of(issue: Issue, mappings: tuple[IncidentService, ...]) -> str | None:
    """The first mapping whose label the issue carries, else the first whose title pattern matches."""
    for m in mappings:
        if m.label is not None and m.label in issue.labels:
            return m.service
    for m in mappings:
        if m.title_pattern is not None and m.title_pattern.search(issue.title):
            return m.service
    return None


class IncidentIngester:
    def __init__(self, cfg: Config, store: Store, client: Client) -> None:
        self.cfg = cfg
        self.store = store
        self.client = client
        self.incidents = cfg.github.incidents
        self.environment = self.incidents.environment or cfg.production_environment

    def poll(self, stop: threading.Event | None = None, horizon: datetime | None = None) -> IncidentResult:
        """One pass over every configured repository; raises ``SourceError`` on a GitHub fault
        (the issues applied so far stay applied, with their cursor).

        ``horizon`` is when the GitOps history was last read completely: an issue updated after it
        waits for the next pass (the list is in update order, so the pass ends there), because the
        deployment it should be attributed to may not be ingested yet."""
        stop = stop or threading.Event()
        result = IncidentResult()
        for repo in self.incidents.repos:
            cursor_name = f"github:issues:{repo}"
            cursor = self.store.cursor(cursor_name)
            since = None
            if cursor:
                at = parse_time(cursor)
                since = (at - SINCE_OVERLAP).strftime("%Y-%m-%dT%H:%M:%SZ") if at else None
            issues = incident_issues(self.client, repo, self.incidents.label, since)
            while True:
                try:
                    issue = next(issues, None)
                except SourceError as exc:
                    if exc.kind != "budget_exhausted":
                        raise
                    result.stopped = True  # applied issues are committed with their cursor
                    return result
                if issue is None:
                    break
                if stop.is_set():
                    result.stopped = True
                    return result
                if horizon is not None and issue.updated_at > horizon:
                    result.deferred += 1
                    break
                with self.store.transaction() as tx:
                    self._apply(tx, issue, result)
                    if cursor is None or issue.updated_at.isoformat() > cursor:
                        cursor = issue.updated_at.isoformat()
                        tx.set_cursor(cursor_name, cursor)
                result.issues += 1
        return result

    def _apply(self, tx: Tx, issue: Issue, result: IncidentResult) -> None:
        key = keys.incident_key(issue.repo, issue.number)
        service = service_of(issue, self.incidents.services)
        if service is None:
            if tx.record_skip(Skip("github", "incident_unmapped", key, issue.title[:200])):
                result.unmapped += 1
                log.warning("github.incident_unmapped", issue=f"{issue.repo}#{issue.number}")
            return
        opened = issue.opened_at.timestamp()
        dep = tx.deployment_before(service, self.environment, opened)
        in_window = dep is not None and opened - dep.deployed_at.timestamp() <= self.incidents.failure_window
        deployment_id = dep.id if dep is not None and in_window else None  # used only when new
        new = tx.upsert_incident(
            natural_key=key,
            service=service,
            environment=self.environment,
            started_at=opened,
            deployment_id=deployment_id,
            restored_at=issue.closed_at.timestamp() if issue.closed_at else None,
            detail=f"{issue.repo}#{issue.number}",
        )
        if new:
            result.new += 1
            if deployment_id is None and tx.record_skip(
                Skip("github", "incident_unattributed", key, f"{service} {issue.title[:200]}")
            ):
                result.unattributed += 1
            log.info(
                "github.incident",
                issue=f"{issue.repo}#{issue.number}",
                service=service,
                deployment_id=deployment_id,
                restored=issue.closed_at is not None,
            )
