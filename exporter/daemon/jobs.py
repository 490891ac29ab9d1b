# SPDX-License-Identifier: Apache-2.0
"""The scheduler: the one way to register a periodic job, and to run one now (apscheduler 3.x lives here only)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

__all__ = [
    "GITHUB_CHANGES",
    "GITHUB_DEPLOYMENTS",
    "GITHUB_INCIDENTS",
    "HEARTBEAT",
    "Job",
    "Jobs",
    "gitops_job",
]

HEARTBEAT = "heartbeat"
GITHUB_CHANGES = "github-changes"
GITHUB_INCIDENTS = "github-incidents"
GITHUB_DEPLOYMENTS = "github-deployments"


def gitops_job(index: int) -> str:
    """The id of the poll of the ``index``-th GitOps repository."""
    return f"gitops-{index}"


@dataclass(frozen=True, kw_only=True)
class Job:
    """A periodic job. Every job runs on its own worker, one run at a time, and a run missed while
    the previous one was still going is coalesced into one (see ``Jobs.start``)."""

    id: str
    run: Callable[..., object]
    every: float  # seconds between two runs
    args: tuple[Any, ...] = ()
    name: str | None = None
    first_run_now: bool = True  # False: the first run comes after one interval
    jitter: float | None = None  # seconds of random delay added to each run


class Jobs:
    """The background scheduler, created when the daemon starts; until then ``run_now`` does nothing
    (a one-shot ``ingest`` calls the passes itself)."""

    def __init__(self) -> None:
        self._scheduler: BackgroundScheduler | None = None

    def start(self, jobs: Sequence[Job]) -> None:
        scheduler = self._scheduler = BackgroundScheduler(
            # one worker per job: a slow GitHub job never waits for, or holds up, a GitOps poll
            executors={"default": ThreadPoolExecutor(max_workers=len(jobs))},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        for job in jobs:
            when = {"next_run_time": datetime.now(UTC)} if job.first_run_now else {}
            trigger = IntervalTrigger(seconds=job.every, jitter=job.jitter)
            scheduler.add_job(job.run, trigger, args=list(job.args), id=job.id, name=job.name, **when)
        scheduler.start()

    def run_now(self, job_id: str) -> None:
        """Run a registered job at once instead of at its next interval (coalesced with a run due)."""
        scheduler = self._scheduler
        if scheduler is not None and scheduler.get_job(job_id) is not None:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    def shutdown(self) -> None:
        """Stop scheduling; runs under way finish on their own (the passes watch ``stop``)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
