# SPDX-License-Identifier: Apache-2.0
"""Two pairs' literal histories at a fixed ``NOW`` and the snapshot built from them.

The collector and exposition tests read exact samples off this snapshot, so its numbers are chosen:
a baseline, two releases and a rollback on one pair, a failed sync and an open incident on the other.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exporter.core import snapshot
from exporter.core.levels import PRESETS
from exporter.model import (
    ChangeLead,
    Deployment,
    DeploymentSource,
    Failure,
    FailureReason,
    PairHistory,
    PairKey,
)
from exporter.serve import Health

__all__ = [
    "API_PROD",
    "API_STAGING",
    "HISTORIES",
    "KNOWN",
    "NOW",
    "REPO_PART",
    "WEB_PROD",
    "WINDOWS",
    "ago",
    "build",
    "dep",
    "health",
    "lead",
]

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
WINDOWS = [("1d", 86400.0), ("7d", 604800.0)]
API_PROD, API_STAGING, WEB_PROD = PairKey("api", "prod"), PairKey("api", "staging"), PairKey("web", "prod")
REPO_PART = "minishop-0123456789"


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def dep(i: int, key: PairKey, t: datetime, rework: bool = False) -> Deployment:
    return Deployment(i, key.service, key.environment, f"v{i}", t, DeploymentSource.GITOPS, rework=rework)


def lead(key: PairKey, dep_id: int, t: datetime, seconds: float) -> ChangeLead:
    return ChangeLead(key.service, key.environment, f"sha{dep_id}-{seconds:g}", dep_id, t, seconds)


HISTORIES = {
    # a baseline, two releases, the second rolled back (and Degraded meanwhile) two hours later
    API_PROD: PairHistory(
        API_PROD,
        deployments=[
            dep(1, API_PROD, ago(days=10)),
            dep(2, API_PROD, ago(days=3)),
            dep(3, API_PROD, ago(days=2)),
            dep(4, API_PROD, ago(days=2, hours=-2), rework=True),
        ],
        failed_deployment_ids={3},
        failures=[
            Failure(1, "api", "prod", FailureReason.ROLLBACK, ago(days=2), 3, ago(days=2, hours=-2), 4),
            Failure(2, "api", "prod", FailureReason.DEGRADED, ago(days=2, minutes=-10), 3, ago(days=2, hours=-2)),
        ],
        leads=[
            lead(API_PROD, 2, ago(days=3), 1800.0),
            lead(API_PROD, 2, ago(days=3), 7200.0),
            lead(API_PROD, 3, ago(days=2), 90000.0),
        ],
    ),
    # a release an hour ago whose sync failed, still broken, plus an incident nobody attributed yet
    WEB_PROD: PairHistory(
        WEB_PROD,
        deployments=[dep(5, WEB_PROD, ago(days=30)), dep(6, WEB_PROD, ago(hours=1))],
        failed_deployment_ids={6},
        failures=[
            Failure(3, "web", "prod", FailureReason.SYNC_FAILED, ago(hours=1), 6),
            Failure(4, "web", "prod", FailureReason.INCIDENT, ago(minutes=30), None),
        ],
        leads=[lead(WEB_PROD, 6, ago(hours=1), 3600.0)],  # exactly on a bucket bound: le is inclusive
    ),
}
KNOWN = [API_PROD, API_STAGING, WEB_PROD]


def build(unmatched: dict[tuple[str, str], int] | None = None) -> snapshot.Snapshot:
    return snapshot.build(
        HISTORIES, known_pairs=KNOWN, now=NOW, windows=WINDOWS, thresholds=PRESETS["dora-2023"], unmatched=unmatched
    )


def health() -> Health:
    return Health({"gitops": [REPO_PART]})
