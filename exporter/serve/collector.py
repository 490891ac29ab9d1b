# SPDX-License-Identifier: Apache-2.0
"""The DORA collector: DESIGN §3 families from the latest snapshot, with the self-metrics beside.

Rules from Prometheus' "writing exporters" guide: fresh families on every scrape from an
in-memory snapshot (never a remote call, never a database query), no sample timestamps, counters
derived from stored history so they never decrease across restarts, known label sets at 0, and a
failing family logged and counted instead of failing the whole scrape.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.core.levels import Metric as DoraMetric
from exporter.core.snapshot import Histogram, PairSnapshot, Snapshot
from exporter.serve.exposition import SnapshotHolder
from exporter.serve.health import Health
from exporter.serve.selfmetrics import SelfMetrics

__all__ = ["PAIR", "SOURCES", "DoraCollector"]

log = structlog.get_logger(__name__)

PAIR = ["service", "environment"]
SOURCES = ("gitops", "argocd", "github")
# Per-window gauges: (name, help, the window's attribute); a window without a value has no sample.
_WINDOW_GAUGES = (
    ("dora_lead_time_median_seconds", "Median lead time of changes deployed in the window", "lead_time_median_seconds"),
    ("dora_change_failure_ratio", "Failed deployments / deployments in the window", "change_failure_rate"),
    (
        "dora_time_to_restore_median_seconds",
        "Median restore time of failures restored in the window",
        "time_to_restore_median_seconds",
    ),
    ("dora_rework_ratio", "Deployments made to restore a failure / deployments in the window", "rework_rate"),
)
_PHASE_HELP = (
    "Lead time of changes merged through a pull request, by phase: coding (first commit to opened), "
    "review (opened to merged), deploy (merged to deployed)"
)


class DoraCollector(Collector):
    """The DORA families, then the self-metrics and the collector's own accounting (errors, duration).

    ``static_labels``: configured label names every DORA series carries after service and
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
        self.own = SelfMetrics(holder, health)
        self.collector_errors = 0
        self._apart = threading.local()  # set while ``Exposition`` renders the rest of a scrape

    @contextmanager
    def without_dora_families(self) -> Iterator[None]:
        """While inside, this thread's ``collect`` leaves the DORA families out (``Exposition``
        serves them from its cache); the registry alone still yields every family."""
        self._apart.on = True
        try:
            yield
        finally:
            self._apart.on = False

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
        builders: list[tuple[str, Callable[[Snapshot], list[Metric]]]] = [("_self", self.own.families)]
        if not getattr(self._apart, "on", False):
            builders.insert(0, ("_dora", self._dora))
        for family, build in builders:
            try:
                yield from build(snap)
            except Exception as exc:  # counted in collector_errors and logged with its traceback
                self.collector_errors += 1
                log.error("metrics.collect_failed", family=family, error=repr(exc), exc_info=True)
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
        families = _DoraFamilies([*PAIR, *self.static_names])
        blank = ("",) * len(self.static_names)
        for p in snap.pairs:
            families.add([p.key.service, p.key.environment, *self.static_values.get(p.key.service, blank)], p)
        return families.families()


class _DoraFamilies:
    """The DORA families of one scrape, filled pair by pair; ``pair`` are their leading label names."""

    def __init__(self, pair: list[str]) -> None:
        window = [*pair, "window"]
        self.pair = pair
        self.deployments = CounterMetricFamily("dora_deployments", "Deployments, over all stored history", labels=pair)
        self.failures = CounterMetricFamily(
            "dora_deployment_failures", "Failed deployments by reason", labels=[*pair, "reason"]
        )
        self.changes = CounterMetricFamily("dora_changes", "Changes delivered", labels=pair)
        self.freq = GaugeMetricFamily(
            "dora_deployment_frequency_per_day", "Deployments per day in the window", labels=window
        )
        self.windowed = [(GaugeMetricFamily(name, doc, labels=window), attr) for name, doc, attr in _WINDOW_GAUGES]
        self.level = GaugeMetricFamily(
            "dora_performance_level", "4 elite, 3 high, 2 medium, 1 low", labels=[*pair, "metric", "window"]
        )
        self.last = GaugeMetricFamily(
            "dora_last_deployment_timestamp_seconds", "Time of the latest deployment", labels=pair
        )
        self.sync = GaugeMetricFamily("dora_sync_failing", "1 while the latest sync ended Failed/Error", labels=pair)
        self.degraded = GaugeMetricFamily("dora_degraded", "1 while the app is Degraded", labels=pair)
        self.open = GaugeMetricFamily("dora_failure_open", "1 while a failure is not restored", labels=pair)
        self.leads: list[tuple[list[str], Histogram]] = []
        self.restores: list[tuple[list[str], Histogram]] = []
        self.phases: list[tuple[list[str], Histogram]] = []

    def add(self, lbl: list[str], p: PairSnapshot) -> None:
        """One pair's samples, ``lbl`` its values for the ``pair`` label names."""
        self.phases.extend(([*lbl, phase], h) for phase, h in p.lead_time_phases.items())
        self.deployments.add_metric(lbl, p.deployments_total)
        self.changes.add_metric(lbl, p.changes_total)
        for reason, n in p.failures_by_reason.items():
            self.failures.add_metric([*lbl, reason.value], n)
        self.leads.append((lbl, p.lead_time))
        self.restores.append((lbl, p.time_to_restore))
        for window, s in p.windows.items():
            wl = [*lbl, window]
            self.freq.add_metric(wl, s.deployments_per_day)
            for fam, attr in self.windowed:
                value = getattr(s, attr)
                if value is not None:
                    fam.add_metric(wl, value)
            for metric in DoraMetric:
                lvl = p.levels[window].get(metric)
                if lvl is not None:
                    self.level.add_metric([*lbl, metric.value, window], int(lvl))
        if p.last_deployment_ts is not None:
            self.last.add_metric(lbl, p.last_deployment_ts)
        self.sync.add_metric(lbl, int(p.sync_failing))
        self.degraded.add_metric(lbl, int(p.degraded))
        self.open.add_metric(lbl, int(p.failure_open))

    def families(self) -> list[Metric]:
        """In exposition order; the phase histogram only once some pair has phases."""
        pair = self.pair
        extra: list[Metric] = []
        if self.phases:
            extra.append(_histogram("dora_lead_time_phase_seconds", _PHASE_HELP, self.phases, [*pair, "phase"]))
        return [
            *extra,
            self.deployments,
            self.failures,
            self.changes,
            _histogram("dora_lead_time_seconds", "Lead time for changes, one observation per change", self.leads, pair),
            _histogram(
                "dora_time_to_restore_seconds",
                "Time to restore, one observation per restored failure",
                self.restores,
                pair,
            ),
            self.freq,
            *(fam for fam, _ in self.windowed),
            self.level,
            self.last,
            self.sync,
            self.degraded,
            self.open,
        ]


def _histogram(
    name: str, doc: str, hists: list[tuple[list[str], Histogram]], labels: list[str]
) -> HistogramMetricFamily:
    fam = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in hists:
        buckets = [(_le(b), float(c)) for b, c in zip(h.bounds, h.cumulative, strict=True)]
        buckets.append(("+Inf", float(h.count)))
        fam.add_metric(values, buckets, h.total)
    return fam


def _le(bound: float) -> str:
    return f"{bound:.1f}" if bound == int(bound) else repr(bound)
