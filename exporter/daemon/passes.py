# SPDX-License-Identifier: Apache-2.0
"""The guarded passes the jobs run: a GitOps poll, and the GitHub changes, incidents and deployments.

Each pass takes its own lock, so two runs of it never overlap and the shutdown can wait for it;
a GitHub pass never takes the GitOps lock, so a slow or failing GitHub never delays a GitOps poll.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import structlog

from exporter.daemon.jobs import GITHUB_CHANGES, GITHUB_DEPLOYMENTS, GITHUB_INCIDENTS
from exporter.daemon.supervision import Outcome, Task, guard
from exporter.daemon.wiring import Components
from exporter.errors import ErrorKind, SourceError
from exporter.ingest.gitops import GitOpsIngester, IngestResult

if TYPE_CHECKING:
    from exporter.ingest.github_changes import ResolveResult
    from exporter.ingest.github_deployments import DeploymentsResult
    from exporter.ingest.github_incidents import IncidentResult

__all__ = ["Passes", "Progress"]

log = structlog.get_logger(__name__)
_R = TypeVar("_R")

# the GitHub passes' tasks: the part of the ``github`` source each reports on, and its log events
_GITHUB_TASKS = {
    part: Task(
        source="github",
        part=part,
        failed=failed,
        crashed=crashed,
        store_failed="github.store_failed",
        failed_level="warning",
        normal_stops=frozenset({ErrorKind.BUDGET_EXHAUSTED}),
        store_context={"part": part},
    )
    for part, failed, crashed in (
        ("changes", "github.changes_failed", "github.changes_crashed"),
        ("incidents", "github.incidents_failed", "github.incidents_crashed"),
        ("deployments", "github.deployments_failed", "github.deployments_crashed"),
    )
}
_BUDGET_EXHAUSTED = {
    "changes": "github.changes_budget_exhausted",
    "incidents": "github.incidents_budget_exhausted",
    "deployments": "github.deployments_budget_exhausted",
}


class Progress:
    """First-ingest progress: a bar on a TTY, a log line every 10 s otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.tty and total:
            width = 30
            filled = int(width * min(done, total) / total)
            sys.stderr.write(f"\r{self.name} [{'#' * filled}{' ' * (width - filled)}] {done}/{total} commits")
            sys.stderr.flush()
            if done >= total:
                sys.stderr.write("\n")
        elif time.monotonic() - self.last >= 10:
            self.last = time.monotonic()
            log.info("ingest.progress", repo=self.name, commits=done, total=total)


