# SPDX-License-Identifier: Apache-2.0
"""Which sources have a health series: only the configured ones (issue 20, item 2).

An unconfigured source exposed as ``dora_exporter_source_up 0`` makes ``DoraSourceDown`` fire 15 minutes
after every start of an install that does not use it. The daemon's own wiring builds the registry
(a fresh ``CollectorRegistry`` of its own, nothing started); the test reads it with ``get_sample_value``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.config.loading import parse
from exporter.daemon.wiring import Components, build


@pytest.fixture
def components(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Components]:
    raw: dict[str, Any] = {"store": {"path": str(tmp_path / "dora.db")}, **request.param}
    c = build(parse(raw, environ={}))
    try:
        yield c
    finally:
        c.store.close()


def _up(c: Components, source: str) -> float | None:
    return c.registry.get_sample_value("dora_exporter_source_up", {"source": source})


@pytest.mark.parametrize("components", [{"argocd": {"enabled": True, "namespaces": ["argocd"]}}], indirect=True)
def test_an_argocd_only_install_has_no_gitops_health_series(components: Components) -> None:
    assert _up(components, "argocd") == 0.0  # configured, not attempted yet
    assert _up(components, "gitops") is None
    assert _up(components, "github") is None
    assert (
        components.registry.get_sample_value(
            "dora_exporter_unmatched_total", {"source": "gitops", "reason": "missing_key"}
        )
        is None
    )
    assert components.health.ready() is False  # still waits for the Argo CD watch's first attempt
    components.health.success("argocd", "argocd", 0.0)
    assert components.health.ready() is True
    assert _up(components, "argocd") == 1.0


@pytest.mark.parametrize("components", [{}], indirect=True)
def test_no_source_configured_no_health_series(components: Components) -> None:
    names = {s.labels.get("source") for f in components.registry.collect() if f.name == "dora_exporter_source_up"
             for s in f.samples}  # fmt: skip
    assert names == set()


def test_a_source_without_parts_has_no_series_on_a_fresh_registry() -> None:
    from datetime import UTC, datetime

    from prometheus_client import CollectorRegistry

    from exporter.core.snapshot import Snapshot
    from exporter.serve import Health, SelfMetrics, SnapshotHolder

    reg = CollectorRegistry()
    SelfMetrics(SnapshotHolder(Snapshot(datetime.now(UTC))), Health({"gitops": [], "argocd": ["argocd"]}), registry=reg)
    assert reg.get_sample_value("dora_exporter_source_up", {"source": "gitops"}) is None
    assert reg.get_sample_value("dora_exporter_source_up", {"source": "argocd"}) == 0.0
