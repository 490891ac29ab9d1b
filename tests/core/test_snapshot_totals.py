# SPDX-License-Identifier: Apache-2.0
"""The snapshot built from the windows' rows plus SQL totals equals the one built from all history.

``Daemon.recompute`` loads only the longest window as objects and takes the all-time numbers
(counters, the lead time histogram, the latest deployment) from ``Store.totals``; ``report``
loads only its window. Both must give exactly what the full history gives, on the demo's months of
history with rollbacks, at several points in time (windows that cut through the history).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from exporter import config
from exporter.core import snapshot
from exporter.daemon.runtime import Daemon
from exporter.demo.generate import generate, write_config

# the demo's last moment: without it the demo ends "now" and its history moves with the calendar
END = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, datetime]]:
    out: Path = tmp_path_factory.mktemp("demo")
    truth = generate(out, days=60, end=END)
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
        known_pairs=daemon.known_pairs(),
        now=now,
        windows=[(w.label, w.seconds) for w in cfg.windows],
        thresholds=cfg.thresholds,
        unmatched=daemon.store.unmatched_counts(),
        live={},
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


def test_incremental_totals_follow_new_and_late_changes(setup: tuple[Daemon, datetime]) -> None:
    """Store.totals keeps its lead histograms between calls; new deployments with changes, and a
    change attributed to an old deployment (which forces a recount), give the recounted answer."""
    from exporter.model import Change, DeploymentSource, utc
    from exporter.store.history import HistoryReads

    daemon, end = setup
    store, bounds = daemon.store, snapshot.LEAD_TIME_BUCKETS
    assert store.totals("commit_time", bounds) == HistoryReads.totals(store, "commit_time", bounds)
    t = end.timestamp()
    with store.transaction() as tx:
        dep, _ = tx.add_deployment(
            natural_key="test:late", service="user-service", environment="prod", version="v-test",
            deployed_at=t + 60, source=DeploymentSource.GITOPS, manifest_repo=None, manifest_commit=None,
            commit=None, message="", baseline=False,
        )  # fmt: skip
        tx.add_changes(dep, "user-service", "prod", [Change("f" * 40, utc(t - 7200), utc(t - 3600.5), "x")])
    assert store.totals("commit_time", bounds) == HistoryReads.totals(store, "commit_time", bounds)
    oldest = store.deployments("order-service", "dev")[1].id
    with store.transaction() as tx:
        tx.add_changes(oldest, "order-service", "dev", [Change("e" * 40, utc(t - 9e5), utc(t - 9e5), "y")])
    assert store.totals("commit_time", bounds) == HistoryReads.totals(store, "commit_time", bounds)
    assert store.totals("author_time", bounds) == HistoryReads.totals(store, "author_time", bounds)


def test_a_one_shot_ingest_computes_the_snapshot_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ingest`` (``ingest_once``) polls, then recomputes once: a poll's own recompute would be
    thrown away by the one after the GitHub passes, and on a long history it is the costly, cold one."""
    generate(tmp_path, days=5, end=END)
    d = Daemon(config.load(write_config(tmp_path, listen="127.0.0.1:0")))
    calls: list[int] = []
    real = d.recompute

    def counted(*args: object, **kwargs: object) -> snapshot.Snapshot:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(d, "recompute", counted)
    try:
        with freeze_time(END):  # the published snapshot is computed at "now": the demo's last moment
            (result,) = d.ingest_once()
        assert result is not None and result.deployments > 0
        assert len(calls) == 1
        published = d.holder.get()
        assert published.pairs  # and the snapshot it published has the pairs
        assert published.computed_at == END
        assert any(w.deployments for p in published.pairs for w in p.windows.values())  # windows end at the demo's end
    finally:
        d.close()
