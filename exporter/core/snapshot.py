# SPDX-License-Identifier: Apache-2.0
"""The computed picture the collector, the landing page and ``report`` serve. Pure.

Built once after each ingest from the store's histories, never per scrape: a scrape only walks
this frozen object, so its cost does not grow with history and never touches the database.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from exporter.core.dora import WindowStats, window_stats
from exporter.core.levels import Level, Metric, Thresholds
from exporter.model import FailureReason, PairHistory, PairKey, PairTotals

H = 3600.0
D = 86400.0
# DORA's boundaries (1 h, 1 d, 1 w, 30 d, 180 d) and steps between, so quantiles stay meaningful.
LEAD_TIME_BUCKETS = (
    15 * 60,
    30 * 60,
    H,
    2 * H,
    4 * H,
    8 * H,
    16 * H,
    D,
    2 * D,
    4 * D,
    7 * D,
    14 * D,
    30 * D,
    90 * D,
    180 * D,
)
RESTORE_BUCKETS = (60, 5 * 60, 15 * 60, 30 * 60, H, 2 * H, 4 * H, 8 * H, D, 2 * D, 7 * D, 30 * D, 180 * D)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Cumulative bucket counts aligned with ``bounds`` (the +Inf bucket is ``count``)."""

    bounds: tuple[float, ...]
    cumulative: tuple[int, ...]
    total: float
    count: int

    @classmethod
    def of(cls, bounds: Sequence[float], values: Iterable[float]) -> Histogram:
        per = [0] * (len(bounds) + 1)
        total, count = 0.0, 0
        for v in values:
            per[bisect.bisect_left(bounds, v)] += 1
            total += v
            count += 1
        running, cumulative = 0, []
        for n in per[:-1]:
            running += n
            cumulative.append(running)
        return cls(tuple(float(b) for b in bounds), tuple(cumulative), total, count)


@dataclass(frozen=True, slots=True)
class LiveState:
    """The current state of one pair's running app, as opposed to its history.

    The Argo CD source reports it (latest sync operation Failed/Error, health Degraded);
    it is served as ``dora_sync_failing`` and ``dora_degraded``.
    """

    sync_failing: bool = False
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class PairSnapshot:
    key: PairKey
    deployments_total: int
    changes_total: int
    failures_by_reason: Mapping[FailureReason, int]
    lead_time: Histogram
    time_to_restore: Histogram
    windows: Mapping[str, WindowStats]
    levels: Mapping[str, Mapping[Metric, Level | None]]
    last_deployment_ts: float | None
    failure_open: bool
    sync_failing: bool = False
    degraded: bool = False
    lead_time_phases: Mapping[str, Histogram] = field(default_factory=dict)


PHASES = ("coding", "review", "deploy")


@dataclass(frozen=True, slots=True)
class Snapshot:
    computed_at: datetime
    pairs: tuple[PairSnapshot, ...] = ()
    unmatched: Mapping[tuple[str, str], int] = field(default_factory=dict)
    changes_without_pull_request: int = 0

    def pair(self, service: str, environment: str) -> PairSnapshot | None:
        return next((p for p in self.pairs if p.key == PairKey(service, environment)), None)


def build(
    histories: Mapping[PairKey, PairHistory],
    *,
    known_pairs: Iterable[PairKey],
    now: datetime,
    windows: Sequence[tuple[str, float]],
    thresholds: Thresholds,
    unmatched: Mapping[tuple[str, str], int] | None = None,
    live: Mapping[PairKey, LiveState] | None = None,
    changes_without_pull_request: int = 0,
    phases: Mapping[PairKey, Mapping[str, Sequence[float]]] | None = None,
    totals: Mapping[PairKey, PairTotals] | None = None,
) -> Snapshot:
    """Everything ``/metrics`` serves, for every pair seen or configured.

    ``live`` fills ``sync_failing``/``degraded``; a pair missing from it is healthy, and a live
    state of a pair neither seen nor configured is not served (labels stay bounded). ``phases``
    (lead-time phases from pull requests, when enabled) gives every pair the three phase
    histograms, empty ones included.
    With ``totals`` (``Store.totals``), the all-time numbers (deployment and change counters, the
    lead time histogram, the latest deployment) come from it, and ``histories`` need only hold
    the longest window (``Store.histories(since=...)``); every failure must still be in it.
    """
    live = live or {}
    keys = sorted(set(histories) | set(known_pairs) | set(totals or ()), key=lambda k: (k.service, k.environment))
    pairs = tuple(
        _pair_snapshot(
            histories.get(key) or PairHistory(key),
            now=now,
            windows=windows,
            thresholds=thresholds,
            live=live.get(key, LiveState()),
            phases=None if phases is None else phases.get(key, {}),
            totals=None if totals is None else totals.get(key) or PairTotals(),
        )
        for key in keys
    )
    return Snapshot(now, pairs, dict(unmatched or {}), changes_without_pull_request)


