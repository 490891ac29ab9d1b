# SPDX-License-Identifier: Apache-2.0
"""Ingesting incidents from GitHub: issues with the incident label become failures in the store.

An incident maps to a service by label or title pattern and is attributed, once, when first seen,
to the latest deployment of that service in the incident environment (default: production) that
finished before the issue was opened and within ``github.incidents.failure_window``. Outside the
window (or with no deployment) it is an *unattributed* failure: ``deployment_id`` NULL, still
counted in time to restore, and counted once in ``unmatched{reason="incident_unattributed"}``.
A closed issue restores the failure at ``closed_at``; a reopened one reopens it.

**Removing the label** from an open incident closes it at that time (the issue's update time when
it is first seen without the label), as if the issue had been closed: the failure stays counted,
since ``dora_deployment_failures_total`` is a counter and may never decrease, and its time to
restore ends there, so ``dora_failure_open`` goes back to 0. (A retraction that deletes the
failure would make the counter go down.) Putting the label back reopens it, as a reopened issue
does. The labelled list cannot show this (it lists only issues that carry the label now), so each
pass also reads every open incident by number (``_revisit``): bounded by the open incidents.

The issue list is read incrementally (``since`` = the last update applied, minus an overlap so an
issue that moved between pages during a pass is read again); every write is an upsert on
``incident:<owner/name>#<number>``, so re-reading never double counts. Each issue commits with its
cursor: a run stopped by its budget or a rate limit resumes where it stopped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from exporter import keys
from exporter.errors import ErrorKind, SourceError
from exporter.model import Skip
from exporter.settings import Config, IncidentService
from exporter.sources.github.client import Client, parse_time
from exporter.sources.github.issues import Issue, incident_issues
from exporter.sources.github.issues import issue as read_issue
from exporter.store import Store, Tx

__all__ = ["SINCE_OVERLAP", "IncidentIngester", "IncidentResult", "service_of"]

log = structlog.get_logger(__name__)

SINCE_OVERLAP = timedelta(hours=1)


@dataclass
class IncidentResult:
    issues: int = 0
    new: int = 0
    unattributed: int = 0
    unmapped: int = 0
    deferred: int = 0
    withdrawn: int = 0  # open incidents closed because their label was removed (or the issue is gone)
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
            listed: set[int] = set()  # carry the label now: no need to read them again this pass
            while True:
                try:
                    issue = next(issues, None)
                except SourceError as exc:
                    if exc.kind != ErrorKind.BUDGET_EXHAUSTED:
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
                listed.add(issue.number)
                result.issues += 1
            if not self._revisit(repo, listed, result, stop):
                return result
        return result

    def _revisit(self, repo: str, listed: set[int], result: IncidentResult, stop: threading.Event) -> bool:
        """Read each open incident of ``repo`` by number: one whose label was removed (or whose
        issue is gone) is closed at that time. The labelled list cannot tell: it no longer shows
        such an issue, nor its later close. Bounded by the open incidents; each answer unchanged
        since the last pass is a ``304``. False when the pass stopped (budget, ``stop``)."""
        for failure_id, number in self.store.open_incidents(repo):
            if number in listed:
                continue
            if stop.is_set():
                result.stopped = True
                return False
            try:
                now = read_issue(self.client, repo, number)
            except SourceError as exc:
                if exc.kind != ErrorKind.BUDGET_EXHAUSTED:
                    raise
                result.stopped = True
                return False
            if now is None:
                why, at = "issue_gone", datetime.now(UTC)
            elif self.incidents.label not in now.labels:
                why, at = "label_removed", now.updated_at  # its last update: when the label went
            else:
                continue  # still an incident: the list applies its close, reopening, edits
            with self.store.transaction() as tx:
                tx.restore_failure(failure_id, at.timestamp(), None)
            result.withdrawn += 1
            log.info("github.incident_withdrawn", issue=f"{repo}#{number}", why=why, restored_at=at.isoformat())
        return True

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
