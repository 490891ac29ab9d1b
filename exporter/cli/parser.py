"""The command line's grammar: every sub-command and its options."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from exporter import __version__

__all__ = ["DESCRIPTION", "parser"]

DESCRIPTION = "``dora-exporter`` sub-commands. Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage."


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dora-exporter", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"dora-exporter {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument("--config", help="config file (default: $DORA_EXPORTER_CONFIG, then ./dora.yaml)")
        return c

    cmd("run", "start the daemon")
    cmd("ingest", "one ingest pass over every source, then exit")
    cmd("check-config", "validate the config and print it, secrets redacted")
    sub.add_parser("config-schema", help="print the JSON Schema of the config file")
    e = cmd("explain", "explain one deployment: its changes, lead times and failures")
    e.add_argument("--service", required=True)
    e.add_argument("--environment", required=True)
    e.add_argument("--at", type=_time, help="the deployment live at this time (default: the latest)")
    r = cmd("report", "the DORA metrics per service and environment over a window")
    r.add_argument("--window", default=None, help="e.g. 30d (default 30d)")
    r.add_argument("--since", type=_time)
    r.add_argument("--until", type=_time)
    r.add_argument("--format", choices=("table", "json"), default="table")
    d = sub.add_parser("demo", help="generate a MiniShop GitOps repo, its config, and run the daemon on it")
    d.add_argument("--dir", default="./demo", help="where to write the demo (default ./demo)")
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--days", type=int, default=120)
    d.add_argument("--end", type=_time, help="time of the last generated commit (default: now)")
    d.add_argument("--listen", default="127.0.0.1:9478")
    d.add_argument("--no-run", action="store_true", help="only generate the repo and config")
    return p
