# SPDX-License-Identifier: Apache-2.0
"""Incremental polls on a large ingested store: one that finds 0 new commits, one that finds 100.

    python bench/incremental.py /tmp/bench-large [--json bench/results/incremental.json]

Run ``bench/ingest.py`` on the setup first. The script opens the daemon on it and brings it to its
steady state (a first poll over 5 appended commits loads the source commit graph, as the first
ingest of a running daemon would have), then times ``Daemon.poll_gitops`` exactly as the scheduler
calls it: with nothing new, then after appending 100 tag bumps (each with a new source commit,
in the setup's layout and history shape). A poll that finds commits includes the snapshot
recompute. Appended commits stay in the setup (each run adds 105).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import time
from pathlib import Path

from common import Timer, ok, report, rss_mb
from generate import ENVIRONMENTS, manifest_body, manifest_path

from exporter import config
from exporter.cli import logs
from exporter.daemon.runtime import Daemon
from exporter.demo.fastimport import FastImport


def _tip(repo: Path) -> tuple[str, int]:
    out = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%H %ct", "refs/heads/main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], int(out[1])


def append(setup: Path, n: int, seed: int) -> None:
    """``n`` dev bumps, each a new source commit and a GitOps commit (or branch commit + merge)."""
    gen = json.loads((setup / "generated.json").read_text())
    rng = random.Random(seed)
    services = [f"svc-{i:03d}" for i in range(gen["services"])]
    src_tip, src_t = _tip(setup / "source")
    ops_tip, ops_t = _tip(setup / "gitops")
    clock = max(src_t, ops_t) + 1
    with FastImport(setup / "source") as src, FastImport(setup / "gitops") as ops:
        src_parent, ops_parent = src_tip, ops_tip
        for i in range(n):
            s = rng.choice(services)
            clock += 60
            mark = src.commit(
                f"{s}: later change {i}", clock, {f"services/{s}/src/later.py": f"# {clock}\n"}, parents=[src_parent]
            )
            src_parent = mark
            tag = src.sha(mark)
            files: dict[str, str | None] = {
                manifest_path(gen["layout"], s, ENVIRONMENTS[0]): manifest_body(gen["layout"], s, ENVIRONMENTS[0], tag)
            }
            clock += 60
            message = f"Update image tags to {tag[:12]}"
            if gen["shape"] == "linear":
                ops_parent = ops.commit(message, clock, files, parents=[ops_parent])
            else:
                side = ops.commit(message, clock, files, ref="refs/heads/bump-later", parents=[ops_parent])
                ops_parent = ops.commit(f"Merge: {message}", clock + 1, files, parents=[ops_parent, side])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setup", type=Path)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = config.load(args.setup / "dora.yaml")
    logs.configure("warning", "json")
    daemon = Daemon(cfg)
    (ing,) = daemon.ingesters
    seed = int(time.time())
    append(args.setup, 5, seed)
    with Timer() as cold:
        first = daemon.poll_gitops(ing)
    assert first is not None and first.commits >= 5, first
    with Timer() as empty:
        none = daemon.poll_gitops(ing)
    assert none is not None and none.commits == 0, none
    empties = []
    for _ in range(20):
        with Timer() as t:
            daemon.poll_gitops(ing)
        empties.append(t.seconds)
    append(args.setup, 100, seed + 1)
    with Timer() as hundred:
        new = daemon.poll_gitops(ing)
    assert new is not None and new.commits == 100, new
    steady = rss_mb()
    deployments = sum(p.deployments_total for p in daemon.holder.get().pairs)
    daemon.close()
    empty_med = sorted(empties)[len(empties) // 2]
    rows = [
        ("stored deployments", f"{deployments:,}", ""),
        ("first poll (5 commits, cold)", f"{cold.seconds * 1000:.0f} ms", "loads the source commit graph"),
        ("poll, 0 new commits", f"{empty.seconds * 1000:.1f} ms", f"target < 100 ms: {ok(empty.seconds, 0.1)}"),
        ("  median of 20 more", f"{empty_med * 1000:.1f} ms", ""),
        ("poll, 100 new commits", f"{hundred.seconds * 1000:.0f} ms", f"target < 1 s: {ok(hundred.seconds, 1)}"),
        ("daemon RSS after", f"{steady:.0f} MB", f"target < 150 MB: {ok(steady, 150)}"),
    ]
    report(
        "incremental",
        rows,
        {
            "deployments": deployments,
            "cold_poll_seconds": cold.seconds,
            "empty_poll_seconds": empty.seconds,
            "empty_poll_median_seconds": empty_med,
            "hundred_poll_seconds": hundred.seconds,
            "hundred_poll_deployments": new.deployments,
            "steady_rss_mb": steady,
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
