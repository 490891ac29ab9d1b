# SPDX-License-Identifier: Apache-2.0
"""Generate the Grafana dashboards of dora-exporter from code.

    python dashboards/generate.py            # (re)write dashboards/*.json
    python dashboards/generate.py --check    # exit 1 and show a diff if a committed file is stale

The dashboards are built with grafana-foundation-sdk (pinned to ``1769699379!11.6.0``) and written
as sorted, indented JSON so that the committed files diff cleanly. docs/dashboards.md describes
them; tests/artifacts/test_dashboards.py regenerates them and validates them against Grafana's schema.

Every query uses the Prometheus data source chosen by the ``datasource`` variable: there is no
data source UID in the files, so they import into any Grafana.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.prometheus import PromQueryFormat, QueryEditorMode

OUT_DIR = Path(__file__).resolve().parent
TAGS = ["dora", "dora-exporter"]

# Every panel, query, variable and annotation reads from the data source picked by this variable.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")

# Grafana units used throughout.
PER_DAY = "suffix:/day"
SECONDS = units.Seconds
RATIO = units.PercentUnit
FROM_NOW = units.DateTimeFromNow
PER_MINUTE = units.CountsPerMinute

# dora_performance_level: 4 elite, 3 high, 2 medium, 1 low.
LEVELS = ((4, "Elite", "dark-green"), (3, "High", "green"), (2, "Medium", "yellow"), (1, "Low", "red"))
LEVEL_MAPPINGS: list[dm.ValueMapping] = [
    dm.ValueMap(
        options={
            str(value): dm.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, text, color) in enumerate(LEVELS)
        }
    )
]

# The fields of a Prometheus annotation query that Grafana stores next to the generic annotation
# keys. Grafana's own dashboard model accepts them; the JSON schema generated from the TypeScript
# types of @grafana/schema closes AnnotationQuery and does not (see docs/dashboards.md).
PROMETHEUS_ANNOTATION_FIELDS = ("expr", "step", "titleFormat", "tagKeys", "textFormat", "useValueForTime")


def ok_failing_mappings(ok: str, failing: str, failing_color: str = "red") -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                "0": dm.ValueMappingResult(text=ok, color="green", index=0),
                "1": dm.ValueMappingResult(text=failing, color=failing_color, index=1),
            }
        )
    ]


def fixed_color(color: str) -> db.FieldColor:
    return db.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color(color)


def level_thresholds() -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dm.Threshold(value=None, color="red"),
                dm.Threshold(value=2, color="yellow"),
                dm.Threshold(value=3, color="green"),
                dm.Threshold(value=4, color="dark-green"),
            ]
        )
    )


def plain_thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def query(
    expr: str,
    legend: str = "",
    ref: str = "A",
    *,
    instant: bool = False,
    fmt: PromQueryFormat | None = None,
    interval: str | None = None,
) -> prom.Dataquery:
    q = (
        prom.Dataquery()
        .expr(expr)
        .ref_id(ref)
        .datasource(DATASOURCE)
        .editor_mode(QueryEditorMode.CODE)
        .legend_format(legend or "__auto")
    )
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    if interval is not None:
        q = q.interval(interval)
    return q


def threshold_line() -> list[dm.DynamicConfigValue]:
    """Field properties that draw an alert-threshold series as a dashed red line."""
    return [
        dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]


def ts_panel(title: str, description: str, unit: str, w: int, h: int = 8) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(2)
        .fill_opacity(10)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
        )
        .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    )


def bars_panel(title: str, description: str, unit: str, w: int, h: int = 8) -> timeseries.Panel:
    return (
        ts_panel(title, description, unit, w, h)
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .line_width(1)
        .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    )


def stat_panel(title: str, description: str, w: int, h: int) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .span(w)
        .height(h)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .text_mode(cm.BigValueTextMode.VALUE_AND_NAME)
        .justify_mode(cm.BigValueJustifyMode.CENTER)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


# --- variables ---------------------------------------------------------------------------------


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type("prometheus")
        .description("The Prometheus that scrapes dora-exporter.")
    )


def label_variable(
    name: str,
    label: str,
    query_text: str,
    description: str,
    *,
    current: str | None = None,
    multi: bool = False,
) -> db.QueryVariable:
    variable = (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query_text)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NATURAL_ASC)
    )
    if multi:
        variable = (
            variable.multi(True)
            .include_all(True)
            .all_value(".+")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
        )
    elif current is not None:
        variable = variable.current(dm.VariableOption(selected=True, text=current, value=current))
    return variable


def window_variable() -> db.QueryVariable:
    return label_variable(
        "window",
        "Window",
        "label_values(dora_deployment_frequency_per_day, window)",
        "Rolling window of the exporter's precomputed gauges (configured in the exporter).",
        current="30d",
    )


def dora_links() -> db.DashboardLink:
    return (
        db.DashboardLink("DORA dashboards")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["dora"])
        .as_dropdown(True)
        .include_vars(False)
        .keep_time(True)
    )


def base_dashboard(uid: str, title: str, description: str, time_from: str, refresh: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time(time_from, "now")
        .timezone("browser")
        .refresh(refresh)
        .link(dora_links())
        .with_variable(datasource_variable())
    )


# --- DORA overview -----------------------------------------------------------------------------

OVERVIEW_SEL = 'environment="$environment", service=~"$service", window="$window"'


@dataclass(frozen=True)
class Key:
    metric: str  # the `metric` label of dora_performance_level
    title: str
    value_expr: str
    value_name: str
    unit: str
    description: str
    trend_expr: str


def overview_keys() -> list[Key]:
    s = OVERVIEW_SEL
    return [
        Key(
            "deployment_frequency",
            "Deployment frequency",
            f"sum(dora_deployment_frequency_per_day{{{s}}})",
            "Deployments",
            PER_DAY,
            "Deployments per day over the window, summed over the selected services. "
            "Level: the lowest level among the selected services.",
            f"sum by (service) (dora_deployment_frequency_per_day{{{s}}})",
        ),
        Key(
            "lead_time",
            "Lead time for changes",
            f"max(dora_lead_time_median_seconds{{{s}}})",
            "Median (slowest service)",
            SECONDS,
            "Median time from commit to production of the changes deployed in the window; with "
            "several services, the slowest service's median. Level: the lowest among the selected "
            "services. Empty when no change was deployed in the window.",
            f"max by (service) (dora_lead_time_median_seconds{{{s}}})",
        ),
        Key(
            "change_failure_rate",
            "Change failure rate",
            f"sum(dora_change_failure_ratio{{{s}}} * dora_deployment_frequency_per_day{{{s}}})"
            f" / (sum(dora_deployment_frequency_per_day{{{s}}}) > 0)",
            "Failed deployments",
            RATIO,
            "Failed deployments / deployments over the window, over all selected services "
            "(each service's ratio weighted by its deployments). Level: the lowest among the "
            "selected services.",
            f"max by (service) (dora_change_failure_ratio{{{s}}})",
        ),
        Key(
            "time_to_restore",
            "Time to restore",
            f"max(dora_time_to_restore_median_seconds{{{s}}})",
            "Median (slowest service)",
            SECONDS,
            "Median time from failure to restoration of the failures restored in the window; with "
            "several services, the slowest service's median. Level: the lowest among the selected "
            "services. Empty when nothing was restored in the window.",
            f"max by (service) (dora_time_to_restore_median_seconds{{{s}}})",
        ),
    ]


def key_stat(key: Key) -> stat.Panel:
    level = f'min(dora_performance_level{{{OVERVIEW_SEL}, metric="{key.metric}"}})'
    return (
        stat_panel(key.title, key.description, w=6, h=6)
        .with_target(query(key.value_expr, key.value_name, "A", instant=True))
        .with_target(query(level, "Level", "B", instant=True))
        .unit(key.unit)
        .decimals(2 if key.unit in (PER_DAY, RATIO) else 1)
        .color_scheme(fixed_color("transparent"))
        .no_value("no data in window")
        .override_by_query(
            "B",
            [
                dm.DynamicConfigValue(id_val="unit", value="none"),
                dm.DynamicConfigValue(id_val="decimals", value=0),
                dm.DynamicConfigValue(id_val="mappings", value=LEVEL_MAPPINGS),
                dm.DynamicConfigValue(id_val="thresholds", value=level_thresholds().build()),
                dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
    )


def services_table() -> table.Panel:
    s = OVERVIEW_SEL
    columns: list[tuple[str, str, str | None, list[dm.ValueMapping] | None]] = [
        # (column name, expression, unit, mappings)
        ("Deploys/day", f"max by (service) (dora_deployment_frequency_per_day{{{s}}})", PER_DAY, None),
        ("Lead time", f"max by (service) (dora_lead_time_median_seconds{{{s}}})", SECONDS, None),
        ("Change failure rate", f"max by (service) (dora_change_failure_ratio{{{s}}})", RATIO, None),
        ("Time to restore", f"max by (service) (dora_time_to_restore_median_seconds{{{s}}})", SECONDS, None),
        ("Rework rate", f"max by (service) (dora_rework_ratio{{{s}}})", RATIO, None),
    ]
    for metric, name in (
        ("deployment_frequency", "DF level"),
        ("lead_time", "LT level"),
        ("change_failure_rate", "CFR level"),
        ("time_to_restore", "TTR level"),
    ):
        columns.append(
            (name, f'max by (service) (dora_performance_level{{{s}, metric="{metric}"}})', None, LEVEL_MAPPINGS)
        )
    columns.append(
        (
            "Last deployment",
            'max by (service) (dora_last_deployment_timestamp_seconds{environment="$environment", '
            'service=~"$service"}) * 1000',
            FROM_NOW,
            None,
        )
    )
    columns.append(
        (
            "Open failure",
            'max by (service) (dora_failure_open{environment="$environment", service=~"$service"})',
            None,
            ok_failing_mappings("no", "open"),
        )
    )
    panel = (
        table.Panel()
        .title("Services ($environment, $window window)")
        .description(
            "One row per service: the exporter's gauges for the window, the performance level of "
            "each key, and the current state. Click a service for its drill-down."
        )
        .datasource(DATASOURCE)
        .span(24)
        .height(10)
        .cell_height(cm.TableCellHeight.SM)
        .sort_by([cb.TableSortByFieldState().display_name("service")])
    )
    rename: dict[str, str] = {}
    for index, (name, expr, unit, mappings) in enumerate(columns):
        ref = chr(ord("A") + index)
        panel = panel.with_target(query(expr, name, ref, instant=True, fmt=PromQueryFormat.TABLE))
        rename[f"Value #{ref}"] = name
        props = []
        if unit is not None:
            props.append(dm.DynamicConfigValue(id_val="unit", value=unit))
        if mappings is not None:
            props.append(dm.DynamicConfigValue(id_val="mappings", value=mappings))
            props.append(
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background", "mode": "basic"})
            )
        if props:
            panel = panel.override_by_name(name, props)
    panel = panel.override_by_name(
        "service",
        [
            dm.DynamicConfigValue(
                id_val="links",
                value=[
                    {
                        "title": "Drill down into ${__value.text}",
                        "url": "/d/dora-service?var-service=${__value.raw}"
                        "&${environment:queryparam}&${window:queryparam}&${datasource:queryparam}"
                        "&${__url_time_range}",
                    }
                ],
            )
        ],
    )
    return panel.transformations(
        [
            dm.DataTransformerConfig(id_val="merge", options={}),
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {"Time": True},
                    "indexByName": {"service": 0, **{name: i + 1 for i, (name, *_rest) in enumerate(columns)}},
                    "renameByName": rename,
                },
            ),
        ]
    )


def overview() -> db.Dashboard:
    d = (
        base_dashboard(
            "dora-overview",
            "DORA overview",
            "The four DORA keys per environment (production by default) from dora-exporter, with "
            "their performance level, trends and a per-service table.",
            "now-30d",
            "5m",
        )
        .with_variable(
            label_variable(
                "environment",
                "Environment",
                "label_values(dora_deployments_total, environment)",
                "The environment the keys are computed for; production by default.",
                current="prod",
            )
        )
        .with_variable(
            label_variable(
                "service",
                "Service",
                'label_values(dora_deployments_total{environment="$environment"}, service)',
                "Services to include.",
                multi=True,
            )
        )
        .with_variable(window_variable())
        .with_row(db.Row("Four keys: $environment, $window window"))
    )
    keys = overview_keys()
    for key in keys:
        d = d.with_panel(key_stat(key))

    d = d.with_row(db.Row("Trends"))
    for key in keys:
        panel = ts_panel(
            f"{key.title} ($window window)",
            f"The exporter's {key.title.lower()} gauge over time, per service.",
            key.unit,
            w=12,
        ).with_target(query(key.trend_expr, "{{service}}"))
        if key.metric == "change_failure_rate":
            panel = panel.with_target(
                query("dora:alert_threshold:change_failure_ratio", "alert threshold", "B")
            ).override_by_name("alert threshold", threshold_line())
        d = d.with_panel(panel)
    d = d.with_panel(
        bars_panel(
            "Deployments and failed deployments",
            "Deployments and failed deployments per interval, from the cumulative counters. A "
            "failed deployment with several reasons is counted once per reason.",
            units.Short,
            w=12,
        )
        .interval("1h")
        .with_target(
            query(
                'sum(increase(dora_deployments_total{environment="$environment", service=~"$service"}[$__interval]))',
                "deployments",
            )
        )
        .with_target(
            query(
                "sum by (reason) (increase(dora_deployment_failures_total"
                '{environment="$environment", service=~"$service"}[$__interval]))',
                "failed: {{reason}}",
                "B",
            )
        )
        .override_by_name(
            "deployments", [dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "blue"})]
        )
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title("Performance level per key ($window window)")
        .description("The lowest level among the selected services, per key.")
        .datasource(DATASOURCE)
        .span(12)
        .height(8)
        .mappings(LEVEL_MAPPINGS)
        .thresholds(level_thresholds())
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .show_value(cm.VisibilityMode.AUTO)
        .with_target(query(f"min by (metric) (dora_performance_level{{{OVERVIEW_SEL}}})", "{{metric}}"))
    )
    d = d.with_row(db.Row("Services"))
    return d.with_panel(services_table())


# --- service drill-down -------------------------------------------------------------------------

SERVICE_SEL = 'service="$service", environment=~"$environment"'


def state_stat(title: str, description: str, expr: str, mappings: list[dm.ValueMapping]) -> stat.Panel:
    return (
        stat_panel(title, description, w=6, h=5)
        .with_target(query(expr, "{{environment}}", instant=True))
        .mappings(mappings)
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .thresholds(plain_thresholds((None, "green"), (1, "red")))
        .no_value("not reported")
    )


def service() -> db.Dashboard:
    d = (
        base_dashboard(
            "dora-service",
            "DORA service drill-down",
            "One service across its environments: current sync and health state, deployments, "
            "lead-time distribution, failures and restores. Failed syncs are annotated.",
            "now-30d",
            "1m",
        )
        .with_variable(
            label_variable(
                "service",
                "Service",
                "label_values(dora_deployments_total, service)",
                "The service to look at.",
            )
        )
        .with_variable(
            label_variable(
                "environment",
                "Environment",
                'label_values(dora_deployments_total{service="$service"}, environment)',
                "Environments to include.",
                multi=True,
            )
        )
        .with_variable(window_variable())
        .annotation(
            db.AnnotationQuery()
            .name("Failed syncs")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("red")
            .expr(f"max by (environment) (dora_sync_failing{{{SERVICE_SEL}}}) == 1")
        )
        .annotation(
            db.AnnotationQuery()
            .name("Deployments")
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color("blue")
            .expr(f"sum by (environment) (changes(dora_deployments_total{{{SERVICE_SEL}}}[2m])) > 0")
        )
        .with_row(db.Row("Current state: $service"))
        .with_panel(
            state_stat(
                "Sync",
                "Whether the latest Argo CD sync operation ended Failed/Error, per environment.",
                f"max by (environment) (dora_sync_failing{{{SERVICE_SEL}}})",
                ok_failing_mappings("Synced", "Sync failed"),
            )
        )
        .with_panel(
            state_stat(
                "Health",
                "Whether Argo CD reports the application Degraded, per environment.",
                f"max by (environment) (dora_degraded{{{SERVICE_SEL}}})",
                ok_failing_mappings("Healthy", "Degraded"),
            )
        )
        .with_panel(
            state_stat(
                "Open failure",
                "Whether a failed deployment is not restored yet, per environment.",
                f"max by (environment) (dora_failure_open{{{SERVICE_SEL}}})",
                ok_failing_mappings("None", "Open"),
            )
        )
        .with_panel(
            stat_panel("Last deployment", "Time of the latest deployment, per environment.", w=6, h=5)
            .with_target(
                query(
                    f"max by (environment) (dora_last_deployment_timestamp_seconds{{{SERVICE_SEL}}} > 0) * 1000",
                    "{{environment}}",
                    instant=True,
                )
            )
            .unit(FROM_NOW)
            .color_scheme(fixed_color("blue"))
            .color_mode(cm.BigValueColorMode.VALUE)
            .no_value("never")
        )
        .with_panel(
            statetimeline.Panel()
            .title("Sync, health and open failures over time")
            .description("Red while the latest sync failed, the application was Degraded, or a failure was open.")
            .datasource(DATASOURCE)
            .span(24)
            .height(7)
            .mappings(ok_failing_mappings("ok", "failing"))
            .thresholds(plain_thresholds((None, "green"), (1, "red")))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(cm.VisibilityMode.NEVER)
            .merge_values(True)
            .with_target(
                query(f"max by (environment) (dora_sync_failing{{{SERVICE_SEL}}})", "{{environment}} sync failed")
            )
            .with_target(
                query(f"max by (environment) (dora_degraded{{{SERVICE_SEL}}})", "{{environment}} degraded", "B")
            )
            .with_target(
                query(f"max by (environment) (dora_failure_open{{{SERVICE_SEL}}})", "{{environment}} failure open", "C")
            )
        )
        .with_row(db.Row("Deployments"))
        .with_panel(
            bars_panel("Deployments", "Deployments per interval, per environment.", units.Short, w=12)
            .interval("1h")
            .with_target(
                query(
                    f"sum by (environment) (increase(dora_deployments_total{{{SERVICE_SEL}}}[$__interval]))",
                    "{{environment}}",
                )
            )
        )
        .with_panel(
            ts_panel(
                "Deployment frequency ($window window)",
                "The exporter's deployments-per-day gauge for the window, per environment.",
                PER_DAY,
                w=12,
            ).with_target(
                query(
                    f'max by (environment) (dora_deployment_frequency_per_day{{{SERVICE_SEL}, window="$window"}})',
                    "{{environment}}",
                )
            )
        )
        .with_row(db.Row("Lead time for changes"))
        .with_panel(
            heatmap.Panel()
            .title("Lead time distribution")
            .description(
                "Changes deployed per interval by lead time, from the dora_lead_time_seconds "
                "histogram (one observation per change). Buckets follow the DORA boundaries."
            )
            .datasource(DATASOURCE)
            .span(16)
            .height(9)
            .interval("1d")
            .calculate(False)
            .y_axis(heatmap.YAxisConfig().unit(SECONDS))
            .color(
                heatmap.HeatmapColorOptions()
                .mode(hm.HeatmapColorMode.SCHEME)
                .scheme("Oranges")
                .scale(hm.HeatmapColorScale.EXPONENTIAL)
                .exponent(0.5)
                .steps(64)
                .fill("dark-orange")
                .reverse(False)
            )
            .cell_values(heatmap.CellValues().unit(units.Short))
            .with_target(
                query(
                    f"sum by (le) (increase(dora_lead_time_seconds_bucket{{{SERVICE_SEL}}}[$__interval]))",
                    "{{le}}",
                    fmt=PromQueryFormat.HEATMAP,
                )
            )
        )
        .with_panel(
            bargauge.Panel()
            .title("Lead time distribution over the time range")
            .description("Changes deployed in the selected time range per lead-time bucket (upper bound in seconds).")
            .datasource(DATASOURCE)
            .span(8)
            .height(9)
            .unit(units.Short)
            .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
            .orientation(cm.VizOrientation.HORIZONTAL)
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.CONTINUOUS_GR_YL_RD))
            .with_target(
                query(
                    f"sum by (le) (increase(dora_lead_time_seconds_bucket{{{SERVICE_SEL}}}[$__range]))",
                    "{{le}}",
                    instant=True,
                    fmt=PromQueryFormat.HEATMAP,
                )
            )
        )
        .with_panel(
            ts_panel(
                "Median lead time ($window window)",
                "The exporter's median lead-time gauge, per environment. Empty while no change was "
                "deployed in the window.",
                SECONDS,
                w=24,
                h=7,
            ).with_target(
                query(
                    f'max by (environment) (dora_lead_time_median_seconds{{{SERVICE_SEL}, window="$window"}})',
                    "{{environment}}",
                )
            )
        )
        .with_row(db.Row("Failures and restores"))
        .with_panel(
            bars_panel(
                "Failures and restores",
                "Failed deployments per interval by reason (up) and restored failures (down).",
                units.Short,
                w=12,
            )
            .interval("1h")
            .with_target(
                query(
                    f"sum by (reason) (increase(dora_deployment_failures_total{{{SERVICE_SEL}}}[$__interval]))",
                    "failed: {{reason}}",
                )
            )
            .with_target(
                query(
                    f"sum(increase(dora_time_to_restore_seconds_count{{{SERVICE_SEL}}}[$__interval]))",
                    "restored",
                    "B",
                )
            )
            .override_by_name(
                "restored",
                [
                    dm.DynamicConfigValue(id_val="custom.transform", value="negative-Y"),
                    dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "green"}),
                ],
            )
        )
        .with_panel(
            ts_panel(
                "Change failure rate ($window window)",
                "The exporter's change failure ratio for the window, per environment.",
                RATIO,
                w=6,
            )
            .max(1)
            .min(0)
            .with_target(
                query(
                    f'max by (environment) (dora_change_failure_ratio{{{SERVICE_SEL}, window="$window"}})',
                    "{{environment}}",
                )
            )
        )
        .with_panel(
            ts_panel(
                "Time to restore ($window window)",
                "The exporter's median time to restore for the window, per environment.",
                SECONDS,
                w=6,
            ).with_target(
                query(
                    f'max by (environment) (dora_time_to_restore_median_seconds{{{SERVICE_SEL}, window="$window"}})',
                    "{{environment}}",
                )
            )
        )
    )
    return d


# --- exporter health ----------------------------------------------------------------------------

EXPORTER_SEL = 'job=~"$job", instance=~"$instance"'


def exporter() -> db.Dashboard:
    s = EXPORTER_SEL
    return (
        base_dashboard(
            "dora-exporter-health",
            "DORA exporter health",
            "dora-exporter itself: scrapes, sources, errors, unmatched events and the GitHub rate limit.",
            "now-6h",
            "1m",
        )
        .with_variable(
            label_variable(
                "job",
                "Job",
                "label_values(dora_exporter_build_info, job)",
                "Scrape job(s) of dora-exporter.",
                multi=True,
            )
        )
        .with_variable(
            label_variable(
                "instance",
                "Instance",
                'label_values(dora_exporter_build_info{job=~"$job"}, instance)',
                "Exporter instance(s).",
                multi=True,
            )
        )
        .with_row(db.Row("Exporter"))
        .with_panel(
            stat_panel("Scrape", "Whether Prometheus' last scrape of the exporter succeeded.", w=6, h=5)
            .with_target(query(f"up{{{s}}}", "{{instance}}", instant=True))
            .mappings(
                [
                    dm.ValueMap(
                        options={
                            "1": dm.ValueMappingResult(text="Up", color="green", index=0),
                            "0": dm.ValueMappingResult(text="Down", color="red", index=1),
                        }
                    )
                ]
            )
            .thresholds(plain_thresholds((None, "red"), (1, "green")))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .no_value("not scraped")
        )
        .with_panel(
            stat_panel("Version", "dora_exporter_build_info.", w=6, h=5)
            .with_target(query(f"max by (version) (dora_exporter_build_info{{{s}}})", "{{version}}", instant=True))
            .text_mode(cm.BigValueTextMode.NAME)
            .color_scheme(fixed_color("blue"))
        )
        .with_panel(
            stat_panel(
                "Collector time",
                "dora_exporter_scrape_duration_seconds: how long the exporter's collector took for the last scrape.",
                w=6,
                h=5,
            )
            .with_target(query(f"max(dora_exporter_scrape_duration_seconds{{{s}}})", "last scrape", instant=True))
            .unit(SECONDS)
            .thresholds(plain_thresholds((None, "green"), (1, "yellow"), (5, "red")))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        )
        .with_panel(
            stat_panel(
                "Firing DORA alerts",
                "Alerts of alerts/dora-rules.yaml firing now (needs the rules loaded in this Prometheus).",
                w=6,
                h=5,
            )
            .with_target(
                query('count(ALERTS{alertname=~"Dora.+", alertstate="firing"}) or vector(0)', "firing", instant=True)
            )
            .thresholds(plain_thresholds((None, "green"), (1, "red")))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        )
        .with_panel(
            ts_panel(
                "Scrape duration",
                "The exporter's own collector time and Prometheus' total scrape time of the target.",
                SECONDS,
                w=12,
            )
            .with_target(query(f"dora_exporter_scrape_duration_seconds{{{s}}}", "collector {{instance}}"))
            .with_target(query(f"scrape_duration_seconds{{{s}}}", "scrape {{instance}}", "B"))
        )
        .with_panel(
            ts_panel(
                "Ingest duration",
                "dora_exporter_ingest_duration_seconds: time of the last ingest per source.",
                SECONDS,
                w=12,
            ).with_target(query(f"max by (source) (dora_exporter_ingest_duration_seconds{{{s}}})", "{{source}}"))
        )
        .with_row(db.Row("Sources"))
        .with_panel(
            statetimeline.Panel()
            .title("Source up")
            .description("dora_exporter_source_up: whether the last attempt of each source succeeded.")
            .datasource(DATASOURCE)
            .span(12)
            .height(7)
            .mappings(
                [
                    dm.ValueMap(
                        options={
                            "1": dm.ValueMappingResult(text="up", color="green", index=0),
                            "0": dm.ValueMappingResult(text="down", color="red", index=1),
                        }
                    )
                ]
            )
            .thresholds(plain_thresholds((None, "red"), (1, "green")))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(cm.VisibilityMode.NEVER)
            .with_target(query(f"min by (source) (dora_exporter_source_up{{{s}}})", "{{source}}"))
        )
        .with_panel(
            ts_panel(
                "Time since last success",
                "Age of each source's last successful read. The dashed line is the DoraSourceStale "
                "threshold (when the alert rules are loaded).",
                SECONDS,
                w=12,
                h=7,
            )
            .with_target(
                query(
                    f"time() - max by (source) (dora_exporter_source_last_success_timestamp_seconds{{{s}}} > 0)",
                    "{{source}}",
                )
            )
            .with_target(query("dora:alert_threshold:source_stale_seconds", "alert threshold", "B"))
            .override_by_name("alert threshold", threshold_line())
        )
        .with_panel(
            ts_panel(
                "Source errors",
                "dora_exporter_source_errors_total per minute, by source and kind.",
                PER_MINUTE,
                w=12,
            ).with_target(
                query(
                    f"sum by (source, kind) (rate(dora_exporter_source_errors_total{{{s}}}[$__rate_interval])) * 60",
                    "{{source}} {{kind}}",
                )
            )
        )
        .with_panel(
            ts_panel(
                "Unmatched events",
                "dora_exporter_unmatched_total per minute: events that could not be attributed "
                "(unknown application, unresolvable tag, ...), by source and reason.",
                PER_MINUTE,
                w=12,
            ).with_target(
                query(
                    f"sum by (source, reason) (rate(dora_exporter_unmatched_total{{{s}}}[$__rate_interval])) * 60",
                    "{{source}} {{reason}}",
                )
            )
        )
        .with_panel(
            ts_panel(
                "Argo CD watch",
                "Per minute: watch streams reopened (dora_exporter_watch_reconnects_total), relists after "
                "410 Gone (dora_exporter_watch_relists_total), events processed "
                "(dora_exporter_events_processed_total), webhook notifications by outcome "
                "(dora_exporter_webhook_events_total) and Argo CD history ids lost while not watching "
                "(dora_exporter_history_gaps_total).",
                PER_MINUTE,
                w=12,
            )
            .with_target(
                query(
                    f"sum by (source) (rate(dora_exporter_watch_reconnects_total{{{s}}}[$__rate_interval])) * 60",
                    "reconnects {{source}}",
                )
            )
            .with_target(
                query(
                    f"sum by (source) (rate(dora_exporter_watch_relists_total{{{s}}}[$__rate_interval])) * 60",
                    "relists {{source}}",
                    "B",
                )
            )
            .with_target(
                query(
                    f"sum by (source) (rate(dora_exporter_events_processed_total{{{s}}}[$__rate_interval])) * 60",
                    "events {{source}}",
                    "C",
                )
            )
            .with_target(
                query(
                    f"sum by (source, outcome) (rate(dora_exporter_webhook_events_total{{{s}}}[$__rate_interval]))"
                    " * 60",
                    "webhooks {{source}} {{outcome}}",
                    "D",
                )
            )
            .with_target(
                query(
                    f"sum by (source) (rate(dora_exporter_history_gaps_total{{{s}}}[$__rate_interval])) * 60",
                    "history gaps {{source}}",
                    "E",
                )
            )
        )
        .with_panel(
            ts_panel(
                "GitHub rate limit remaining",
                "Requests left in the current GitHub rate-limit window. The dashed line is the "
                "DoraGitHubRateLimitLow threshold (when the alert rules are loaded).",
                units.Short,
                w=12,
            )
            .min(0)
            .with_target(query(f"dora_exporter_github_rate_limit_remaining{{{s}}}", "remaining {{resource}}"))
            .with_target(query("dora:alert_threshold:github_rate_limit_remaining", "alert threshold", "B"))
            .override_by_name("alert threshold", threshold_line())
        )
        .with_panel(
            ts_panel(
                "Changes without a pull request",
                "dora_exporter_changes_without_pull_request_total per hour: changes whose merged pull request "
                "was looked up on GitHub and not found (direct pushes; their lead time starts at the commit).",
                units.Short,
                w=12,
            ).with_target(
                query(
                    f"sum(increase(dora_exporter_changes_without_pull_request_total{{{s}}}[1h]))",
                    "direct pushes",
                )
            )
        )
        .with_panel(
            table.Panel()
            .title("Firing DORA alerts")
            .description("ALERTS of alerts/dora-rules.yaml that are firing now.")
            .datasource(DATASOURCE)
            .span(12)
            .height(8)
            .with_target(
                query(
                    'ALERTS{alertname=~"Dora.+", alertstate="firing"}',
                    "",
                    instant=True,
                    fmt=PromQueryFormat.TABLE,
                )
            )
            .transformations(
                [
                    dm.DataTransformerConfig(
                        id_val="organize",
                        options={
                            "excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True},
                            "renameByName": {},
                        },
                    )
                ]
            )
        )
    )


# --- output -------------------------------------------------------------------------------------

DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "dora-overview.json": overview,
    "dora-service.json": service,
    "dora-exporter.json": exporter,
}


def _finish_panels(panels: list[dict[str, Any]], next_id: int) -> int:
    for panel in panels:
        panel["id"] = next_id
        next_id += 1
        next_id = _finish_panels(panel.get("panels", []), next_id)
    return next_id


def _finish(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Fix up what the SDK emits so that the JSON is what Grafana stores and its schema accepts."""
    _finish_panels(dashboard.get("panels", []), 1)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "interval":
            # The 11.6 SDK puts the interval-only options on every variable.
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    annotations = dashboard.setdefault("annotations", {}).setdefault("list", [])
    for annotation in annotations:
        if annotation.get("datasource", {}).get("type") == "prometheus":
            # Legacy Prometheus annotation fields (Grafana migrates them on load); the SDK has
            # no builder for them.
            annotation.setdefault("step", "1m")
            annotation.setdefault("titleFormat", annotation["name"] + ": {{environment}}")
            annotation.setdefault("tagKeys", "environment")
            annotation.setdefault("textFormat", "")
            annotation.setdefault("useValueForTime", False)
    annotations.insert(
        0,
        {
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        },
    )
    return dashboard


def render(builder: Callable[[], db.Dashboard]) -> str:
    raw = json.loads(json.dumps(builder().build(), cls=JSONEncoder))
    return json.dumps(_finish(raw), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    return {name: render(builder) for name, builder in DASHBOARDS.items()}


def check(out_dir: Path, rendered: dict[str, str]) -> list[str]:
    """Differences between `rendered` and the files in `out_dir`, as printable messages."""
    problems = []
    for name, text in rendered.items():
        path = out_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"{path} (committed)",
                tofile=f"{path} (generated)",
                n=2,
            )
            problems.append(f"{path} is out of date:\n" + "".join(diff))
    for path in sorted(out_dir.glob("*.json")):
        if path.name not in rendered:
            problems.append(f"{path} is not generated by dashboards/generate.py (remove it)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the JSON files are (default: %(default)s)")
    args = parser.parse_args(argv)
    rendered = render_all()
    if args.check:
        problems = check(args.out_dir, rendered)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `python dashboards/generate.py` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(rendered)} dashboards up to date in {args.out_dir}")
        return 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
