# SPDX-License-Identifier: Apache-2.0
"""The exporter's own families: source health, errors, unmatched inputs, watch and webhook
counters, build info and the snapshot's age.

Known label sets are exposed at 0 before the first event (every unmatched reason a configured
source can report, every watch counter of a configured source), so alert expressions and
``rate()`` see a series from the first scrape on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import PYTHON_VERSION, __revision__, __version__
from exporter.core.snapshot import Snapshot
from exporter.serve.exposition import SnapshotHolder
from exporter.serve.health import Health, SourceState

__all__ = ["COUNTER_SOURCES", "KNOWN_UNMATCHED", "SOURCE_COUNTERS", "SelfMetrics"]

# Unmatched reasons each source can report, exposed at 0 before the first one happens.
KNOWN_UNMATCHED = {
    "gitops": (
        "malformed_manifest",
        "missing_key",
        "non_scalar_value",
        "unresolved_tag",
        "blob_missing",
        "ambiguous_value",
        "manifest_too_large",
    ),
    "github": (
        "incident_unattributed",
        "incident_unmapped",
        "unknown_environment",
        "deployment_unfinished",
        "compare_no_common_ancestor",
        "compare_unavailable",
        "compare_too_large",
    ),
    "argocd": ("unmapped_app",),
}
# Self-metric counters kept in ``Health.counters``: name -> help; exposed per source that has them.
SOURCE_COUNTERS = {
    "watch_reconnects": "Watch streams that broke or ended in error and were reopened",
    "watch_relists": "Full relists after 410 Gone (the watched resourceVersion was compacted)",
    "history_gaps": "Argo CD history ids lost while not watching (a jump in status.history ids)",
    "events_processed": "Watch events and list items processed",
    "webhook_events": "Webhook notifications received, by outcome",
}
# The sources whose counter is exposed at 0 before it first counts.
COUNTER_SOURCES = {"watch_reconnects": ("argocd",), "watch_relists": ("argocd",), "history_gaps": ("argocd",),
                   "events_processed": ("argocd",)}  # fmt: skip


class SelfMetrics(Collector):
    """``families`` builds them from one snapshot and the current ``Health``; as a collector of its
    own (``registry=``) it reads the holder's latest snapshot on each scrape."""

    def __init__(self, holder: SnapshotHolder, health: Health, *, registry: CollectorRegistry | None = None) -> None:
        self.holder = holder
        self.health = health
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        yield from self.families(self.holder.get())

    def families(self, snap: Snapshot) -> list[Metric]:
        sources, errors = self.health.copy()
        out: list[Metric] = [
            *_source_states(sources),
            _source_errors(errors),
            _unmatched(sources, snap.unmatched),
            *_counters(sources, self.health.counts()),
            _build_info(),
            _snapshot_time(snap),
            _without_changes(self.health),
        ]
        if "github" in sources:
            out.extend(self._github(snap))
        return out

    def _github(self, snap: Snapshot) -> list[Metric]:
        no_pr = CounterMetricFamily(
            "dora_exporter_changes_without_pull_request",
            "Changes whose merged pull request was looked up and not found (direct pushes)",
        )
        no_pr.add_metric([], snap.changes_without_pull_request)
        rate = GaugeMetricFamily(
            "dora_exporter_github_rate_limit_remaining",
            "Requests left in GitHub's current rate-limit window",
            labels=["resource"],
        )
        for resource, remaining in sorted(dict(self.health.github_rate_limit_remaining).items()):
            rate.add_metric([resource], remaining)
        return [no_pr, rate]


def _source_states(sources: Mapping[str, SourceState]) -> list[Metric]:
    up = GaugeMetricFamily("dora_exporter_source_up", "1 when the source's last attempt succeeded", labels=["source"])
    last = GaugeMetricFamily(
        "dora_exporter_source_last_success_timestamp_seconds",
        "Time of the source's last success",
        labels=["source"],
    )
    ingest = GaugeMetricFamily(
        "dora_exporter_ingest_duration_seconds", "Duration of the source's last successful run", labels=["source"]
    )
    for name, st in sorted(sources.items()):
        up.add_metric([name], int(st.up))
        if st.last_success is not None:
            last.add_metric([name], st.last_success)
            ingest.add_metric([name], st.last_duration)
    return [up, last, ingest]


def _without_changes(health: Health) -> Metric:
    gauge = GaugeMetricFamily(
        "dora_exporter_services_without_changes",
        "Configured services that can count no change (no repository, or none of their paths in it): no lead time",
    )
    gauge.add_metric([], len(health.without_changes))
    return gauge


def _source_errors(errors: Mapping[tuple[str, str], int]) -> Metric:
    err = CounterMetricFamily("dora_exporter_source_errors", "Source errors by kind", labels=["source", "kind"])
    for (source, kind), n in sorted(errors.items()):
        err.add_metric([source, kind], n)
    return err


def _unmatched(sources: Mapping[str, SourceState], seen: Mapping[tuple[str, str], int]) -> Metric:
    unmatched = CounterMetricFamily(
        "dora_exporter_unmatched", "Inputs that could not be attributed, once each", labels=["source", "reason"]
    )
    counts = dict.fromkeys(((s, r) for s, reasons in KNOWN_UNMATCHED.items() if s in sources for r in reasons), 0)
    counts.update(seen)
    for (source, reason), n in sorted(counts.items()):
        unmatched.add_metric([source, reason], n)
    return unmatched


def _counters(sources: Mapping[str, SourceState], tallies: Mapping[tuple[str, str], int]) -> list[Metric]:
    """One family per ``SOURCE_COUNTERS`` entry; webhook events are keyed ``source:outcome``."""
    families: list[Metric] = []
    for name, doc in SOURCE_COUNTERS.items():
        if name == "webhook_events":
            hook = CounterMetricFamily(f"dora_exporter_{name}", doc, labels=["source", "outcome"])
            for (tally, key), v in sorted(tallies.items()):
                if tally == name:
                    hook.add_metric(key.split(":", 1), v)
            families.append(hook)
            continue
        fam = CounterMetricFamily(f"dora_exporter_{name}", doc, labels=["source"])
        values = {s: 0 for s in COUNTER_SOURCES.get(name, ()) if s in sources}
        values.update({key: v for (tally, key), v in tallies.items() if tally == name})
        for source, v in sorted(values.items()):
            fam.add_metric([source], v)
        families.append(fam)
    return families


def _build_info() -> Metric:
    info = GaugeMetricFamily(
        "dora_exporter_build_info",
        "Build information: the version, the git commit it was built from and the Python version",
        labels=["version", "revision", "python_version"],
    )
    info.add_metric([__version__, __revision__, PYTHON_VERSION], 1)
    return info


def _snapshot_time(snap: Snapshot) -> Metric:
    computed = GaugeMetricFamily(
        "dora_exporter_snapshot_timestamp_seconds", "When the served numbers were last computed"
    )
    computed.add_metric([], snap.computed_at.timestamp())
    return computed