class Passes:
    def __init__(self, components: Components) -> None:
        self.c = components
        self._gitops_busy = threading.Lock()
        self._incidents_busy = threading.Lock()
        self._resolve_busy = threading.Lock()
        self._deployments_busy = threading.Lock()
        self._gitops_read_at: dict[str, datetime] = {}  # per repo: start of its last complete poll
        self._incidents_waiting = False

    @property
    def locks(self) -> tuple[threading.Lock, ...]:
        """The pass locks, which the shutdown waits for within its budget."""
        return (self._gitops_busy, self._incidents_busy, self._resolve_busy, self._deployments_busy)

    def poll_gitops(self, ing: GitOpsIngester, progress: bool = False, recompute: bool = True) -> IngestResult | None:
        """One guarded poll. ``recompute=False``: the caller recomputes the snapshot itself once it is done."""
        c = self.c
        task = Task(
            source="gitops",
            part=ing.repo.key,
            failed="gitops.poll_failed",
            crashed="gitops.poll_crashed",
            store_failed="gitops.store_failed",
            log_source=True,
            context={"repo": ing.repo.key},
        )
        started = time.monotonic()
        read_at = datetime.now(UTC)
        with self._gitops_busy:
            try:
                run = guard(
                    lambda: ing.poll(c.stop, Progress(ing.repo.key) if progress else None), task=task, health=c.health
                )
            finally:
                self._note_rate_limit()
        if isinstance(run.error, SourceError) and run.error.source == "github":
            # a service repo read through the API: resumes next poll
            c.health.failure("github", "changes", run.error.kind, str(run.error))
        result = run.value
        if result is None:
            return None
        duration = time.monotonic() - started
        c.health.success("gitops", ing.repo.key, duration)
        if not result.stopped:
            self._gitops_read_at[ing.repo.key] = read_at
            if self._incidents_waiting and len(self._gitops_read_at) == len(c.ingesters):
                self._incidents_waiting = False
                c.jobs.run_now(GITHUB_INCIDENTS)
        log.info(
            "gitops.polled",
            repo=ing.repo.key,
            commits=result.commits,
            deployments=result.deployments,
            skipped=result.skips,
            force_push=result.force_push,
            seconds=round(duration, 3),
        )
        if recompute and (result.commits or result.force_push or not c.holder.get().pairs):
            c.publisher.recompute()
        if result.deployments and c.github.resolver is not None:
            c.jobs.run_now(GITHUB_CHANGES)  # read the new deployments' changes now, on their own worker
        return result

    def resolve_github_changes(self) -> ResolveResult | None:
        """One guarded pass over deployments whose changes are read through GitHub, within the budget."""
        resolver = self.c.github.resolver
        if resolver is None or self.c.github.client is None:
            return None
        from exporter.ingest.github_changes import ResolveResult

        started = time.monotonic()
        result = self._github_pass("changes", self._resolve_busy, lambda: resolver.poll(self.c.stop), ResolveResult)
        if result is None:
            return None
        log.info(
            "github.changes_read",
            deployments=result.deployments,
            changes=result.changes,
            unresolved=result.unresolved,
            stopped=result.stopped,
            seconds=round(time.monotonic() - started, 3),
        )
        if result.deployments or result.unresolved or result.stopped:
            self.c.publisher.recompute()
        if result.stopped and not self.c.stop.is_set():
            self.c.jobs.run_now(GITHUB_CHANGES)  # the budget ran out with work left: continue on the next tick
        return result

    def poll_github_incidents(self) -> IncidentResult | None:
        """One guarded incident pass within ``github.budget``."""
        incidents = self.c.github.incidents
        if incidents is None or self.c.github.client is None:
            return None
        # incidents are attributed once, to deployments already ingested: never read one newer
        # than the GitOps history, and wait for the first complete GitOps poll after a start
        if len(self._gitops_read_at) < len(self.c.ingesters):
            log.info("github.incidents_waiting_for_gitops")
            self._incidents_waiting = True
            return None
        horizon = min(self._gitops_read_at.values(), default=None)
        from exporter.ingest.github_incidents import IncidentResult

        started = time.monotonic()
        result = self._github_pass(
            "incidents", self._incidents_busy, lambda: incidents.poll(self.c.stop, horizon), IncidentResult
        )
        if result is None:
            return None
        log.info(
            "github.incidents_polled",
            issues=result.issues,
            new=result.new,
            unattributed=result.unattributed,
            deferred=result.deferred,
            stopped=result.stopped,
            seconds=round(time.monotonic() - started, 3),
        )
        self.c.publisher.recompute()
        return result

    def poll_github_deployments(self) -> DeploymentsResult | None:
        """One guarded pass over the GitHub Deployments API within ``github.budget``; a webhook
        ``deployment_status`` runs it early."""
        deployments = self.c.github.deployments
        if deployments is None or self.c.github.client is None:
            return None
        from exporter.ingest.github_deployments import DeploymentsResult

        started = time.monotonic()
        result = self._github_pass(
            "deployments", self._deployments_busy, lambda: deployments.poll(self.c.stop), DeploymentsResult
        )
        if result is None:
            return None
        log.info(
            "github.deployments_polled",
            read=result.read,
            deployments=result.deployments,
            matched=result.matched,
            failures=result.failures,
            restores=result.restores,
            waiting=result.waiting,
            stopped=result.stopped,
            seconds=round(time.monotonic() - started, 3),
        )
        if result.changed or result.unmatched or result.stopped:
            self.c.publisher.recompute()
        if result.deployments and self.c.github.resolver is not None:
            self.c.jobs.run_now(GITHUB_CHANGES)  # the changes of new rows of github: services
        if result.stopped and not self.c.stop.is_set():
            self.c.jobs.run_now(GITHUB_DEPLOYMENTS)  # the budget ran out with work left
        return result

    def _github_pass(
        self, part: str, busy: threading.Lock, run: Callable[[], _R], stopped: Callable[..., _R]
    ) -> _R | None:
        """Run one GitHub pass within ``github.budget``: a spent budget is a normal stop (what was
        applied stays; the next run resumes); a fault ends the pass with ``None``."""
        client, budget = self.c.github.client, self.c.cfg.github.budget
        assert client is not None

        def within_budget() -> _R:
            with client.budget(budget):
                return run()

        started = time.monotonic()
        with busy:
            try:
                attempt = guard(within_budget, task=_GITHUB_TASKS[part], health=self.c.health)
                if attempt.outcome is Outcome.STOPPED:
                    log.info(_BUDGET_EXHAUSTED[part], budget=budget)
                elif attempt.outcome is Outcome.FAILED:
                    self.c.publisher.recompute()  # whatever was applied before the fault is served
                if attempt.outcome in (Outcome.DONE, Outcome.STOPPED):
                    self.c.health.success("github", part, time.monotonic() - started)  # a stop is not a fault
                return stopped(stopped=True) if attempt.outcome is Outcome.STOPPED else attempt.value
            finally:
                self._note_rate_limit()

    def _note_rate_limit(self) -> None:
        if self.c.github.client is not None:
            self.c.health.github_rate_limit_remaining = dict(self.c.github.client.remaining_by_resource)
