# SPDX-License-Identifier: Apache-2.0
"""``dora-exporter report --window 90d`` wall time on a large store.

    python bench/report.py /tmp/bench-large [--json bench/results/report.json]

Runs the real CLI (a new process: interpreter start, config, store open, the query, the table)
five times on the setup's store and reports the median and the best, plus the JSON output's size.
Run ``bench/ingest.py`` on the setup first.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from common import ROOT, Timer, report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setup", type=Path)
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--window", default="90d")
    args = p.parse_args()
    cmd = [sys.executable, "-m", "exporter.cli", "report", "--config", str(args.setup / "dora.yaml")]
    cmd += ["--window", args.window, "--format", "json"]
    times = []
    rows = 0
    for _ in range(5):
        with Timer() as t:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
        times.append(t.seconds)
        rows = out.count('"service"')
    with Timer() as bare:
        subprocess.run([sys.executable, "-c", "import exporter.cli"], check=True, cwd=ROOT)
    med = statistics.median(times)
    report(
        "report",
        [
            (
                f"report --window {args.window}",
                f"{med * 1000:.0f} ms",
                f"median of 5 (best {min(times) * 1000:.0f} ms)",
            ),
            ("  of which interpreter + imports", f"{bare.seconds * 1000:.0f} ms", "python -c 'import exporter.cli'"),
            ("rows", f"{rows}", ""),
        ],
        {"window": args.window, "median_seconds": med, "times": times, "import_seconds": bare.seconds, "rows": rows},
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
