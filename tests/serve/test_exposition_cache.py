# SPDX-License-Identifier: Apache-2.0
"""``Exposition`` serves exactly what the plain registry serves, in both formats, and follows the
snapshot: the DORA part is rendered once per snapshot, the rest on every scrape."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.core.snapshot import Snapshot
from exporter.serve import DoraCollector, Exposition, SnapshotHolder
from tests.support.sample_histories import build, health

_VARYING = re.compile(rb"^(dora_exporter_scrape_duration_seconds|process_)\S* .*$", re.M)


def _stable(body: bytes) -> bytes:
    """The body without the samples that change on their own between two scrapes."""
    return _VARYING.sub(b"", body)


def _pair(snap: Snapshot) -> tuple[CollectorRegistry, CollectorRegistry, Exposition, SnapshotHolder]:
    plain = CollectorRegistry()
    plain.register(DoraCollector(SnapshotHolder(snap), health()))
    ProcessCollector(registry=plain)
    holder = SnapshotHolder(snap)
    cached = CollectorRegistry()
    collector = DoraCollector(holder, health())
    cached.register(collector)
    ProcessCollector(registry=cached)
    return plain, cached, Exposition(cached, collector), holder


@pytest.mark.parametrize("encoder", [generate_latest, openmetrics_latest])
def test_cached_exposition_equals_the_plain_one(encoder: object) -> None:
    plain, _, exposition, _ = _pair(build())
    for _ in range(3):  # the first scrape renders, the next ones reuse
        ours = exposition(encoder)  # type: ignore[arg-type]
        assert _stable(ours) == _stable(encoder(plain))  # type: ignore[operator]
    if encoder is openmetrics_latest:
        assert ours.endswith(b"# EOF\n") and ours.count(b"# EOF") == 1


def test_a_new_snapshot_is_served_on_the_next_scrape() -> None:
    _, _, exposition, holder = _pair(build())
    before = exposition(generate_latest)
    assert b"dora_deployments_total{" in before
    holder.set(Snapshot(build().computed_at))  # no pairs any more
    after = exposition(generate_latest)
    assert b"dora_deployments_total{" not in after
    assert b"dora_exporter_build_info{" in after


def test_the_registry_alone_still_yields_every_family() -> None:
    """Anyone collecting the daemon's registry directly (tests, other exporters) sees it all."""
    plain, cached, exposition, _ = _pair(build())
    exposition(generate_latest)
    assert _stable(generate_latest(cached)) == _stable(generate_latest(plain))
    assert cached.get_sample_value("dora_deployments_total", {"service": "api", "environment": "prod"}) is not None
