# SPDX-License-Identifier: Apache-2.0
"""The Grafana dashboards in dashboards/: generated from code, valid for Grafana, and correct.

Prerequisites, installed by CI (these tests fail, they do not skip, without them):

- Grafana's dashboard JSON schema: `bash .ci/install-grafana-schema.sh` writes it to
  `${DORA_CACHE:-/var/cache/dora-exporter}/grafana-schema/dashboard.schema.json`; the env var
  DORA_GRAFANA_SCHEMA overrides the path.
- `check-jsonschema` and `grafana-foundation-sdk==1769699379!11.6.0` (Python test extra).
- `promtool` for the PromQL checks: `bash .ci/install-prometheus.sh`.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.support.metric_names import EXPORTER_METRICS
from tests.support.paths import PROJECT_ROOT

REPO = PROJECT_ROOT
DASHBOARD_DIR = REPO / "dashboards"
GENERATOR = DASHBOARD_DIR / "generate.py"
RULES = REPO / "alerts" / "dora-rules.yaml"
DOCS = REPO / "docs" / "dashboards.md"

SDK_VERSION = "1769699379!11.6.0"
SCHEMA_HINT = (
    "run `bash .ci/install-grafana-schema.sh` (npm @grafana/schema@13.2.3 + ts-json-schema-generator), "
    "or point DORA_GRAFANA_SCHEMA at a dashboard.schema.json"
)
PROMTOOL_HINT = "promtool is not installed: run `bash .ci/install-prometheus.sh` (Debian package prometheus)"

# What Prometheus adds itself to the exporter's metrics.
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds", "ALERTS"}
LEVEL_METRICS = ("deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore")

# Values for Grafana's variables when a query is handed to promtool.
VARIABLE_VALUES = {
    "$__rate_interval": "5m",
    "$__interval": "5m",
    "$__range": "1d",
    "$environment": "prod",
    "$service": "checkout",
    "$window": "30d",
    "$job": "dora-exporter",
    "$instance": "10.0.0.7:9187",
}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dora_dashboards_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


GEN = load_generator()
FILES: list[str] = sorted(GEN.DASHBOARDS)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text(encoding="utf-8"))
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def expressions(dashboard: dict[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a dashboard: panel queries and annotation queries."""
    for _, target in targets(dashboard):
        yield target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield annotation["expr"]


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{", expr))
    names |= set(re.findall(r"\bdora:[a-z0-9_:]+", expr))
    return names


def recorded_names() -> set[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}


def substitute(expr: str) -> str:
    for variable in sorted(VARIABLE_VALUES, key=len, reverse=True):
        expr = expr.replace(variable, VARIABLE_VALUES[variable])
    assert "$" not in expr, f"unhandled variable in {expr!r}"
    return expr


def without_prometheus_annotation_fields(dashboard: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(dashboard)
    for annotation in stripped["annotations"]["list"]:
        if annotation["datasource"].get("type") == "prometheus":
            for key in GEN.PROMETHEUS_ANNOTATION_FIELDS:
                annotation.pop(key, None)
    return stripped


@pytest.fixture(scope="module")
def schema() -> Path:
    default = Path(os.environ.get("DORA_CACHE", "/var/cache/dora-exporter")) / "grafana-schema"
    path = Path(os.environ.get("DORA_GRAFANA_SCHEMA") or default / "dashboard.schema.json")
    if not path.is_file():
        pytest.fail(f"Grafana dashboard schema not found at {path}: {SCHEMA_HINT}")
    return path


@pytest.fixture(scope="module")
def check_jsonschema() -> str:
    beside = Path(sys.executable).parent / "check-jsonschema"
    found = str(beside) if beside.exists() else shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema is not installed: pip install check-jsonschema (the test extra)")
    return found


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(PROMTOOL_HINT)
    return path


def validate(check_jsonschema: str, schema: Path, document: Path) -> dict[str, Any]:
    result = subprocess.run(
        [check_jsonschema, "--output-format", "json", "--schemafile", str(schema), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    assert (result.returncode == 0) == (report["status"] == "ok"), result.stdout + result.stderr
    return report


# --- generation ---------------------------------------------------------------------------------


def test_the_pinned_sdk_is_installed() -> None:
    assert importlib.metadata.version("grafana-foundation-sdk") == SDK_VERSION


def test_committed_dashboards_match_the_generator() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        "dashboards/*.json differ from `python dashboards/generate.py`:\n" + result.stdout + result.stderr
    )


def test_check_fails_on_a_stale_or_foreign_file(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert run().returncode == 0
    assert sorted(p.name for p in tmp_path.glob("*.json")) == FILES
    assert run("--check").returncode == 0

    overview = tmp_path / "dora-overview.json"
    overview.write_text(overview.read_text(encoding="utf-8").replace("DORA overview", "Edited by hand"))
    stale = run("--check")
    assert stale.returncode == 1
    assert "dora-overview.json is out of date" in stale.stderr
    assert '+  "title": "DORA overview"' in stale.stderr

    assert run().returncode == 0
    (tmp_path / "hand-made.json").write_text("{}")
    foreign = run("--check")
    assert foreign.returncode == 1
    assert "hand-made.json is not generated" in foreign.stderr


def test_generation_is_deterministic() -> None:
    assert GEN.render_all() == GEN.render_all()


# --- Grafana's JSON schema ----------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_dashboard_validates_against_grafana_schema(
    name: str, schema: Path, check_jsonschema: str, tmp_path: Path
) -> None:
    document = tmp_path / name
    document.write_text(json.dumps(without_prometheus_annotation_fields(load(name))), encoding="utf-8")
    report = validate(check_jsonschema, schema, document)
    assert report["status"] == "ok", json.dumps(report["errors"], indent=2)


@pytest.mark.parametrize("name", FILES)
def test_only_prometheus_annotation_fields_are_exempt_from_the_schema(
    name: str, schema: Path, check_jsonschema: str
) -> None:
    """Validating the committed file as is: the only complaints are the Prometheus annotation fields."""
    report = validate(check_jsonschema, schema, DASHBOARD_DIR / name)
    allowed = set(GEN.PROMETHEUS_ANNOTATION_FIELDS)
    for error in report["errors"]:
        assert re.fullmatch(r"\$\.annotations\.list\[\d+\]", error["path"]), error
        unexpected = set(re.findall(r"'(\w+)'", error["message"]))
        assert error["message"].startswith("Additional properties are not allowed"), error
        assert unexpected <= allowed, error


def test_schema_rejects_a_broken_dashboard(schema: Path, check_jsonschema: str, tmp_path: Path) -> None:
    """The validator is live: a bad gridPos and a numeric refresh are reported."""
    broken = load("dora-overview.json")
    broken["panels"][1]["gridPos"] = {"w": "wide", "h": 4, "x": 0, "y": 0}
    broken["refresh"] = 60
    document = tmp_path / "broken.json"
    document.write_text(json.dumps(broken), encoding="utf-8")
    report = validate(check_jsonschema, schema, document)
    paths = {error["path"] for error in report["errors"]}
    assert report["status"] == "fail"
    assert "$.refresh" in paths
    assert any(path.startswith("$.panels[1]") for path in paths), paths


# --- structure ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FILES)
def test_data_source_is_always_the_variable(name: str) -> None:
    dashboard = load(name)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    refs = [(path, node) for path, node in walk(dashboard) if path.endswith(".datasource")]
    assert refs
    for path, ref in refs:
        if path == "$.annotations.list[0].datasource":  # Grafana's built-in annotations
            assert ref == {"type": "grafana", "uid": "-- Grafana --"}
            continue
        assert ref == {"type": "prometheus", "uid": "${datasource}"}, path


@pytest.mark.parametrize("name", FILES)
def test_panels_have_unique_ids_and_fit_the_grid(name: str) -> None:
    panels = list(all_panels(load(name)))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], int] = {}
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


@pytest.mark.parametrize("name", FILES)
def test_every_query_has_a_unique_ref_id(name: str) -> None:
    for panel in all_panels(load(name)):
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert all(refs) and len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("name", FILES)
def test_queries_only_read_known_metrics(name: str) -> None:
    known = EXPORTER_METRICS | PROMETHEUS_METRICS | recorded_names()
    dashboard = load(name)
    used: set[str] = set()
    for expr in expressions(dashboard):
        used |= metric_names(expr)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            used |= set(re.findall(r"label_values\((\w+)", variable["query"]))
    assert used, name
    assert used <= known, f"unknown metrics: {used - known}"


@pytest.mark.parametrize("name", FILES)
def test_queries_are_valid_promql(name: str, promtool: str, tmp_path: Path) -> None:
    """Every expression, with its variables filled in, passes Prometheus' own parser."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": substitute(expr)} for i, expr in enumerate(expressions(load(name)))
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", FILES)
def test_values_have_units(name: str) -> None:
    """Durations in seconds, ratios as percent, frequencies per day."""
    expected = [
        (r"dora_(lead_time|time_to_restore)_median_seconds|time\(\) - ", "s"),
        (r"dora_(change_failure|rework)_ratio", "percentunit"),
        (r"dora_deployment_frequency_per_day", "suffix:/day"),
        (r"dora_last_deployment_timestamp_seconds", "dateTimeFromNow"),
    ]
    for panel in all_panels(load(name)):
        if panel["type"] not in ("timeseries", "stat"):
            continue
        first = panel["targets"][0]["expr"]
        unit = panel["fieldConfig"]["defaults"].get("unit")
        for pattern, want in expected:
            if re.search(pattern, first):
                assert unit == want, f"{panel['title']}: unit {unit!r}, expected {want!r}"
                break


def test_docs_describe_every_dashboard() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    for name in FILES:
        assert name in doc
        assert load(name)["title"] in doc


# --- DORA overview ------------------------------------------------------------------------------


def test_overview_variables() -> None:
    variables = {v["name"]: v for v in load("dora-overview.json")["templating"]["list"]}
    assert set(variables) == {"datasource", "environment", "service", "window"}
    assert variables["environment"]["current"]["value"] == "prod"
    assert variables["service"]["multi"] and variables["service"]["includeAll"]
    assert variables["window"]["current"]["value"] == "30d"


@pytest.mark.parametrize("metric", LEVEL_METRICS)
def test_overview_key_stat_is_coloured_by_its_performance_level(metric: str) -> None:
    stats = [p for p in all_panels(load("dora-overview.json")) if p["type"] == "stat"]
    [panel] = [p for p in stats if any(f'metric="{metric}"' in t["expr"] for t in p["targets"])]
    level = next(t for t in panel["targets"] if "dora_performance_level" in t["expr"])
    value = next(t for t in panel["targets"] if "dora_performance_level" not in t["expr"])
    for target in (level, value):
        assert 'environment="$environment"' in target["expr"] and 'window="$window"' in target["expr"]
        assert 'service=~"$service"' in target["expr"]
    assert panel["options"]["colorMode"] == "background"
    [override] = [
        o
        for o in panel["fieldConfig"]["overrides"]
        if o["matcher"] == {"id": "byFrameRefID", "options": level["refId"]}
    ]
    props = {p["id"]: p["value"] for p in override["properties"]}
    mapping = props["mappings"][0]["options"]
    assert {k: v["text"] for k, v in mapping.items()} == {"4": "Elite", "3": "High", "2": "Medium", "1": "Low"}
    assert mapping["4"]["color"] != mapping["1"]["color"]
    assert props["color"] == {"mode": "thresholds"}


def test_overview_has_trends_and_a_service_table() -> None:
    panels = list(all_panels(load("dora-overview.json")))
    trends = [p for p in panels if p["type"] == "timeseries"]
    for metric in (
        "dora_deployment_frequency_per_day",
        "dora_lead_time_median_seconds",
        "dora_change_failure_ratio",
        "dora_time_to_restore_median_seconds",
    ):
        assert any(metric in t["expr"] for p in trends for t in p["targets"]), metric
    [service_table] = [p for p in panels if p["type"] == "table"]
    exprs = [t["expr"] for t in service_table["targets"]]
    assert all(
        "by (service)" in e and t["format"] == "table" for e, t in zip(exprs, service_table["targets"], strict=True)
    )
    for metric in LEVEL_METRICS:
        assert any(f'metric="{metric}"' in e for e in exprs), metric


# --- service drill-down -------------------------------------------------------------------------


def test_service_drilldown_panels() -> None:
    dashboard = load("dora-service.json")
    panels = list(all_panels(dashboard))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "service", "environment", "window"} <= variables

    [hm] = [p for p in panels if p["type"] == "heatmap"]
    assert "dora_lead_time_seconds_bucket" in hm["targets"][0]["expr"]
    assert hm["targets"][0]["format"] == "heatmap"
    assert hm["options"]["calculate"] is False
    assert hm["options"]["yAxis"]["unit"] == "s"

    deploys = [p for p in panels if any("increase(dora_deployments_total" in t["expr"] for t in p.get("targets", []))]
    assert deploys and deploys[0]["fieldConfig"]["defaults"]["custom"]["drawStyle"] == "bars"

    failures = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    assert "dora_deployment_failures_total" in failures
    assert "dora_time_to_restore_seconds_count" in failures

    for metric in ("dora_sync_failing", "dora_degraded", "dora_failure_open"):
        assert any(p["type"] == "stat" and metric in p["targets"][0]["expr"] for p in panels), metric

    [failed_syncs] = [a for a in dashboard["annotations"]["list"] if "dora_sync_failing" in a.get("expr", "")]
    assert failed_syncs["enable"] and failed_syncs["datasource"]["uid"] == "${datasource}"


# --- exporter health ----------------------------------------------------------------------------


def test_exporter_health_covers_every_self_metric() -> None:
    exprs = " ".join(expressions(load("dora-exporter.json")))
    for metric in sorted(m for m in EXPORTER_METRICS if m.startswith("dora_exporter_")):
        assert metric in exprs, metric
    assert 'up{job=~"$job"' in exprs
    assert "scrape_duration_seconds{" in exprs


# --- the overview's arithmetic, evaluated by Prometheus -----------------------------------------


def test_overview_key_queries_compute_the_documented_aggregates(promtool: str, tmp_path: Path) -> None:
    """Two production services: the stats show the sum, the weighted ratio, the slowest median and the lowest level."""
    stats = [p for p in all_panels(load("dora-overview.json")) if p["type"] == "stat"]

    def stat_queries(metric: str) -> tuple[str, str]:
        [panel] = [p for p in stats if any(f'metric="{metric}"' in t["expr"] for t in p["targets"])]
        level = next(t["expr"] for t in panel["targets"] if "dora_performance_level" in t["expr"])
        value = next(t["expr"] for t in panel["targets"] if "dora_performance_level" not in t["expr"])
        return value, level

    def series(name: str, service: str, value: float, **labels: str) -> dict[str, str]:
        all_labels = {"service": service, "environment": "prod", "window": "30d", **labels}
        text = ",".join(f'{k}="{v}"' for k, v in all_labels.items())
        return {"series": f"{name}{{{text}}}", "values": f"{value}x10"}

    inputs = [
        series("dora_deployment_frequency_per_day", "checkout", 0.2),
        series("dora_deployment_frequency_per_day", "cart", 0.8),
        series("dora_deployment_frequency_per_day", "search", 1.0, environment="staging"),
        series("dora_deployment_frequency_per_day", "checkout", 5.0, window="7d"),
        series("dora_change_failure_ratio", "checkout", 0.5),
        series("dora_change_failure_ratio", "cart", 0.0),
        series("dora_lead_time_median_seconds", "checkout", 7200),
        series("dora_lead_time_median_seconds", "cart", 600),
        series("dora_time_to_restore_median_seconds", "checkout", 1800),
        series("dora_performance_level", "checkout", 4, metric="change_failure_rate"),
        series("dora_performance_level", "cart", 2, metric="change_failure_rate"),
        series("dora_performance_level", "checkout", 1, metric="change_failure_rate", window="7d"),
    ]

    def all_services(expr: str) -> str:
        return substitute(expr.replace('service=~"$service"', 'service=~".+"'))

    checks = [
        (stat_queries("deployment_frequency")[0], 1.0),  # 0.2 + 0.8; staging and 7d left out
        (stat_queries("change_failure_rate")[0], 0.1),  # (0.5 * 0.2 + 0 * 0.8) / (0.2 + 0.8)
        (stat_queries("lead_time")[0], 7200),  # the slowest service
        (stat_queries("time_to_restore")[0], 1800),  # cart has no restore in the window
        (stat_queries("change_failure_rate")[1], 2),  # the lowest level
    ]
    test = {
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {"expr": all_services(expr), "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": value}]}
                    for expr, value in checks
                ],
            }
        ],
    }
    path = tmp_path / "overview.test.yaml"
    path.write_text(yaml.safe_dump(test), encoding="utf-8")
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
