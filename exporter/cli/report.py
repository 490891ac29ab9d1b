# SPDX-License-Identifier: Apache-2.0
"""``report``: the DORA metrics per service and environment over a window, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from exporter.cli.reading import open_store
from exporter.core.durations import format_duration
from exporter.core.snapshot import report_rows
from exporter.daemon.publisher import known_pairs
from exporter.errors import ConfigError
from exporter.settings import Config

__all__ = ["report"]

_DEFAULT_WINDOW = 30 * 86400.0
_HEAD = ("service", "env", "deploys", "per day", "changes", "lead p50", "CFR", "TTR p50", "rework")


def report(cfg: Config, args: argparse.Namespace) -> int:
    since, until = _window(args)
    with open_store(cfg) as store:
        if not store.pair_keys():  # zeros would read as "nothing deployed", not "nothing read yet"
            print("no data yet: run `dora-exporter ingest` (or start `dora-exporter run`)", file=sys.stderr)
            return 1
        histories = store.histories(cfg.change_start, since=since.timestamp())  # the window's rows only
    rows = report_rows(histories, known_pairs(cfg), since, until, cfg.thresholds)
    if args.format == "json":
        doc = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "production_environment": cfg.production_environment,
            "rows": rows,
        }
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{since.isoformat(timespec='seconds')} .. {until.isoformat(timespec='seconds')}")
    table = [_HEAD, *(_cells(r) for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEAD))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """``--since``/``--until``, or ``--window`` (seconds, bounded by the parser) back from ``--until``."""
    if args.window and (args.since or args.until):
        raise ConfigError("--window", "use either --window or --since/--until")
    until: datetime = args.until or datetime.now(UTC)
    since: datetime = args.since or until - timedelta(seconds=args.window or _DEFAULT_WINDOW)
    if since >= until:
        raise ConfigError("--since", "must be before --until (default: now)")
    return since, until


def _cells(r: dict[str, Any]) -> tuple[str, ...]:
    return (
        str(r["service"]),
        str(r["environment"]),
        str(r["deployments"]),
        f"{r['deployments_per_day']:.2f}",
        str(r["changes"]),
        _dur(r["lead_time_median_seconds"]),
        _pct(r["change_failure_rate"]),
        _dur(r["time_to_restore_median_seconds"]),
        _pct(r["rework_rate"]),
    )


def _dur(v: Any) -> str:
    return "-" if v is None else format_duration(float(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.0%}"
