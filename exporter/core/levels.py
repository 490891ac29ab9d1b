# SPDX-License-Identifier: Apache-2.0
"""Performance levels: elite/high/medium/low per metric, from named presets of the DORA reports.

Apart from the window statistics so that configuration (presets, custom bounds) depends on the
level tables only, and a change of thresholds never touches how a window is counted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "DAY",
    "DEFAULT_PRESET",
    "HALF_YEAR",
    "HIGHER_IS_BETTER",
    "MONTH",
    "PRESETS",
    "WEEK",
    "Bounds",
    "Level",
    "Metric",
    "Thresholds",
    "classify",
]

DAY = 86400.0
WEEK = 7 * DAY
MONTH = 30 * DAY
HALF_YEAR = 182.5 * DAY


class Level(enum.IntEnum):
    """Gauge values of ``dora_performance_level``."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    ELITE = 4

    @property
    def label(self) -> str:
        return self.name.lower()


class Metric(enum.StrEnum):
    DEPLOYMENT_FREQUENCY = "deployment_frequency"
    LEAD_TIME = "lead_time"
    CHANGE_FAILURE_RATE = "change_failure_rate"
    TIME_TO_RESTORE = "time_to_restore"


HIGHER_IS_BETTER = frozenset({Metric.DEPLOYMENT_FREQUENCY})


@dataclass(frozen=True, slots=True)
class Bounds:
    """The worst value still in each level. Deployment frequency is in deployments per day
    (higher is better: ``value >= bound``); the others are seconds or a ratio (``value <= bound``)."""

    elite: float
    high: float
    medium: float


Thresholds = dict[Metric, Bounds]

# Sources: the DORA "Accelerate State of DevOps" reports 2021 (p. 11), 2023 (p. 13) and 2024 (p. 13),
# software delivery performance cluster tables. The reports give bands in words ("between once per
# week and once per month"); each bound below is the edge between two adjacent levels. Where a
# report's bands overlap or are not monotonic, the comment says which edge we chose.
PRESETS: dict[str, Thresholds] = {
    "dora-2021": {
        # elite: on demand (multiple per day); high: weekly..monthly; medium: monthly..6-monthly
        Metric.DEPLOYMENT_FREQUENCY: Bounds(elite=1.0, high=1 / 30, medium=1 / 182.5),
        # elite < 1 h; high 1 d..1 w; medium 1 month..6 months; low > 6 months
        Metric.LEAD_TIME: Bounds(elite=3600, high=WEEK, medium=HALF_YEAR),
        # elite 0-15 %; high, medium and low all 16-30 %: medium is unreachable by design of the report
        Metric.CHANGE_FAILURE_RATE: Bounds(elite=0.15, high=0.30, medium=0.30),
        # elite < 1 h; high < 1 d; medium 1 d..1 w; low > 6 months
        Metric.TIME_TO_RESTORE: Bounds(elite=3600, high=DAY, medium=WEEK),
    },
    "dora-2023": {
        # elite: on demand; high: daily..weekly; medium: weekly..monthly; low: below monthly
        Metric.DEPLOYMENT_FREQUENCY: Bounds(elite=1.0, high=1 / 7, medium=1 / 30),
        # elite < 1 d; high 1 d..1 w; medium 1 w..1 month; low beyond
        Metric.LEAD_TIME: Bounds(elite=DAY, high=WEEK, medium=MONTH),
        # cluster values 5 %, 10 %, 15 %, 64 %
        Metric.CHANGE_FAILURE_RATE: Bounds(elite=0.05, high=0.10, medium=0.15),
        # elite < 1 h; high < 1 d; medium 1 d..1 w; low 1 month..6 months
        Metric.TIME_TO_RESTORE: Bounds(elite=3600, high=DAY, medium=WEEK),
    },
    "dora-2024": {
        Metric.DEPLOYMENT_FREQUENCY: Bounds(elite=1.0, high=1 / 7, medium=1 / 30),
        Metric.LEAD_TIME: Bounds(elite=DAY, high=WEEK, medium=MONTH),
        # cluster values elite 5 %, high 20 %, medium 10 %, low 40 %: medium sits below high, so a
        # monotonic scale uses elite 5 %, high 20 %, and low's 40 % as the medium/low edge
        Metric.CHANGE_FAILURE_RATE: Bounds(elite=0.05, high=0.20, medium=0.40),
        # elite < 1 h; high and medium both < 1 d; low 1 w..1 month: medium/low edge at 1 w
        Metric.TIME_TO_RESTORE: Bounds(elite=3600, high=DAY, medium=WEEK),
    },
}
DEFAULT_PRESET = "dora-2023"


def classify(metric: Metric, value: float | None, thresholds: Thresholds) -> Level | None:
    """The performance level of ``value``, or ``None`` when there is no value to judge."""
    if value is None:
        return None
    b = thresholds[metric]
    if metric in HIGHER_IS_BETTER:
        checks = ((b.elite, Level.ELITE), (b.high, Level.HIGH), (b.medium, Level.MEDIUM))
        return next((lvl for bound, lvl in checks if value >= bound), Level.LOW)
    checks = ((b.elite, Level.ELITE), (b.high, Level.HIGH), (b.medium, Level.MEDIUM))
    return next((lvl for bound, lvl in checks if value <= bound), Level.LOW)
