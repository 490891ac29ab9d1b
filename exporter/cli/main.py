# SPDX-License-Identifier: Apache-2.0
"""``dora-exporter``: parse the command line and dispatch to the command's module.

Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage. Every failure the exporter
expects (a ``DoraError``, or an ``OSError`` about a file or a socket) ends as one line on stderr,
never a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from exporter import config
from exporter.cli import logs
from exporter.cli.parser import parser
from exporter.errors import ConfigError, DoraError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"dora-exporter: config error: {exc}", file=sys.stderr)
        return 2
    except DoraError as exc:
        print(f"dora-exporter: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # ``report | head``: the reader has what it wanted
        _quiet_stdout()
        return 0
    except OSError as exc:  # a file or socket the parts above did not name: at least say which, no traceback
        print(f"dora-exporter: {_os_error(exc)}", file=sys.stderr)
        return 1


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush into the closed pipe does not
    print an ``Exception ignored`` line on the way out."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _os_error(exc: OSError) -> str:
    where = " ".join(repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None)
    what = exc.strerror or str(exc)
    return (
        f"{where}: {what}; check that path (in the config or on the command line) and its permissions"
        if where
        else what
    )


def _load(args: argparse.Namespace) -> config.Config:
    cfg = config.load(config.resolve_path(args.config))
    logs.configure(cfg.log_level, cfg.log_format)
    return cfg


def _dispatch(args: argparse.Namespace) -> int:
    # each command imports what it needs: ``report`` and ``explain`` read the store without a daemon
    if args.command == "demo":
        from exporter.cli.demo import demo

        return demo(args)
    if args.command == "config-schema":
        from exporter.cli.configuration import config_schema

        return config_schema()
    cfg = _load(args)
    if args.command == "check-config":
        from exporter.cli.configuration import check_config

        return check_config(cfg)
    if args.command == "report":
        from exporter.cli.report import report

        return report(cfg, args)
    if args.command == "explain":
        from exporter.cli.explain import explain

        return explain(cfg, args)
    return _daemon(cfg, args.command)


def _daemon(cfg: config.Config, command: str) -> int:
    """``run`` serves until a signal; ``ingest`` runs every pass once and exits (1 if a poll failed)."""
    from exporter.daemon import Daemon

    daemon = Daemon(cfg)
    if command == "run":
        return daemon.run()
    if command != "ingest":
        raise AssertionError(command)
    try:
        results = daemon.ingest_once(progress=True)
        return 0 if all(r is not None for r in results) else 1
    finally:
        daemon.close()
