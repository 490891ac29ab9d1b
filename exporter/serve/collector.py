"""The custom collector: DESIGN §3 families from the latest snapshot, plus self-metrics.

Rules from Prometheus' "writing exporters" guide: fresh families on every scrape from an
in-memory snapshot (never a remote call, never a database query), no sample timestamps, counters
derived from stored history so they never decrease across restarts, known label sets at 0, and a
failing family logged and counted instead of failing the whole scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.core.dora import Metric as DoraMetric
from exporter.core.snapshot import Histogram, Snapshot
from exporter.serve.health import Health

log = structlog.get_logger(__name__)

PAIR = ["service", "environment"]
SOURCES = ("gitops", "argocd", "github")
# Unmatched reasons each source can report, exposed at 0 before the first one happens.
KNOWN_UNMATCHED = {
    "gitops": ("malformed_manifest", "missing_key", "non_scalar_value", "unresolved_tag", "blob_missing"),
    "github": ("incident_unattributed", "incident_unmapped", "unknown_environment", "deployment_unfinished"),
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
COUNTER_SOURCES = {"watch_reconnects": ("argocd",), "watch_relists": ("argocd",), "history_gaps": ("argocd",),
                   "events_processed": ("argocd",)}  # fmt: skip


class SnapshotHolder:
    """The latest snapshot, swapped atomically after each compute."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()

    def get(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot


Encoder = Callable[[Any], bytes]


class _Families:
    """A registry-like holder of fixed families, for an encoder."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class Exposition:
    """The ``/metrics`` body: the DORA families rendered once per snapshot and format, the rest fresh.

    The DORA families are a pure function of the (immutable) snapshot, which changes only after a
    poll, so their text is rendered once per snapshot and encoder and reused by every scrape until
    the next one; self-metrics, process and platform metrics are collected on each scrape. Tens of
    thousands of samples (240 pairs) then cost a scrape a few byte copies instead of formatting.
    """

    _EOF = b"# EOF\n"

    def __init__(self, registry: CollectorRegistry, dora: DoraCollector) -> None:
        self.registry = registry
        self.dora = dora
        self._cache: dict[Encoder, tuple[Snapshot, bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, encoder: Encoder) -> bytes:
        snap = self.dora.holder.get()
        with self._lock:
            hit = self._cache.get(encoder)
        if hit is not None and hit[0] is snap:
            part = hit[1]
        else:
            errors = self.dora.collector_errors
            part = encoder(_Families(self.dora.dora_families(snap)))
            if part.endswith(self._EOF):  # OpenMetrics ends once, after the rest
                part = part[: -len(self._EOF)]
            if self.dora.collector_errors == errors:  # a failed render is retried (and counted) next scrape
                with self._lock:
                    self._cache[encoder] = (snap, part)
        self.dora._apart.on = True  # this thread's collect() leaves the DORA families to the cache
        try:
            return part + encoder(self.registry)
        finally:
            self.dora._apart.on = False


def _hist(
    name: str, doc: str, hists: list[tuple[list[str], Histogram]], labels: list[str] | None = None
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labels or PAIR)
    for labels, h in hists:
        buckets = [(_le(b), float(c)) for b, c in zip(h.bounds, h.cumulative, strict=True)]
        buckets.append(("+Inf", float(h.count)))
        fam.add_metric(labels, buckets, h.total)
    return fam


def _le(bound: float) -> str:
    return f"{bound:.1f}" if bound == int(bound) else repr(bound)


class DoraCollector(Collector):
    """``static_labels``: configured label names every DORA series carries after service and
    environment (DESIGN §3, e.g. ``team``), and each service's values; "" for a service without
    one (Prometheus treats an empty label as absent)."""

    def __init__(
        self,
        holder: SnapshotHolder,
        health: Health,
        sources: tuple[str, ...] = SOURCES,
        static_labels: tuple[tuple[str, ...], Mapping[str, tuple[str, ...]]] = ((), {}),
    ) -> None:
        self.holder = holder
        self.health = health
        self.sources = sources
        self.static_names, self.static_values = static_labels
        self.collector_errors = 0
        self._apart = threading.local()  # set while ``Exposition`` renders the rest of a scrape

    def dora_families(self, snap: Snapshot) -> list[Metric]:
        """The DESIGN §3 families of one snapshot; a failure is logged and counted, never raised."""
        try:
            return self._dora(snap)
        except Exception as exc:
            self.collector_errors += 1
            log.error("metrics.collect_failed", family="_dora", error=repr(exc), exc_info=True)
            return []

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        snap = self.holder.get()
        builders: list[Callable[[Snapshot], list[Metric]]] = [self._self]
        if not getattr(self._apart, "on", False):  # the registry alone still yields every family
            builders.insert(0, self._dora)
        for build in builders:
            try:
                yield from build(snap)
            except Exception as exc:
                self.collector_errors += 1
                log.error("metrics.collect_failed", family=build.__name__, error=repr(exc), exc_info=True)
        errors = CounterMetricFamily("dora_exporter_collector_errors", "Collector families that raised during a scrape")
        errors.add_metric([], self.collector_errors)
        yield errors
        dur = GaugeMetricFamily(
            "dora_exporter_scrape_duration_seconds", "Time the collector took for the previous scrape"
        )
        dur.add_metric([], self.health.scrape_duration)
        yield dur
        self.health.scrape_duration = time.perf_counter() - started

    def _dora(self, snap: Snapshot) -> list[Metric]:
        pair = [*PAIR, *self.static_names]
        blank = ("",) * len(self.static_names)
        deployments = CounterMetricFamily("dora_deployments", "Deployments, over all stored history", labels=pair)
        failures = CounterMetricFamily(
            "dora_deployment_failures", "Failed deployments by reason", labels=[*pair, "reason"]
        )
        changes = CounterMetricFamily("dora_changes", "Changes delivered", labels=pair)
        freq = GaugeMetricFamily(
            "dora_deployment_frequency_per_day", "Deployments per day in the window", labels=[*pair, "window"]
        )
        lead_med = GaugeMetricFamily(
            "dora_lead_time_median_seconds",
            "Median lead time of changes deployed in the window",
            labels=[*pair, "window"],
        )
        cfr = GaugeMetricFamily(
            "dora_change_failure_ratio", "Failed deployments / deployments in the window", labels=[*pair, "window"]
        )
        ttr_med = GaugeMetricFamily(
            "dora_time_to_restore_median_seconds",
            "Median restore time of failures restored in the window",
            labels=[*pair, "window"],
        )
        rework = GaugeMetricFamily(
            "dora_rework_ratio",
            "Deployments made to restore a failure / deployments in the window",
            labels=[*pair, "window"],
        )
        level = GaugeMetricFamily(
            "dora_performance_level", "4 elite, 3 high, 2 medium, 1 low", labels=[*pair, "metric", "window"]
        )
        last = GaugeMetricFamily("dora_last_deployment_timestamp_seconds", "Time of the latest deployment", labels=pair)
        sync = GaugeMetricFamily("dora_sync_failing", "1 while the latest sync ended Failed/Error", labels=pair)
        degraded = GaugeMetricFamily("dora_degraded", "1 while the app is Degraded", labels=pair)
        open_ = GaugeMetricFamily("dora_failure_open", "1 while a failure is not restored", labels=pair)
        leads: list[tuple[list[str], Histogram]] = []
        restores: list[tuple[list[str], Histogram]] = []
        phases: list[tuple[list[str], Histogram]] = []
        for p in snap.pairs:
            lbl = [p.key.service, p.key.environment, *self.static_values.get(p.key.service, blank)]
            phases.extend(([*lbl, phase], h) for phase, h in p.lead_time_phases.items())
            deployments.add_metric(lbl, p.deployments_total)
            changes.add_metric(lbl, p.changes_total)
            for reason, n in p.failures_by_reason.items():
                failures.add_metric([*lbl, reason.value], n)
            leads.append((lbl, p.lead_time))
            restores.append((lbl, p.time_to_restore))
            for window, s in p.windows.items():
                wl = [*lbl, window]
                freq.add_metric(wl, s.deployments_per_day)
                for fam, value in (
                    (lead_med, s.lead_time_median_seconds),
                    (cfr, s.change_failure_rate),
                    (ttr_med, s.time_to_restore_median_seconds),
                    (rework, s.rework_rate),
                ):
                    if value is not None:
                        fam.add_metric(wl, value)
                for metric in DoraMetric:
                    lvl = p.levels[window].get(metric)
                    if lvl is not None:
                        level.add_metric([*lbl, metric.value, window], int(lvl))
            if p.last_deployment_ts is not None:
                last.add_metric(lbl, p.last_deployment_ts)
            sync.add_metric(lbl, int(p.sync_failing))
            degraded.add_metric(lbl, int(p.degraded))
            open_.add_metric(lbl, int(p.failure_open))
        extra: list[Metric] = []
        if phases:
            extra.append(
                _hist(
                    "dora_lead_time_phase_seconds",
                    "Lead time of changes merged through a pull request, by phase: coding (first commit to opened), "
                    "review (opened to merged), deploy (merged to deployed)",
                    phases,
                    [*pair, "phase"],
                )
            )
        return [
            *extra,
            deployments,
            failures,
            changes,
            _hist("dora_lead_time_seconds", "Lead time for changes, one observation per change", leads, pair),
            _hist(
                "dora_time_to_restore_seconds", "Time to restore, one observation per restored failure", restores, pair
            ),
            freq,
            lead_med,
            cfr,
            ttr_med,
            rework,
            level,
            last,
            sync,
            degraded,
            open_,
        ]

    def _self(self, snap: Snapshot) -> list[Metric]:
        sources, errors = self.health.copy()
        up = GaugeMetricFamily(
            "dora_exporter_source_up", "1 when the source's last attempt succeeded", labels=["source"]
        )
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
        err = CounterMetricFamily("dora_exporter_source_errors", "Source errors by kind", labels=["source", "kind"])
        for (source, kind), n in sorted(errors.items()):
            err.add_metric([source, kind], n)
        unmatched = CounterMetricFamily(
            "dora_exporter_unmatched", "Inputs that could not be attributed, once each", labels=["source", "reason"]
        )
        counts = dict.fromkeys(((s, r) for s, reasons in KNOWN_UNMATCHED.items() if s in sources for r in reasons), 0)
        counts.update(snap.unmatched)
        for (source, reason), n in sorted(counts.items()):
            unmatched.add_metric([source, reason], n)
        tallies = self.health.counts()
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
        info = GaugeMetricFamily("dora_exporter_build_info", "Build information", labels=["version"])
        info.add_metric([__version__], 1)
        computed = GaugeMetricFamily(
            "dora_exporter_snapshot_timestamp_seconds", "When the served numbers were last computed"
        )
        computed.add_metric([], snap.computed_at.timestamp())
        out: list[Metric] = [up, last, ingest, err, unmatched, *families, info, computed]
        if "github" in sources:
            no_pr = CounterMetricFamily(
                "dora_exporter_changes_without_pull_request",
                "Changes whose merged pull request was looked up and not found (direct pushes)",
            )
            no_pr.add_metric([], snap.changes_without_pull_request)
            out.append(no_pr)
            rate = GaugeMetricFamily(
                "dora_exporter_github_rate_limit_remaining",
                "Requests left in GitHub's current rate-limit window",
                labels=["resource"],
            )
            for resource, remaining in sorted(dict(self.health.github_rate_limit_remaining).items()):
                rate.add_metric([resource], remaining)
            out.append(rate)
        return out
