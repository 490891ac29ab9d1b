# SPDX-License-Identifier: Apache-2.0
"""``SelfMetrics`` as a collector of its own, on a fresh ``CollectorRegistry``: the exporter's
families without any DORA family, and the known label sets at 0 for the configured sources."""

from __future__ import annotations

import platform
import re
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from exporter import PYTHON_VERSION, __revision__, __version__
from exporter.core.snapshot import Snapshot
from exporter.serve import Health, SelfMetrics, SnapshotHolder

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_a_registry_of_self_metrics_alone() -> None:
    reg = CollectorRegistry()
    health = Health({"argocd": ["cluster"], "github": ["org/repo"]})
    SelfMetrics(SnapshotHolder(Snapshot(NOW, changes_without_pull_request=2)), health, registry=reg)
    health.count("watch_relists", "argocd", 3)
    health.count("webhook_events", "argocd:accepted")
    health.github_rate_limit_remaining["core"] = 4999.0

    build = {"version": __version__, "revision": __revision__, "python_version": PYTHON_VERSION}
    assert reg.get_sample_value("dora_exporter_build_info", build) == 1.0
    assert reg.get_sample_value("dora_exporter_snapshot_timestamp_seconds") == NOW.timestamp()
    assert reg.get_sample_value("dora_exporter_source_up", {"source": "argocd"}) == 0.0
    assert reg.get_sample_value("dora_exporter_unmatched_total", {"source": "argocd", "reason": "unmapped_app"}) == 0
    assert reg.get_sample_value("dora_exporter_watch_relists_total", {"source": "argocd"}) == 3.0
    assert reg.get_sample_value("dora_exporter_watch_reconnects_total", {"source": "argocd"}) == 0.0
    outcome = {"source": "argocd", "outcome": "accepted"}
    assert reg.get_sample_value("dora_exporter_webhook_events_total", outcome) == 1.0
    assert reg.get_sample_value("dora_exporter_changes_without_pull_request_total") == 2.0
    assert reg.get_sample_value("dora_exporter_github_rate_limit_remaining", {"resource": "core"}) == 4999.0
    names = {family.name for family in reg.collect()}
    assert not {n for n in names if not n.startswith("dora_exporter_")}


def test_github_families_only_with_github_configured() -> None:
    reg = CollectorRegistry()
    SelfMetrics(SnapshotHolder(Snapshot(NOW)), Health({"gitops": ["repo"]}), registry=reg)
    names = {family.name for family in reg.collect()}
    assert "dora_exporter_build_info" in names
    assert "dora_exporter_changes_without_pull_request" not in names
    assert "dora_exporter_github_rate_limit_remaining" not in names
    assert reg.get_sample_value("dora_exporter_watch_relists_total", {"source": "argocd"}) is None


def test_build_info_names_the_version_the_commit_and_python() -> None:
    """One series, labels version, revision and python_version, read from what the build wrote (no git)."""
    reg = CollectorRegistry()
    SelfMetrics(SnapshotHolder(Snapshot(NOW)), Health({"gitops": ["repo"]}), registry=reg)
    (family,) = [f for f in reg.collect() if f.name == "dora_exporter_build_info"]
    (sample,) = family.samples
    assert sample.value == 1.0
    assert set(sample.labels) == {"version", "revision", "python_version"}
    assert sample.labels["version"] == __version__
    assert sample.labels["python_version"] == platform.python_version()
    # An abbreviated commit hash when built from git (never with setuptools-scm's "g" prefix), else "unknown".
    assert re.fullmatch(r"[0-9a-f]{7,40}|unknown", sample.labels["revision"]), sample.labels
