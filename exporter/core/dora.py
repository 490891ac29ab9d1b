# SPDX-License-Identifier: Apache-2.0
"""The four keys (plus rework rate) over a window. Pure: ``now`` is passed in.

Empty windows are defined, never NaN: counts and deployments per day are 0; a ratio with no
deployments and a median with no observations are ``None``, which the collector leaves out of
``/metrics`` and ``report`` prints as ``null``. A missing sample says "no data" honestly, where
a 0 would claim an elite lead time or a perfect change failure rate.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.core.levels import Level, Metric, Thresholds, classify
from exporter.model import PairHistory

__all__ = ["WindowStats", "window_stats"]


@dataclass(frozen=True, slots=True)
class WindowStats:
    """One pair's numbers over ``(since, until]``; ``None`` means "no data" (see module doc)."""

    since: datetime
    until: datetime
    deployments: int
    deployments_per_day: float
    changes: int
    lead_time_median_seconds: float | None
    failed_deployments: int
    change_failure_rate: float | None
    restored_failures: int
    time_to_restore_median_seconds: float | None
    rework_deployments: int
    rework_rate: float | None

    def levels(self, thresholds: Thresholds) -> dict[Metric, Level | None]:
        return {
            Metric.DEPLOYMENT_FREQUENCY: classify(Metric.DEPLOYMENT_FREQUENCY, self.deployments_per_day, thresholds),
            Metric.LEAD_TIME: classify(Metric.LEAD_TIME, self.lead_time_median_seconds, thresholds),
            Metric.CHANGE_FAILURE_RATE: classify(Metric.CHANGE_FAILURE_RATE, self.change_failure_rate, thresholds),
            Metric.TIME_TO_RESTORE: classify(Metric.TIME_TO_RESTORE, self.time_to_restore_median_seconds, thresholds),
        }


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _inside(t: datetime, since: datetime, until: datetime) -> bool:
    return since < t <= until


def window_stats(history: PairHistory, since: datetime, until: datetime) -> WindowStats:
    """Compute one pair's window. Deployments, changes and failed deployments count when deployed
    inside the window; restores count when restored inside it."""
    if until <= since:
        raise ValueError("window must have until > since")
    deps = [d for d in history.deployments if since < d.deployed_at <= until]  # _inside, inlined: hot
    n = len(deps)
    failed = sum(1 for d in deps if d.id in history.failed_deployment_ids)
    rework = sum(1 for d in deps if d.rework)
    leads = [c.lead_seconds for c in history.leads if since < c.deployed_at <= until]
    restores = [
        (f.restored_at - f.started_at).total_seconds()
        for f in history.failures
        if f.restored_at is not None and _inside(f.restored_at, since, until)
    ]
    days = (until - since) / timedelta(days=1)
    return WindowStats(
        since=since,
        until=until,
        deployments=n,
        deployments_per_day=n / days,
        changes=len(leads),
        lead_time_median_seconds=_median(leads),
        failed_deployments=failed,
        change_failure_rate=(failed / n) if n else None,
        restored_failures=len(restores),
        time_to_restore_median_seconds=_median(restores),
        rework_deployments=rework,
        rework_rate=(rework / n) if n else None,
    )
