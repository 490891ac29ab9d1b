# SPDX-License-Identifier: Apache-2.0
"""``exporter.core.dora``: window statistics and performance levels, on literal data with a fixed ``now``."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exporter.core.dora import WindowStats, window_stats
from exporter.core.levels import PRESETS, Level, Metric, classify
from exporter.model import (
    ChangeLead,
    Deployment,
    DeploymentSource,
    Failure,
    FailureReason,
    PairHistory,
    PairKey,
)

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
H = 3600
DAY = 86400
KEY = PairKey("api", "prod")


def at(hours_ago: float) -> datetime:
    return NOW - timedelta(hours=hours_ago)


def history(
    deployments: Sequence[tuple[int, float, bool]] = (),
    failed: AbstractSet[int] = frozenset(),
    failures: Sequence[tuple[int, float, float | None]] = (),
    leads: Sequence[tuple[int, float, float]] = (),
) -> PairHistory:
    """``deployments``: (id, hours ago, rework); ``failures``: (deployment id, started and restored
    hours ago, restored None when open); ``leads``: (deployment id, deployed hours ago, lead seconds)."""
    return PairHistory(
        KEY,
        deployments=[
            Deployment(i, KEY.service, KEY.environment, f"v{i}", at(h), DeploymentSource.GITOPS, rework=rework)
            for i, h, rework in deployments
        ],
        failed_deployment_ids=set(failed),
        failures=[
            Failure(
                n,
                KEY.service,
                KEY.environment,
                FailureReason.ROLLBACK,
                at(started),
                deployment_id=dep,
                restored_at=None if restored is None else at(restored),
            )
            for n, (dep, started, restored) in enumerate(failures)
        ],
        leads=[
            ChangeLead(KEY.service, KEY.environment, f"c{n}", dep, at(h), secs)
            for n, (dep, h, secs) in enumerate(leads)
        ],
    )


@dataclass(frozen=True)
class Expected:
    """A window's statistics as ``WindowStats`` names them; ``None`` is "no data", neither 0 nor NaN."""

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

    @classmethod
    def of(cls, stats: WindowStats) -> Expected:
        return cls(**{f.name: getattr(stats, f.name) for f in fields(cls)})


NOTHING = Expected(
    deployments=0,
    deployments_per_day=0.0,
    changes=0,
    lead_time_median_seconds=None,
    failed_deployments=0,
    change_failure_rate=None,
    restored_failures=0,
    time_to_restore_median_seconds=None,
    rework_deployments=0,
    rework_rate=None,
)

# (history, window hours, expected)
WINDOW_CASES = [
    pytest.param(
        {},
        7 * 24,
        NOTHING,
        id="empty-history",
    ),
    pytest.param(
        {
            "deployments": [(1, 200, False), (2, 100, False)],
            "failed": {1},
            "failures": [(1, 200, 199)],
            "leads": [(2, 100, 3600.0)],
        },
        24,
        NOTHING,
        id="history-only-before-the-window",
    ),
    pytest.param(
        {
            "deployments": [(1, 200, False), (2, 100, False), (3, 50, False), (4, 48, True), (5, 10, False)],
            "failed": {1, 3},
            "failures": [(1, 200, 199), (3, 50, 48), (5, 10, None)],
            "leads": [(2, 100, 1800.0), (3, 50, 7200.0), (3, 50, 3600.0), (5, 10, 90000.0), (1, 200, 60.0)],
        },
        7 * 24,
        # 4 deployments in 7 d (not #1); #3 failed; #4 rework; leads 1800, 3600, 7200, 90000 -> median 5400;
        # one restore inside (2 h), the first one restored before the window, the open one not at all
        Expected(
            deployments=4,
            deployments_per_day=4 / 7,
            changes=4,
            lead_time_median_seconds=5400.0,
            failed_deployments=1,
            change_failure_rate=0.25,
            restored_failures=1,
            time_to_restore_median_seconds=7200.0,
            rework_deployments=1,
            rework_rate=0.25,
        ),
        id="mixed",
    ),
    pytest.param(
        {
            "deployments": [(1, 30, False), (2, 20, True), (3, 5, False)],
            "failed": {1, 2, 3},
            "failures": [(1, 30, 29.5), (2, 20, 19), (3, 5, 2)],
            "leads": [(1, 30, 100.0), (2, 20, 300.0), (3, 5, 200.0)],
        },
        48,
        # odd number of observations: the middle one; restores 1800, 3600, 10800 -> 3600
        Expected(
            deployments=3,
            deployments_per_day=1.5,
            changes=3,
            lead_time_median_seconds=200.0,
            failed_deployments=3,
            change_failure_rate=1.0,
            restored_failures=3,
            time_to_restore_median_seconds=3600.0,
            rework_deployments=1,
            rework_rate=1 / 3,
        ),
        id="all-failed-odd-medians",
    ),
]


