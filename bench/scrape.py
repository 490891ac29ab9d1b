# SPDX-License-Identifier: Apache-2.0
"""Serving ``/metrics`` from a large store vs prometheus_client's bare exposition, in the same run.

    python bench/scrape.py /tmp/bench-large [--json bench/results/scrape.json]

Opens the store of an ingested setup (run ``bench/ingest.py`` first), computes the snapshot as the
daemon does after a poll, then measures:

- the exposition itself: ``generate_latest`` of the daemon's registry (our collector, plus the
  process and platform collectors the daemon registers), best of 20;
- the baseline: ``generate_latest`` of a plain ``CollectorRegistry`` holding the same number of
  samples in ordinary ``Gauge`` children (labels of the same shape), best of 20; the ratio;
- ``/metrics`` over HTTP from the daemon's own server: 100 scrapes by 4 concurrent scrapers,
  p50 and p99 of the request latency;
- the daemon's RSS with the store open and the snapshot computed (steady state).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
from pathlib import Path

from common import Timer, ok, report, rss_mb
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from exporter import config
from exporter.cli import logs
from exporter.daemon.runtime import Daemon
from exporter.serve.http import HttpApp


def best(fn: object, n: int = 20) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_registry(samples: int) -> CollectorRegistry:
    """``samples`` gauge samples with (service, environment, window) labels, in 16 families."""
    reg = CollectorRegistry()
    families = [
        Gauge(f"bench_gauge_{i}", "a gauge", ["service", "environment", "window"], registry=reg) for i in range(16)
    ]
    for n in range(samples):
        fam = families[n % 16]
        fam.labels(f"svc-{n // 48:03d}", ("dev", "staging", "prod")[n % 3], f"{n % 97}d").set(n * 1.5)
    return reg


def scrapers(url: str, total: int, workers: int) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    left = [total]

    def run() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as resp:
                resp.read()
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setup", type=Path)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = config.load(args.setup / "dora.yaml")
    logs.configure("warning", "json")
    daemon = Daemon(cfg)
    with Timer() as compute:
        snap = daemon.recompute()
    deployments = sum(p.deployments_total for p in snap.pairs)
    body = daemon.exposition(generate_latest)  # what /metrics serves
    samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    ours = best(lambda: daemon.exposition(generate_latest))
    uncached = best(lambda: generate_latest(daemon.registry), 5)  # the registry alone: everything per scrape
    bare = bare_registry(samples)
    bare_samples = sum(1 for line in generate_latest(bare).splitlines() if line and not line.startswith(b"#"))
    baseline = best(lambda: generate_latest(bare))
    ratio = ours / baseline

    http = HttpApp(
        daemon.registry,
        daemon.health,
        daemon.holder.get,
        daemon.explain,
        cfg.production_environment,
        "30d",
        daemon.exposition,
    )
    host, port = http.serve("127.0.0.1", 0)
    url = f"http://{host}:{port}/metrics"
    scrapers(url, 8, 4)  # warm up
    lat = sorted(scrapers(url, 100, 4))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * len(lat)) - 1)]
    steady = rss_mb()
    http.shutdown()
    daemon.close()
    rows = [
        ("pairs", f"{len(snap.pairs)}", ""),
        ("stored deployments", f"{deployments:,}", ""),
        ("samples served", f"{samples:,}", f"baseline registry: {bare_samples:,}"),
        ("snapshot compute", f"{compute.seconds * 1000:.0f} ms", "after each poll, not per scrape"),
        ("exposition (ours)", f"{ours * 1000:.1f} ms", ""),
        ("  without the render cache", f"{uncached * 1000:.1f} ms", "families built and encoded per scrape"),
        ("exposition (bare client)", f"{baseline * 1000:.1f} ms", ""),
        ("ratio to bare client", f"{ratio:.3f}x", f"target <= 2x: {ok(ratio, 2)}"),
        ("HTTP p50, 4 scrapers", f"{p50 * 1000:.1f} ms", ""),
        ("HTTP p99, 4 scrapers", f"{p99 * 1000:.1f} ms", f"target < 100 ms: {ok(p99, 0.1)}"),
        ("daemon RSS (steady)", f"{steady:.0f} MB", f"target < 150 MB: {ok(steady, 150)}"),
    ]
    report(
        "scrape",
        rows,
        {
            "pairs": len(snap.pairs),
            "deployments": deployments,
            "samples": samples,
            "bare_samples": bare_samples,
            "snapshot_seconds": compute.seconds,
            "exposition_seconds": ours,
            "uncached_exposition_seconds": uncached,
            "bare_exposition_seconds": baseline,
            "ratio": ratio,
            "http_p50_seconds": p50,
            "http_p99_seconds": p99,
            "http_scrapes": len(lat),
            "steady_rss_mb": steady,
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
