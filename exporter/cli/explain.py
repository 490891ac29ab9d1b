# SPDX-License-Identifier: Apache-2.0
"""``explain``: one deployment of a pair, its changes, lead times and failures, as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime

from exporter.cli.reading import open_store
from exporter.serve.explain import explain as explain_pair
from exporter.settings import Config

__all__ = ["explain"]


def explain(cfg: Config, args: argparse.Namespace) -> int:
    """The latest deployment (or the one live at ``--at``); exit 1 when there is none."""
    with open_store(cfg) as store:
        deps = explain_pair(store, cfg.change_start, args.service, args.environment)
    if args.at is not None:
        deps = [d for d in deps if datetime.fromisoformat(d["deployed_at"]) <= args.at]
    if not deps:
        print(f"no deployment of {args.service} to {args.environment}", file=sys.stderr)
        return 1
    print(json.dumps(deps[-1], indent=2))
    return 0
