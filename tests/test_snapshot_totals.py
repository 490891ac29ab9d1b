"""The snapshot built from the windows' rows plus SQL totals equals the one built from all history.

``Daemon.recompute`` loads only the longest window as objects and takes the all-time numbers
(counters, the lead time histogram, the latest deployment) from ``Store.totals``; ``report``
loads only its window. Both must give exactly what the full history gives, on the demo's months of
history with rollbacks, at several points in time (windows that cut through the history).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from exporter import config, snapshot
from exporter.daemon import Daemon
from exporter.demo.generate import generate, write_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, datetime]]:
    out: Path = tmp_path_factory.mktemp("demo")
    truth = generate(out, days=60)
    d = Daemon(config.load(write_config(out, listen="127.0.0.1:0")))
    assert all(r is not None for r in d.ingest_once())
    yield d, truth.end
    d.close()


@pytest.mark.parametrize("days_before_end", [-100, -50, -1, 0, 3, 20, 45, 200])  # < 0: after the end
def test_windowed_snapshot_equals_full_history(setup: tuple[Daemon, datetime], days_before_end: int) -> None:
    daemon, end = setup
    now = end - timedelta(days=days_before_end)
    cfg = daemon.cfg
    full = snapshot.build(
        daemon.store.histories(cfg.change_start),
        daemon.known_pairs(),
        now,
        [(w.label, w.seconds) for w in cfg.windows],
        cfg.thresholds,
        daemon.store.unmatched_counts(),
        {},
    )
    fast = daemon.recompute(now)
    assert fast.pairs and any(p.deployments_total for p in fast.pairs)
    assert fast == full


@pytest.mark.parametrize("days", [1, 7, 30, 90])
def test_windowed_report_rows_equal_full_history(setup: tuple[Daemon, datetime], days: int) -> None:
    daemon, until = setup
    cfg = daemon.cfg
    since = until - timedelta(days=days)
    full = snapshot.report_rows(
        daemon.store.histories(cfg.change_start), daemon.known_pairs(), since, until, cfg.thresholds
    )
    windowed = snapshot.report_rows(
        daemon.store.histories(cfg.change_start, since=since.timestamp()),
        daemon.known_pairs(),
        since,
        until,
        cfg.thresholds,
    )
    assert windowed == full
