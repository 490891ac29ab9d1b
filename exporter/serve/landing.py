# SPDX-License-Identifier: Apache-2.0
"""The HTML landing page: the production numbers of the main window and each source's state.

One static page with no script or style, built from the in-memory snapshot, so a person can check
the exporter with a browser before any dashboard exists.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from exporter.core.durations import format_duration
from exporter.core.levels import Level, Metric
from exporter.core.snapshot import PairSnapshot, Snapshot
from exporter.serve.health import SourceState

__all__ = ["landing_page"]


def landing_page(
    snap: Snapshot, sources: Mapping[str, SourceState], *, production_environment: str, window: str
) -> str:
    """The whole page; every value from the outside (names, errors) is escaped."""
    rows = "".join(_service_row(p, window) for p in snap.pairs if p.key.environment == production_environment)
    src = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{'up' if st.up else 'down'}</td><td>{html.escape(st.last_error)}</td></tr>"
        for n, st in sorted(sources.items())
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>dora-exporter</title></head><body>"
        f"<h1>dora-exporter</h1><p>Production environment <b>{html.escape(production_environment)}</b>, "
        f"window {html.escape(window)}, computed {snap.computed_at.isoformat(timespec='seconds')}.</p>"
        "<table border=1 cellpadding=4><tr><th>service</th><th>deployment frequency</th>"
        "<th>lead time (median)</th><th>change failure rate</th><th>time to restore (median)</th></tr>"
        + rows
        + "</table><h2>Sources</h2><table border=1 cellpadding=4><tr><th>source</th><th>state</th>"
        "<th>last error</th></tr>" + src + "</table>"
        "<p><a href='/metrics'>/metrics</a> · <a href='/api/deployments'>/api/deployments</a> · "
        "<a href='/healthz'>/healthz</a> · <a href='/readyz'>/readyz</a></p></body></html>"
    )


def _service_row(p: PairSnapshot, window: str) -> str:
    """One service's four numbers with their levels; "" for a pair without the window."""
    s = p.windows.get(window)
    if s is None:
        return ""
    levels = p.levels.get(window, {})

    def cell(value: str, metric: Metric) -> str:
        level: Level | None = levels.get(metric)
        return f"<td>{html.escape(value)} <small>{level.label if level else ''}</small></td>"

    cfr = "-" if s.change_failure_rate is None else f"{s.change_failure_rate:.0%}"
    return (
        f"<tr><td>{html.escape(p.key.service)}</td>"
        + cell(f"{s.deployments_per_day:.2f}/day", Metric.DEPLOYMENT_FREQUENCY)
        + cell(_duration(s.lead_time_median_seconds), Metric.LEAD_TIME)
        + cell(cfr, Metric.CHANGE_FAILURE_RATE)
        + cell(_duration(s.time_to_restore_median_seconds), Metric.TIME_TO_RESTORE)
        + "</tr>"
    )


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)
