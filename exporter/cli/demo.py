# SPDX-License-Identifier: Apache-2.0
"""``demo``: generate the MiniShop GitOps repository and its config, then run a daemon on it.

The directory is the demo's own (``exporter.demo.workdir``): another one is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from exporter import config
from exporter.cli import logs
from exporter.errors import ConfigError

__all__ = ["demo"]


def demo(args: argparse.Namespace) -> int:
    from exporter.daemon import Daemon
    from exporter.demo import generate, workdir

    out = Path(args.dir).resolve()
    try:
        workdir.claim(out, force=args.force)
    except workdir.NotADemoDir as exc:
        raise ConfigError("--dir", str(exc)) from exc
    truth = generate.generate(out, seed=args.seed, days=args.days, end=args.end or datetime.now(UTC))
    cfg_path = generate.write_config(out, args.listen)
    print(f"demo repository: {truth.repo}\nconfig: {cfg_path}\nground truth: {out / 'ground-truth.json'}")
    if args.no_run:
        return 0
    cfg = config.load(cfg_path)
    logs.configure(cfg.log_level, cfg.log_format)
    print(f"serving http://{args.listen}/metrics  (Ctrl-C stops)", flush=True)
    return Daemon(cfg).run()
