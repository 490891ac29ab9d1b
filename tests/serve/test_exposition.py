# SPDX-License-Identifier: Apache-2.0
"""The collector on literal data: exact samples from a fresh ``CollectorRegistry`` per test."""

from __future__ import annotations

import dataclasses
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml
from freezegun import freeze_time
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric as PromMetric
from prometheus_client.samples import Sample

from exporter import PYTHON_VERSION, __revision__, __version__
from exporter.core import snapshot
from exporter.model import PairKey
from exporter.serve import DoraCollector, SnapshotHolder
from tests.support.sample_histories import (
    API_PROD,
    API_STAGING,
    NOW,
    REPO_PART,
    WEB_PROD,
    ago,
    build,
    health,
)

BUILD_INFO = {"version": __version__, "revision": __revision__, "python_version": PYTHON_VERSION}


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(DoraCollector(SnapshotHolder(build()), health()))
    return reg


def value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def pair(key: PairKey, **extra: str) -> dict[str, str]:
    return {"service": key.service, "environment": key.environment, **extra}


@pytest.mark.parametrize(
    ("key", "deployments", "changes", "failures"),
    [
        (API_PROD, 4.0, 3.0, {"sync_failed": 0.0, "degraded": 1.0, "rollback": 1.0, "incident": 0.0}),
        (WEB_PROD, 2.0, 1.0, {"sync_failed": 1.0, "degraded": 0.0, "rollback": 0.0, "incident": 1.0}),
        (API_STAGING, 0.0, 0.0, {"sync_failed": 0.0, "degraded": 0.0, "rollback": 0.0, "incident": 0.0}),
    ],
)
def test_counters(
    registry: CollectorRegistry, key: PairKey, deployments: float, changes: float, failures: dict[str, float]
) -> None:
    assert value(registry, "dora_deployments_total", **pair(key)) == deployments
    assert value(registry, "dora_changes_total", **pair(key)) == changes
    for reason, n in failures.items():
        assert value(registry, "dora_deployment_failures_total", **pair(key, reason=reason)) == n


LEAD_BOUNDS = ["900.0", "1800.0", "3600.0", "7200.0", "14400.0", "28800.0", "57600.0", "86400.0", "172800.0",
               "345600.0", "604800.0", "1209600.0", "2592000.0", "7776000.0", "15552000.0", "+Inf"]  # fmt: skip
RESTORE_BOUNDS = ["60.0", "300.0", "900.0", "1800.0", "3600.0", "7200.0", "14400.0", "28800.0", "86400.0",
                  "172800.0", "604800.0", "2592000.0", "15552000.0", "+Inf"]  # fmt: skip


class Histogram(NamedTuple):
    """One pair's histogram: its cumulative bucket counts at ``bounds``, its ``_sum`` and its ``_count``."""

    family: str
    key: PairKey
    bounds: list[str]
    cumulative: list[int]
    total: float
    count: int