@pytest.mark.parametrize(("kwargs", "window_hours", "expected"), WINDOW_CASES)
def test_window_stats(kwargs: dict[str, Any], window_hours: int, expected: Expected) -> None:
    since = NOW - timedelta(hours=window_hours)
    s = window_stats(history(**kwargs), since, NOW)
    assert s.since == since and s.until == NOW
    assert Expected.of(s) == expected  # exact: None (no data) is neither 0 nor NaN


def test_empty_window_levels() -> None:
    s = window_stats(PairHistory(KEY), NOW - timedelta(days=30), NOW)
    assert s.levels(PRESETS["dora-2023"]) == {
        Metric.DEPLOYMENT_FREQUENCY: Level.LOW,  # 0 per day is a fact, not missing data
        Metric.LEAD_TIME: None,
        Metric.CHANGE_FAILURE_RATE: None,
        Metric.TIME_TO_RESTORE: None,
    }


# Each event sits exactly at ``since``, exactly at ``until``, or just inside/outside; (since, until].
BOUNDARY_CASES = [
    pytest.param(24 * H, 0, id="at-since-excluded"),
    pytest.param(24 * H - 1, 1, id="one-second-after-since-included"),
    pytest.param(0, 1, id="at-until-included"),
    pytest.param(-1, 0, id="one-second-after-until-excluded"),
    pytest.param(24 * H + 1, 0, id="before-since-excluded"),
]


@pytest.mark.parametrize(("seconds_ago", "count"), BOUNDARY_CASES)
def test_window_boundaries(seconds_ago: int, count: int) -> None:
    t = NOW - timedelta(seconds=seconds_ago)
    h = PairHistory(
        KEY,
        deployments=[Deployment(1, "api", "prod", "v1", t, DeploymentSource.GITOPS, rework=True)],
        failed_deployment_ids={1},
        failures=[
            Failure(1, "api", "prod", FailureReason.DEGRADED, t - timedelta(hours=1), deployment_id=1, restored_at=t)
        ],
        leads=[ChangeLead("api", "prod", "c1", 1, t, 600.0)],
    )
    s = window_stats(h, NOW - timedelta(days=1), NOW)
    counted = ("deployments", "changes", "failed_deployments", "restored_failures", "rework_deployments")
    assert {name: getattr(s, name) for name in counted} == dict.fromkeys(counted, count)
    assert s.deployments_per_day == float(count)
    assert s.lead_time_median_seconds == (600.0 if count else None)
    assert s.time_to_restore_median_seconds == (3600.0 if count else None)
    assert s.change_failure_rate == (1.0 if count else None)


@pytest.mark.parametrize("until_offset", [0, -1])
def test_window_must_be_positive(until_offset: int) -> None:
    with pytest.raises(ValueError, match="until > since"):
        window_stats(PairHistory(KEY), NOW, NOW + timedelta(seconds=until_offset))


DF, LT, CFR, TTR = Metric.DEPLOYMENT_FREQUENCY, Metric.LEAD_TIME, Metric.CHANGE_FAILURE_RATE, Metric.TIME_TO_RESTORE
E, HI, M, L = Level.ELITE, Level.HIGH, Level.MEDIUM, Level.LOW
EPS = 1e-9  # "just beyond" a per-day or ratio bound

