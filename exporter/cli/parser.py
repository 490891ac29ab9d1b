# SPDX-License-Identifier: Apache-2.0
"""The command line's grammar: every sub-command and its options, each value checked where it is parsed.

A bad value is a usage error (exit 2) that names its flag, before any config or store is opened.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from exporter import PYTHON_VERSION, __revision__, __version__
from exporter.config.limits import WINDOW
from exporter.core.durations import format_duration, parse_duration

__all__ = ["DESCRIPTION", "EARLIEST", "MAX_DEMO_DAYS", "MAX_WINDOW_SECONDS", "VERSION_LINE", "parser"]

DESCRIPTION = "DORA metrics from Git, Argo CD and GitHub. Exit codes: 0 ok, 1 runtime error, 2 bad config or usage."

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the store holds Unix times: anything earlier is a typo
MAX_WINDOW_SECONDS = WINDOW.maximum  # the config's bound on windows: one limit for both ways of asking
MAX_DEMO_DAYS = 3660  # ten years of MiniShop is ~100k deployments, a few minutes to generate


VERSION_LINE = f"dora-exporter {__version__} (revision {__revision__}, Python {PYTHON_VERSION})"


class _Version(argparse.Action):
    """``--version``: one line on stdout, exit 0 (argparse's own action would wrap it to the terminal)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(VERSION_LINE)
        parser.exit()


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    if t < EARLIEST:
        raise argparse.ArgumentTypeError(f"{text!r} is before {EARLIEST.date()} (the Unix epoch)")
    return t


def _window(text: str) -> float:
    """Seconds in ``text``, more than zero and at most ``MAX_WINDOW_SECONDS`` (``nan`` fails both)."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0s")
    if not seconds <= MAX_WINDOW_SECONDS:
        limit = format_duration(MAX_WINDOW_SECONDS)
        raise argparse.ArgumentTypeError(f"{text!r} must be at most {limit} (ten years); use --since for more")
    return seconds


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if not 1 <= days <= MAX_DEMO_DAYS:
        raise argparse.ArgumentTypeError(f"{days} must be between 1 and {MAX_DEMO_DAYS} (ten years)")
    return days


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dora-exporter", description=DESCRIPTION)
    p.add_argument("--version", action=_Version, help="show the version, the git revision and Python; exit")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument("--config", help="config file (default: $DORA_EXPORTER_CONFIG, then ./dora.yaml)")
        return c

    cmd("run", "start the daemon (SIGTERM, SIGINT and SIGHUP stop it cleanly)")
    cmd("ingest", "one ingest pass over every source, then exit")
    cmd("check-config", "validate the config and print it, secrets redacted")
    sub.add_parser("config-schema", help="print the JSON Schema of the config file")
    e = cmd("explain", "explain one deployment: its changes, lead times and failures")
    e.add_argument("--service", required=True)
    e.add_argument("--environment", required=True)
    e.add_argument("--at", type=_time, help="the deployment live at this time (default: the latest)")
    r = cmd("report", "the DORA metrics per service and environment over a window")
    r.add_argument("--window", type=_window, default=None, help=f"e.g. 30d (default 30d, at most {WINDOW.most})")
    r.add_argument("--since", type=_time)
    r.add_argument("--until", type=_time)
    r.add_argument("--format", choices=("table", "json"), default="table")
    d = sub.add_parser("demo", help="generate a MiniShop GitOps repo, its config, and run the daemon on it")
    d.add_argument("--dir", default="./demo", help="where to write the demo (default ./demo)")
    d.add_argument(
        "--force", action="store_true", help="write the demo into a non-empty directory the demo did not create"
    )
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--days", type=_days, default=120, help=f"days of history (default 120, 1 to {MAX_DEMO_DAYS})")
    d.add_argument("--end", type=_time, help="time of the last generated commit (default: now)")
    d.add_argument("--listen", default="127.0.0.1:9478")
    d.add_argument("--no-run", action="store_true", help="only generate the repo and config")
    return p
