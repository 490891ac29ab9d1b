# SPDX-License-Identifier: Apache-2.0
"""The upper bound of every duration and count in the config, each with its reason, in one place.

A value past its bound is a config error (``check-config`` exits 2 naming the key), not a start that
dies on an ``OverflowError``. The bounds are generous: each is far past any setting that means
something, and well inside what the code computes with (dates, timers, memory). ``docs/limits.md``
lists them; a field's description carries its ``note``.
"""

from __future__ import annotations

from exporter.config.fields import Limit

__all__ = [
    "BACKOFF",
    "BUDGET",
    "FAILURE_WINDOW",
    "HISTORY",
    "LEVEL_DURATION",
    "LEVEL_RATE",
    "MANIFEST_BYTES",
    "MATCH_WINDOW",
    "PENDING_AGE",
    "POLL_INTERVAL",
    "RATE_LIMIT_WAIT",
    "RETRIES",
    "ROLLBACK_AGE",
    "TIMEOUT",
    "WINDOW",
]

MIB = 1 << 20

WINDOW = Limit("3650d", "ten years, more history than a store holds; far longer, dates overflow")
HISTORY = Limit("3650d", "ten years, as the longest window")
LEVEL_DURATION = Limit("3650d", "a level bound past the longest window is never reached")
LEVEL_RATE = Limit(86400, "one deployment a second, around the clock")
POLL_INTERVAL = Limit("1d", "a source read less than daily is a stale source")
FAILURE_WINDOW = Limit("365d", "a failure a year on is not the deployment's doing")
ROLLBACK_AGE = Limit("365d", "longer would count almost no rollback")
MATCH_WINDOW = Limit("1d", "two sources see one deployment within minutes, not days")
PENDING_AGE = Limit("365d", "a deployment unfinished for a year is not coming")
TIMEOUT = Limit("1h", "a request waiting longer is hung; the supervision retries it")
BUDGET = Limit("1h", "one poll holding the source longer delays every other")
RATE_LIMIT_WAIT = Limit("1h", "GitHub's rate limits reset within the hour")
RETRIES = Limit(10, "more retries only hold a failing poll longer", least=0)
BACKOFF = Limit("1h", "a longer wait hides a recovered server for hours")
MANIFEST_BYTES = Limit(
    32 * MIB,
    "reading a manifest takes several times its size in memory, and the chart allows the pod 1 GiB",
    least=1024,
    shown="33554432 (32 MiB)",
)
