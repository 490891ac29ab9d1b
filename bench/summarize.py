# SPDX-License-Identifier: Apache-2.0
"""Markdown tables from the JSON results of several setups (the figures in bench/README.md and
docs/scale.md come from this).

    python bench/summarize.py bench/results/bench-20k-values-linear bench/results/bench-200k-values-linear
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(d: Path) -> dict[str, dict[str, object]]:
    return {
        name: json.loads((d / f"{name}.json").read_text()) for name in ("ingest", "scrape", "report", "incremental")
    }


def main() -> int:
    dirs = [Path(a) for a in sys.argv[1:]]
    runs = [load(d) for d in dirs]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn: object) -> None:
        rows.append((label, [fn(r) for r in runs]))  # type: ignore[operator]

    row("setup", lambda r: f"{r['ingest']['generated']['layout']}/{r['ingest']['generated']['shape']}")
    row("GitOps first-parent commits", lambda r: f"{r['ingest']['commits']:,}")
    row("source commits", lambda r: f"{r['ingest']['generated']['source_commits']:,}")
    row("stored deployments", lambda r: f"{r['ingest']['deployments']:,}")
    row("baseline git log --first-parent -p", lambda r: f"{r['ingest']['baseline_seconds']:.2f} s")
    row("full ingest (incl. snapshot)", lambda r: f"{r['ingest']['total_seconds']:.1f} s")
    row("ingest per commit", lambda r: f"{r['ingest']['total_seconds'] / r['ingest']['commits'] * 1000:.2f} ms")
    row("ratio to baseline (target <= 3x)", lambda r: f"{r['ingest']['ratio']:.2f}x")
    row("peak RSS of the ingest (target <= 300 MB)", lambda r: f"{r['ingest']['peak_rss_mb']:.0f} MB")
    row("first poll of a started daemon (graph load)", lambda r: f"{r['incremental']['cold_poll_seconds']:.1f} s")
    row("poll, 0 new commits (target < 100 ms)", lambda r: f"{r['incremental']['empty_poll_seconds'] * 1000:.1f} ms")
    row("poll, 100 new commits (target < 1 s)", lambda r: f"{r['incremental']['hundred_poll_seconds']:.2f} s")
    row("daemon RSS after the polls (target < 150 MB)", lambda r: f"{r['incremental']['steady_rss_mb']:.0f} MB")
    row("snapshot recompute, cold (scrape.py)", lambda r: f"{r['scrape']['snapshot_seconds']:.2f} s")
    row("samples served", lambda r: f"{r['scrape']['samples']:,}")
    row("/metrics body", lambda r: f"{r['scrape']['exposition_seconds'] * 1000:.2f} ms")
    row("  without render cache", lambda r: f"{r['scrape']['uncached_exposition_seconds'] * 1000:.1f} ms")
    row("bare prometheus_client, same samples", lambda r: f"{r['scrape']['bare_exposition_seconds'] * 1000:.1f} ms")
    row(
        "ratio to bare (target <= 2x)",
        lambda r: (
            f"{r['scrape']['ratio']:.3f}x "
            f"(uncached {r['scrape']['uncached_exposition_seconds'] / r['scrape']['bare_exposition_seconds']:.2f}x)"
        ),
    )
    row("HTTP p50 / p99, 4 scrapers (p99 < 100 ms)", lambda r: f"{r['scrape']['http_p50_seconds'] * 1000:.1f} / "
        f"{r['scrape']['http_p99_seconds'] * 1000:.1f} ms")  # fmt: skip
    row("report --window 90d", lambda r: f"{r['report']['median_seconds']:.2f} s")
    print("| measure | " + " | ".join(d.name for d in dirs) + " |")
    print("|---|" + "---:|" * len(dirs))
    for label, values in rows:
        print(f"| {label} | " + " | ".join(values) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