def _all_time(h: PairHistory, totals: PairTotals | None) -> tuple[PairTotals, Histogram]:
    """The pair's all-time counters and lead time histogram: from the store's aggregate when given
    (the history then holds the longest window only), else counted from the full history."""
    if totals is None:
        lead_time = Histogram.of(LEAD_TIME_BUCKETS, (c.lead_seconds for c in h.leads))
        return PairTotals(len(h.deployments), max((d.deployed_at for d in h.deployments), default=None)), lead_time
    lead_time = Histogram(
        tuple(float(b) for b in LEAD_TIME_BUCKETS),
        totals.lead_le or (0,) * len(LEAD_TIME_BUCKETS),
        totals.lead_seconds_sum,
        totals.changes,
    )
    return totals, lead_time


def _failures_by_reason(h: PairHistory) -> dict[FailureReason, int]:
    """Failed deployments per reason: a deployment counts once per reason, however many failures
    of that reason it has; an unattributed incident still counts as a failure."""
    by_reason = dict.fromkeys(FailureReason, 0)
    failed_ids: dict[FailureReason, set[int]] = {r: set() for r in FailureReason}
    for f in h.failures:
        if f.deployment_id is None:
            by_reason[f.reason] += 1
        elif f.deployment_id not in failed_ids[f.reason]:
            failed_ids[f.reason].add(f.deployment_id)
            by_reason[f.reason] += 1
    return by_reason


def _pair_snapshot(
    h: PairHistory,
    *,
    now: datetime,
    windows: Sequence[tuple[str, float]],
    thresholds: Thresholds,
    live: LiveState,
    phases: Mapping[str, Sequence[float]] | None,
    totals: PairTotals | None,
) -> PairSnapshot:
    t, lead_time = _all_time(h, totals)
    stats = {label: window_stats(h, now - timedelta(seconds=secs), now) for label, secs in windows}
    restores = [(f.restored_at - f.started_at).total_seconds() for f in h.failures if f.restored_at is not None]
    return PairSnapshot(
        key=h.key,
        deployments_total=t.deployments,
        changes_total=lead_time.count,
        failures_by_reason=_failures_by_reason(h),
        lead_time=lead_time,
        time_to_restore=Histogram.of(RESTORE_BUCKETS, restores),
        windows=stats,
        levels={label: s.levels(thresholds) for label, s in stats.items()},
        last_deployment_ts=t.last_deployed_at.timestamp() if t.last_deployed_at is not None else None,
        failure_open=any(f.restored_at is None for f in h.failures),
        sync_failing=live.sync_failing,
        degraded=live.degraded,
        lead_time_phases=(
            {ph: Histogram.of(LEAD_TIME_BUCKETS, phases.get(ph, ())) for ph in PHASES} if phases is not None else {}
        ),
    )


def report_rows(
    histories: Mapping[PairKey, PairHistory],
    known_pairs: Iterable[PairKey],
    since: datetime,
    until: datetime,
    thresholds: Thresholds,
) -> list[dict[str, object]]:
    """The rows of ``dora-exporter report``; the key set is a stable interface (README)."""
    rows: list[dict[str, object]] = []
    for key in sorted(set(histories) | set(known_pairs), key=lambda k: (k.service, k.environment)):
        s = window_stats(histories.get(key) or PairHistory(key), since, until)
        rows.append(
            {
                "service": key.service,
                "environment": key.environment,
                "deployments": s.deployments,
                "deployments_per_day": s.deployments_per_day,
                "changes": s.changes,
                "lead_time_median_seconds": s.lead_time_median_seconds,
                "failed_deployments": s.failed_deployments,
                "change_failure_rate": s.change_failure_rate,
                "restored_failures": s.restored_failures,
                "time_to_restore_median_seconds": s.time_to_restore_median_seconds,
                "rework_deployments": s.rework_deployments,
                "rework_rate": s.rework_rate,
                "levels": {m.value: (lvl.label if lvl else None) for m, lvl in s.levels(thresholds).items()},
            }
        )
    return rows