# (preset, metric, value, level): every bound exactly (still in the better level) and just beyond it.
# Deployment frequency is per day and higher is better; the rest are seconds or ratios, lower is better.
LEVEL_CASES = [
    # dora-2021
    ("dora-2021", DF, 24.0, E),
    ("dora-2021", DF, 1.0, E),
    ("dora-2021", DF, 1.0 - EPS, HI),
    ("dora-2021", DF, 1 / 30, HI),
    ("dora-2021", DF, 1 / 30 - EPS, M),
    ("dora-2021", DF, 1 / 182.5, M),
    ("dora-2021", DF, 1 / 182.5 - EPS, L),
    ("dora-2021", DF, 0.0, L),
    ("dora-2021", LT, 0.0, E),
    ("dora-2021", LT, 3600.0, E),
    ("dora-2021", LT, 3601.0, HI),
    ("dora-2021", LT, 604800.0, HI),
    ("dora-2021", LT, 604801.0, M),
    ("dora-2021", LT, 15768000.0, M),
    ("dora-2021", LT, 15768001.0, L),
    ("dora-2021", CFR, 0.0, E),
    ("dora-2021", CFR, 0.15, E),
    ("dora-2021", CFR, 0.15 + EPS, HI),
    ("dora-2021", CFR, 0.30, HI),  # high and medium share 30 %: medium is unreachable in 2021
    ("dora-2021", CFR, 0.30 + EPS, L),
    ("dora-2021", CFR, 1.0, L),
    ("dora-2021", TTR, 3600.0, E),
    ("dora-2021", TTR, 3601.0, HI),
    ("dora-2021", TTR, 86400.0, HI),
    ("dora-2021", TTR, 86401.0, M),
    ("dora-2021", TTR, 604800.0, M),
    ("dora-2021", TTR, 604801.0, L),
    # dora-2023
    ("dora-2023", DF, 1.0, E),
    ("dora-2023", DF, 1.0 - EPS, HI),
    ("dora-2023", DF, 1 / 7, HI),
    ("dora-2023", DF, 1 / 7 - EPS, M),
    ("dora-2023", DF, 1 / 30, M),
    ("dora-2023", DF, 1 / 30 - EPS, L),
    ("dora-2023", DF, 0.0, L),
    ("dora-2023", LT, 86400.0, E),
    ("dora-2023", LT, 86401.0, HI),
    ("dora-2023", LT, 604800.0, HI),
    ("dora-2023", LT, 604801.0, M),
    ("dora-2023", LT, 2592000.0, M),
    ("dora-2023", LT, 2592001.0, L),
    ("dora-2023", CFR, 0.05, E),
    ("dora-2023", CFR, 0.05 + EPS, HI),
    ("dora-2023", CFR, 0.10, HI),
    ("dora-2023", CFR, 0.10 + EPS, M),
    ("dora-2023", CFR, 0.15, M),
    ("dora-2023", CFR, 0.15 + EPS, L),
    ("dora-2023", TTR, 3600.0, E),
    ("dora-2023", TTR, 3601.0, HI),
    ("dora-2023", TTR, 86400.0, HI),
    ("dora-2023", TTR, 86401.0, M),
    ("dora-2023", TTR, 604800.0, M),
    ("dora-2023", TTR, 604801.0, L),
    # dora-2024
    ("dora-2024", DF, 1.0, E),
    ("dora-2024", DF, 1.0 - EPS, HI),
    ("dora-2024", DF, 1 / 7, HI),
    ("dora-2024", DF, 1 / 7 - EPS, M),
    ("dora-2024", DF, 1 / 30, M),
    ("dora-2024", DF, 1 / 30 - EPS, L),
    ("dora-2024", LT, 86400.0, E),
    ("dora-2024", LT, 86401.0, HI),
    ("dora-2024", LT, 604800.0, HI),
    ("dora-2024", LT, 604801.0, M),
    ("dora-2024", LT, 2592000.0, M),
    ("dora-2024", LT, 2592001.0, L),
    ("dora-2024", CFR, 0.05, E),
    ("dora-2024", CFR, 0.05 + EPS, HI),
    ("dora-2024", CFR, 0.20, HI),
    ("dora-2024", CFR, 0.20 + EPS, M),
    ("dora-2024", CFR, 0.40, M),
    ("dora-2024", CFR, 0.40 + EPS, L),
    ("dora-2024", TTR, 3600.0, E),
    ("dora-2024", TTR, 3601.0, HI),
    ("dora-2024", TTR, 86400.0, HI),
    ("dora-2024", TTR, 86401.0, M),
    ("dora-2024", TTR, 604800.0, M),
    ("dora-2024", TTR, 604801.0, L),
]


@pytest.mark.parametrize(
    ("preset", "metric", "value", "level"),
    LEVEL_CASES,
    ids=[f"{p}-{m.value}-{v!r}" for p, m, v, _ in LEVEL_CASES],
)
def test_classify_bounds(preset: str, metric: Metric, value: float, level: Level) -> None:
    assert classify(metric, value, PRESETS[preset]) is level


@pytest.mark.parametrize("preset", ["dora-2021", "dora-2023", "dora-2024"])
@pytest.mark.parametrize("metric", list(Metric))
def test_classify_none_is_none(preset: str, metric: Metric) -> None:
    assert classify(metric, None, PRESETS[preset]) is None


def test_level_gauge_values() -> None:
    assert [(lvl.label, int(lvl)) for lvl in Level] == [("low", 1), ("medium", 2), ("high", 3), ("elite", 4)]


def test_levels_of_a_window() -> None:
    s = WindowStats(
        since=NOW - timedelta(days=7),
        until=NOW,
        deployments=7,
        deployments_per_day=1.0,
        changes=3,
        lead_time_median_seconds=604801.0,
        failed_deployments=1,
        change_failure_rate=1 / 7,
        restored_failures=0,
        time_to_restore_median_seconds=None,
        rework_deployments=1,
        rework_rate=1 / 7,
    )
    assert s.levels(PRESETS["dora-2024"]) == {
        Metric.DEPLOYMENT_FREQUENCY: Level.ELITE,
        Metric.LEAD_TIME: Level.MEDIUM,
        Metric.CHANGE_FAILURE_RATE: Level.HIGH,
        Metric.TIME_TO_RESTORE: None,
    }