HISTOGRAM_CASES = [
    # lead times 1800, 7200 and 90000 s
    Histogram("dora_lead_time_seconds", API_PROD, LEAD_BOUNDS, [0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3],
              total=99000.0, count=3),
    Histogram("dora_lead_time_seconds", WEB_PROD, LEAD_BOUNDS, [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
              total=3600.0, count=1),
    Histogram("dora_lead_time_seconds", API_STAGING, LEAD_BOUNDS, [0] * 16, total=0.0, count=0),
    # restores after 7200 s (rollback) and 6600 s (Degraded from 10 min after the release)
    Histogram("dora_time_to_restore_seconds", API_PROD, RESTORE_BOUNDS, [0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2],
              total=13800.0, count=2),
    Histogram("dora_time_to_restore_seconds", WEB_PROD, RESTORE_BOUNDS, [0] * 14, total=0.0, count=0),  # none yet
]  # fmt: skip


@pytest.mark.parametrize("expected", HISTOGRAM_CASES, ids=lambda h: f"{h.family}-{h.key.service}-{h.key.environment}")
def test_histograms(registry: CollectorRegistry, expected: Histogram) -> None:
    family, key = expected.family, expected.key
    got = [value(registry, f"{family}_bucket", **pair(key, le=le)) for le in expected.bounds]
    assert got == [float(c) for c in expected.cumulative]
    assert value(registry, f"{family}_sum", **pair(key)) == expected.total
    assert value(registry, f"{family}_count", **pair(key)) == float(expected.count)


def window_gauges(
    *, per_day: float, lead_median: float | None, cfr: float | None, ttr_median: float | None, rework: float | None
) -> dict[str, float | None]:
    """The window gauges by name; ``None``: the sample must be absent."""
    return {
        "dora_deployment_frequency_per_day": per_day,
        "dora_lead_time_median_seconds": lead_median,
        "dora_change_failure_ratio": cfr,
        "dora_time_to_restore_median_seconds": ttr_median,
        "dora_rework_ratio": rework,
    }


EMPTY_WINDOW = window_gauges(per_day=0.0, lead_median=None, cfr=None, ttr_median=None, rework=None)
WINDOW_CASES = [
    (API_PROD, "7d", window_gauges(per_day=3 / 7, lead_median=7200.0, cfr=1 / 3, ttr_median=6900.0, rework=1 / 3)),
    (API_PROD, "1d", EMPTY_WINDOW),  # empty window: frequency 0, the rest absent
    (WEB_PROD, "1d", window_gauges(per_day=1.0, lead_median=3600.0, cfr=1.0, ttr_median=None, rework=0.0)),
    (WEB_PROD, "7d", window_gauges(per_day=1 / 7, lead_median=3600.0, cfr=1.0, ttr_median=None, rework=0.0)),
    (API_STAGING, "1d", EMPTY_WINDOW),
    (API_STAGING, "7d", EMPTY_WINDOW),
]


@pytest.mark.parametrize(("key", "window", "gauges"), WINDOW_CASES)
def test_window_gauges(registry: CollectorRegistry, key: PairKey, window: str, gauges: dict[str, float | None]) -> None:
    got = {name: value(registry, name, **pair(key, window=window)) for name in gauges}
    assert got == gauges


@pytest.mark.parametrize(
    ("key", "window", "levels"),
    [
        # 3/7 per day: high; 2 h: elite; 1/3 failed: low; 6900 s: high (dora-2023)
        (API_PROD, "7d", {"deployment_frequency": 3.0, "lead_time": 4.0, "change_failure_rate": 1.0,
                          "time_to_restore": 3.0}),
        (API_PROD, "1d", {"deployment_frequency": 1.0, "lead_time": None, "change_failure_rate": None,
                          "time_to_restore": None}),
        (WEB_PROD, "1d", {"deployment_frequency": 4.0, "lead_time": 4.0, "change_failure_rate": 1.0,
                          "time_to_restore": None}),
        (WEB_PROD, "7d", {"deployment_frequency": 3.0, "lead_time": 4.0, "change_failure_rate": 1.0,
                          "time_to_restore": None}),
        (API_STAGING, "7d", {"deployment_frequency": 1.0, "lead_time": None, "change_failure_rate": None,
                             "time_to_restore": None}),
    ],
)  # fmt: skip
def test_performance_level(
    registry: CollectorRegistry, key: PairKey, window: str, levels: dict[str, float | None]
) -> None:
    got = {m: value(registry, "dora_performance_level", **pair(key, metric=m, window=window)) for m in levels}
    assert got == levels


@pytest.mark.parametrize(
    ("key", "last", "sync_failing", "degraded", "failure_open"),
    [
        (API_PROD, ago(days=2, hours=-2).timestamp(), 0.0, 0.0, 0.0),
        (WEB_PROD, ago(hours=1).timestamp(), 0.0, 0.0, 1.0),
        (API_STAGING, None, 0.0, 0.0, 0.0),  # never deployed: no timestamp rather than 1970
    ],
)
def test_state_gauges(
    registry: CollectorRegistry,
    key: PairKey,
    last: float | None,
    sync_failing: float,
    degraded: float,
    failure_open: float,
) -> None:
    assert value(registry, "dora_last_deployment_timestamp_seconds", **pair(key)) == last
    assert value(registry, "dora_sync_failing", **pair(key)) == sync_failing
    assert value(registry, "dora_degraded", **pair(key)) == degraded
    assert value(registry, "dora_failure_open", **pair(key)) == failure_open


def test_self_metrics_start_at_zero(registry: CollectorRegistry) -> None:
    assert value(registry, "dora_exporter_build_info", **BUILD_INFO) == 1.0
    assert value(registry, "dora_exporter_source_up", source="gitops") == 0.0
    assert value(registry, "dora_exporter_source_last_success_timestamp_seconds", source="gitops") is None
    for reason in ("malformed_manifest", "missing_key", "non_scalar_value", "unresolved_tag", "blob_missing"):
        assert value(registry, "dora_exporter_unmatched_total", source="gitops", reason=reason) == 0.0
    assert value(registry, "dora_exporter_collector_errors_total") == 0.0
    assert value(registry, "dora_exporter_snapshot_timestamp_seconds") == NOW.timestamp()


def test_self_metrics_follow_health_and_snapshot() -> None:
    h = health()
    holder = SnapshotHolder(build())
    reg = CollectorRegistry()
    reg.register(DoraCollector(holder, h))
    h.failure("gitops", REPO_PART, "git", "fetch failed")
    h.failure("gitops", REPO_PART, "git", "fetch failed again")
    assert value(reg, "dora_exporter_source_up", source="gitops") == 0.0
    assert value(reg, "dora_exporter_source_errors_total", source="gitops", kind="git") == 2.0
    with freeze_time(NOW):  # a success is stamped with the wall clock
        h.success("gitops", REPO_PART, 0.25)
    assert value(reg, "dora_exporter_source_up", source="gitops") == 1.0
    assert value(reg, "dora_exporter_source_last_success_timestamp_seconds", source="gitops") == NOW.timestamp()
    assert value(reg, "dora_exporter_ingest_duration_seconds", source="gitops") == 0.25
    assert value(reg, "dora_exporter_source_errors_total", source="gitops", kind="git") == 2.0  # never decreases

    holder.set(build({("gitops", "unresolved_tag"): 3, ("gitops", "tag_format"): 1}))
    assert value(reg, "dora_exporter_unmatched_total", source="gitops", reason="unresolved_tag") == 3.0
    assert value(reg, "dora_exporter_unmatched_total", source="gitops", reason="tag_format") == 1.0
    assert value(reg, "dora_exporter_unmatched_total", source="gitops", reason="missing_key") == 0.0


def samples(reg: CollectorRegistry) -> Iterator[tuple[PromMetric, Sample]]:
    for family in reg.collect():
        for s in family.samples:
            yield family, s


ALLOWED_LABELS = {"service", "environment", "reason", "window", "metric", "le", "source", "kind", "version"}
# The commit hash is a label of the one build_info series only (as in Prometheus' own build_info): one value per
# running binary, never a label of a DORA series.
BUILD_INFO_LABELS = {"version", "revision", "python_version"}


def test_no_nan_no_timestamps_bounded_labels(registry: CollectorRegistry) -> None:
    seen = 0
    for family, s in samples(registry):
        assert not math.isnan(s.value), (family.name, s)
        assert s.timestamp is None, (family.name, s)
        allowed = BUILD_INFO_LABELS if family.name == "dora_exporter_build_info" else ALLOWED_LABELS
        assert set(s.labels) <= allowed, (family.name, s)
        seen += 1
    assert seen > 100
    text = generate_latest(registry).decode()
    assert "NaN" not in text


def test_empty_snapshot_serves_self_metrics() -> None:
    reg = CollectorRegistry()
    reg.register(DoraCollector(SnapshotHolder(snapshot.Snapshot(NOW)), health()))
    assert value(reg, "dora_exporter_build_info", **BUILD_INFO) == 1.0
    assert value(reg, "dora_deployments_total", service="api", environment="prod") is None
    names = {f.name for f in reg.collect()}
    assert {"dora_deployments", "dora_lead_time_seconds", "dora_performance_level"} <= names  # families, no samples


# --- a failing family must not fail the scrape ----------------------------------------------------


def scrape(reg: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """One complete scrape (``get_sample_value`` stops collecting at the first match, so counting
    scrapes with it would depend on where the sample sits)."""
    return {(s.name, frozenset(s.labels.items())): s.value for _, s in samples(reg)}


def at(sc: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return sc.get((name, frozenset(labels.items())))


class BrokenDora(DoraCollector):
    def _dora(self, snap: snapshot.Snapshot) -> list[PromMetric]:
        raise RuntimeError("boom")


def test_raising_dora_family_keeps_the_rest() -> None:
    reg = CollectorRegistry()
    reg.register(BrokenDora(SnapshotHolder(build()), health()))
    text = generate_latest(reg).decode()  # the scrape itself succeeds
    assert "dora_exporter_build_info{" in text
    assert "dora_deployments_total" not in text
    assert "dora_exporter_collector_errors_total 1.0" in text
    sc = scrape(reg)
    assert at(sc, "dora_exporter_collector_errors_total") == 2.0  # one more per failing scrape
    assert at(sc, "dora_exporter_source_up", source="gitops") == 0.0
    assert at(sc, "dora_exporter_build_info", **BUILD_INFO) == 1.0
    assert not [k for k in sc if k[0].startswith("dora_") and not k[0].startswith("dora_exporter_")]


def test_bad_snapshot_data_breaks_one_family_only() -> None:
    good = build()
    broken_pair = dataclasses.replace(good.pairs[0], levels={})  # windows without levels: KeyError in _dora
    holder = SnapshotHolder(dataclasses.replace(good, pairs=(broken_pair, *good.pairs[1:])))
    reg = CollectorRegistry()
    reg.register(DoraCollector(holder, health()))
    sc = scrape(reg)
    assert at(sc, "dora_exporter_collector_errors_total") == 1.0
    assert at(sc, "dora_deployments_total", **pair(WEB_PROD)) is None
    assert at(sc, "dora_exporter_build_info", **BUILD_INFO) == 1.0

    # the other way round: bad unmatched keys break the self-metrics, the DORA families stay
    holder.set(dataclasses.replace(good, unmatched={("gitops",): 1}))  # type: ignore[dict-item]
    sc = scrape(reg)
    assert at(sc, "dora_deployments_total", **pair(WEB_PROD)) == 2.0
    assert at(sc, "dora_lead_time_seconds_count", **pair(API_PROD)) == 3.0
    assert at(sc, "dora_exporter_build_info", **BUILD_INFO) is None
    assert at(sc, "dora_exporter_collector_errors_total") == 2.0

    holder.set(good)  # fixed data: served again, and the error counter does not decrease
    sc = scrape(reg)
    assert at(sc, "dora_exporter_build_info", **BUILD_INFO) == 1.0
    assert at(sc, "dora_deployments_total", **pair(WEB_PROD)) == 2.0
    assert at(sc, "dora_exporter_collector_errors_total") == 2.0


def test_static_labels_follow_service_and_environment_on_every_dora_series() -> None:
    """DESIGN §3: configured static labels such as team on the DORA series (a service without one
    gets "", which Prometheus reads as no label); self-metrics keep their own labels."""
    reg = CollectorRegistry()
    static = (("team", "tier"), {"api": ("payments", "1")})
    reg.register(DoraCollector(SnapshotHolder(build()), health(), static_labels=static))
    dora_families = 0
    for family, s in samples(reg):
        if not family.name.startswith("dora_") or family.name.startswith("dora_exporter_"):
            assert "team" not in s.labels, (family.name, s)
            continue
        dora_families += 1
        assert list(s.labels)[:4] == ["service", "environment", "team", "tier"], (family.name, s)
        want = ("payments", "1") if s.labels["service"] == "api" else ("", "")
        assert (s.labels["team"], s.labels["tier"]) == want, (family.name, s)
    assert dora_families > 50
    assert value(reg, "dora_deployments_total", service="api", environment="prod", team="payments", tier="1") == 4
    assert value(reg, "dora_deployments_total", service="web", environment="prod", team="", tier="") == 2
    text = generate_latest(reg).decode()
    assert 'dora_lead_time_seconds_bucket{environment="prod",le="3600.0",service="web",team="",tier=""} 1.0' in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_daemon_exposes_the_configured_static_labels(tmp_path: Path) -> None:
    from exporter import config as cfgmod
    from exporter.daemon.runtime import Daemon
    from exporter.demo import generate

    out = tmp_path / "demo"
    generate.generate(out, seed=1, days=5)
    path = generate.write_config(out, "127.0.0.1:0")
    raw = yaml.safe_load(path.read_text())
    labelled = raw["services"][0]["name"]
    raw["services"][0]["labels"] = {"team": "checkout"}
    raw["store"] = {"path": str(tmp_path / "dora.db")}
    path.write_text(yaml.safe_dump(raw))
    daemon = Daemon(cfgmod.load(path))
    try:
        daemon.ingest_once()
        by_service = {
            s.labels["service"]: s.labels["team"]
            for family, s in samples(daemon.registry)
            if family.name == "dora_deployments"
        }
    finally:
        daemon.close()
    assert by_service[labelled] == "checkout"
    assert len(by_service) > 1 and all(team == "" for service, team in by_service.items() if service != labelled)
