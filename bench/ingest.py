# SPDX-License-Identifier: Apache-2.0
"""Full first ingest vs ``git log --first-parent -p`` over the same paths, in the same run.

    python bench/ingest.py /tmp/bench-large [--json bench/results/ingest.json]

Deletes the store of the generated setup (``dora.db``), then, in a fresh child process, runs the
exporter's full first ingest exactly as ``dora-exporter ingest`` does (every commit parsed, tags
resolved, changes listed, rollbacks found, the snapshot computed) and reports its wall time and
peak RSS. The baseline is git reading the same history: ``git log --first-parent -p <branch> --
<the manifest pathspecs>``, its output read and thrown away.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, Timer, ok, report


def child(config: str) -> None:
    """The measured ingest, in its own process so that peak RSS is the ingest's own."""
    import io
    import sys

    import structlog
    from common import peak_children_rss_mb, peak_rss_mb

    from exporter import config as cfgmod
    from exporter.daemon.runtime import Daemon

    cfg = cfgmod.load(Path(config))
    # the reader process reports its peak RSS in a debug event: keep the events, as JSON lines
    events = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(events),
        cache_logger_on_first_use=False,
    )
    daemon = Daemon(cfg)
    t0 = time.perf_counter()
    # as `dora-exporter ingest` does (Daemon.ingest_once): the polls, then one snapshot
    (result,) = [daemon.poll_gitops(ing, recompute=False) for ing in daemon.ingesters]
    t1 = time.perf_counter()
    snap = daemon.recompute()
    t2 = time.perf_counter()
    daemon.close()
    assert result is not None, "ingest failed"
    deployments = sum(p.deployments_total for p in snap.pairs)
    readers = [json.loads(line) for line in events.getvalue().splitlines() if "gitops.reader_finished" in line]
    reader_mb = float(readers[-1]["peak_rss_mb"]) if readers else 0.0
    print(events.getvalue(), file=sys.stderr, end="")
    print(
        json.dumps(
            {
                "ingest_seconds": t1 - t0,
                "snapshot_seconds": t2 - t1,
                "total_seconds": t2 - t0,
                # the exporter's own processes: the ingester plus the GitOps reader process, if any
                "peak_rss_mb": peak_rss_mb() + reader_mb,
                "peak_rss_self_mb": peak_rss_mb(),
                "peak_rss_reader_mb": reader_mb,
                # for information: the largest of the git processes (and the reader), a kernel maximum
                "peak_rss_largest_child_mb": peak_children_rss_mb(),
                "commits": result.commits,
                "deployments": deployments,
                "pairs": len(snap.pairs),
            }
        )
    )


def baseline(cfg_path: Path) -> tuple[float, int]:
    import yaml

    raw = yaml.safe_load(cfg_path.read_text())
    repo = raw["gitops"][0]
    from exporter import config as cfgmod

    cfg = cfgmod.load(cfg_path)
    specs = sorted({r.pathspec for r in cfg.gitops[0].manifests})
    args = ["git", "-C", repo["repo"], "log", "--first-parent", "-p", repo.get("branch", "main"), "--", *specs]
    with Timer() as t:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        size = 0
        while chunk := proc.stdout.read(1 << 20):
            size += len(chunk)
        proc.wait()
    return t.seconds, size


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setup", type=Path, help="a directory made by bench/generate.py")
    p.add_argument("--json", type=Path, default=None, help="where to write the results")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    cfg_path = args.setup / "dora.yaml"
    if args.child:
        child(str(cfg_path))
        return 0
    for name in ("dora.db", "dora.db-wal", "dora.db-shm"):
        (args.setup / name).unlink(missing_ok=True)
    base_s, base_bytes = baseline(cfg_path)  # also warms the page cache for both runs
    base_s, base_bytes = baseline(cfg_path)
    proc = subprocess.run(
        [sys.executable, __file__, str(args.setup), "--child"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = res["total_seconds"] / base_s
    gen = json.loads((args.setup / "generated.json").read_text())
    rows = [
        ("setup", f"{gen['layout']}/{gen['shape']}", ""),
        ("first-parent commits", f"{res['commits']:,}", ""),
        ("deployments stored", f"{res['deployments']:,}", ""),
        ("baseline git log -p", f"{base_s:.2f} s", f"{base_bytes / 2**20:.0f} MiB of patches"),
        ("ingest (poll)", f"{res['ingest_seconds']:.2f} s", ""),
        ("snapshot compute", f"{res['snapshot_seconds']:.2f} s", ""),
        ("ingest total", f"{res['total_seconds']:.2f} s", ""),
        ("ratio to baseline", f"{ratio:.2f}x", f"target <= 3x: {ok(ratio, 3)}"),
        (
            "peak RSS",
            f"{res['peak_rss_mb']:.0f} MB",
            f"target <= 300 MB: {ok(res['peak_rss_mb'], 300)} (ingester {res['peak_rss_self_mb']:.0f} MB + reader "
            f"{res['peak_rss_reader_mb']:.0f} MB; largest child {res['peak_rss_largest_child_mb']:.0f} MB)",
        ),
    ]
    report(
        "ingest",
        rows,
        {"generated": gen, "baseline_seconds": base_s, "baseline_bytes": base_bytes, "ratio": ratio, **res},
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
