"""``dora-exporter`` sub-commands. Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from exporter import __version__, config
from exporter.cli import logs
from exporter.core.durations import format_duration, parse_duration
from exporter.errors import ConfigError, DoraError


def _time(text: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dora-exporter", description=__doc__)
    p.add_argument("--version", action="version", version=f"dora-exporter {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument("--config", help="config file (default: $DORA_EXPORTER_CONFIG, then ./dora.yaml)")
        return c

    cmd("run", "start the daemon")
    cmd("ingest", "one ingest pass over every source, then exit")
    cmd("check-config", "validate the config and print it, secrets redacted")
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"dora-exporter: config error: {exc}", file=sys.stderr)
        return 2
    except DoraError as exc:
        print(f"dora-exporter: {exc}", file=sys.stderr)
        return 1


def _load(args: argparse.Namespace) -> config.Config:
    cfg = config.load(config.resolve_path(args.config))
    logs.configure(cfg.log_level, cfg.log_format)
    return cfg


def _dispatch(args: argparse.Namespace) -> int:
    from exporter.daemon.runtime import Daemon

    if args.command == "demo":
        return _demo(args)
    cfg = _load(args)
    if args.command == "check-config":
        print(yaml.safe_dump(cfg.redacted(), sort_keys=False), end="")
        return 0
    daemon = Daemon(cfg)
    if args.command == "run":
        return daemon.run()
    try:
        if args.command == "ingest":
            results = daemon.ingest_once(progress=True)
            return 0 if all(r is not None for r in results) else 1
        if args.command == "report":
            return _report(daemon, cfg, args)
        if args.command == "explain":
            return _explain(daemon, args)
    finally:
        daemon.close()
    raise AssertionError(args.command)


def _report(daemon: Any, cfg: config.Config, args: argparse.Namespace) -> int:
    from exporter.core.snapshot import report_rows

    if args.window and (args.since or args.until):
        raise ConfigError("--window", "use either --window or --since/--until")
    until = args.until or datetime.now(UTC)
    try:
        since = args.since or until - timedelta(seconds=parse_duration(args.window or "30d"))
    except ValueError as exc:
        raise ConfigError("--window", str(exc)) from exc
    if since >= until:
        raise ConfigError("--since", "must be before --until")
    histories = daemon.store.histories(cfg.change_start, since=since.timestamp())  # the window's rows only
    rows = report_rows(histories, daemon.known_pairs(), since, until, cfg.thresholds)
    doc = {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "production_environment": cfg.production_environment,
        "rows": rows,
    }
    if args.format == "json":
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{since.isoformat(timespec='seconds')} .. {until.isoformat(timespec='seconds')}")
    head = ("service", "env", "deploys", "per day", "changes", "lead p50", "CFR", "TTR p50", "rework")
    table = [head]
    for r in rows:
        table.append(
            (
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
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _dur(v: Any) -> str:
    return "-" if v is None else format_duration(float(v))


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.0%}"


def _explain(daemon: Any, args: argparse.Namespace) -> int:
    deps = daemon.explain(args.service, args.environment)
    if args.at is not None:
        deps = [d for d in deps if datetime.fromisoformat(d["deployed_at"]) <= args.at]
    if not deps:
        print(f"no deployment of {args.service} to {args.environment}", file=sys.stderr)
        return 1
    print(json.dumps(deps[-1], indent=2))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from exporter.daemon.runtime import Daemon
    from exporter.demo import generate

    out = Path(args.dir).resolve()
    # a new demo is a new history: a store left by an earlier run would describe the old one
    for leftover in ("dora.db", "dora.db-wal", "dora.db-shm"):
        (out / leftover).unlink(missing_ok=True)
    truth = generate.generate(out, seed=args.seed, days=args.days, end=args.end or datetime.now(UTC))
    cfg_path = generate.write_config(out, args.listen)
    print(f"demo repository: {truth.repo}\nconfig: {cfg_path}\nground truth: {out / 'ground-truth.json'}")
    if args.no_run:
        return 0
    cfg = config.load(cfg_path)
    logs.configure(cfg.log_level, cfg.log_format)
    print(f"serving http://{args.listen}/metrics  (Ctrl-C stops)", flush=True)
    return Daemon(cfg).run()


if __name__ == "__main__":
    sys.exit(main())
