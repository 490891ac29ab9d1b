# SPDX-License-Identifier: Apache-2.0
"""The Prometheus rules in alerts/: valid, unit-tested with promtool, documented.

promtool comes from Debian's `prometheus` package (`bash .ci/install-prometheus.sh`). These tests
fail, they do not skip, when it is missing: CI installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.metric_names import EXPORTER_METRICS
from tests.support.paths import PROJECT_ROOT

REPO = PROJECT_ROOT
RULES = REPO / "alerts" / "dora-rules.yaml"
UNIT_TESTS = sorted((REPO / "alerts" / "tests").glob("*.yaml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
ALERTS_DOC = REPO / "docs" / "alerts.md"

THRESHOLD_GROUP = "dora-alert-thresholds"
SEVERITIES = {"critical", "warning", "info"}
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")

# The alerts the issue asks for, with their severity.
REQUIRED_ALERTS = {
    "DoraSyncFailed": "critical",
    "DoraDeploymentDegraded": "critical",
    "DoraFailureNotRestored": "warning",
    "DoraChangeFailureRateHigh": "warning",
    "DoraLeadTimeRegression": "warning",
    "DoraNoProductionDeployments": "info",
    "DoraExporterDown": "warning",
    "DoraSourceDown": "warning",
    "DoraSourceStale": "warning",
    "DoraGitHubRateLimitLow": "warning",
}

# The exporter's metric surface, plus Prometheus' `up`.
KNOWN_METRICS = EXPORTER_METRICS | {"up"}

METRIC_NAME = re.compile(r"\b(dora_[a-z0-9_]+|up)\b(?!\s*\()")
RECORDED_NAME = re.compile(r"\bdora:[a-z0-9_:]+")
DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _install_hint() -> str:
    return "promtool is not installed: run `bash .ci/install-prometheus.sh` (Debian package prometheus)"


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `1h30m`."""
    parts = DURATION_PART.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(int(n) * DURATION_SECONDS[u] for n, u in parts)


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = load_yaml(RULES)["groups"]
    return groups


def alert_rules() -> dict[str, dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["alert"] not in alerts, f"duplicate alert {rule['alert']}"
                alerts[rule["alert"]] = rule
    return alerts


ALERTS = alert_rules()


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub generates for the headings of a markdown text."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


@dataclass
class Coverage:
    firing: list[str] = field(default_factory=list)
    quiet: list[tuple[str, float]] = field(default_factory=list)


def unit_test_coverage() -> dict[str, Coverage]:
    coverage: dict[str, Coverage] = {}
    for path in UNIT_TESTS:
        for case in load_yaml(path)["tests"]:
            for check in case.get("alert_rule_test") or []:
                entry = coverage.setdefault(check["alertname"], Coverage())
                where = f"{path.name}: {case.get('name', '?')} @ {check['eval_time']}"
                if check.get("exp_alerts"):
                    entry.firing.append(where)
                else:
                    entry.quiet.append((where, parse_duration(check["eval_time"])))
    return coverage


def input_series_names() -> Iterator[tuple[str, str]]:
    for path in UNIT_TESTS:
        for case in load_yaml(path)["tests"]:
            for series in case.get("input_series") or []:
                yield path.name, series["series"].split("{", 1)[0].strip()


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(_install_hint())
    return path


def run_promtool(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


# --- promtool ------------------------------------------------------------------------------------


def test_promtool_check_rules_accepts_the_rule_file(promtool: str) -> None:
    result = run_promtool(promtool, "check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass(promtool: str) -> None:
    assert UNIT_TESTS, "no promtool unit tests in alerts/tests/"
    result = run_promtool(promtool, "test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_promtool_unit_tests_report_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The harness is live: a test expecting a sync alert from a healthy series fails."""
    bad = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": 'dora_sync_failing{service="a",environment="prod"}', "values": "0x10"}],
                "alert_rule_test": [
                    {
                        "eval_time": "10m",
                        "alertname": "DoraSyncFailed",
                        "exp_alerts": [{"exp_labels": {"severity": "critical", "service": "a", "environment": "prod"}}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "wrong.test.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    result = run_promtool(promtool, "test", "rules", path)
    assert result.returncode != 0
    assert "DoraSyncFailed" in result.stdout + result.stderr


def test_promtool_check_rules_rejects_bad_promql(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "bad-rules.yaml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "sum(up"}]}]}),
        encoding="utf-8",
    )
    assert run_promtool(promtool, "check", "rules", path).returncode != 0


# --- coverage of the unit tests ------------------------------------------------------------------


def test_unit_tests_only_name_alerts_that_exist() -> None:
    assert set(unit_test_coverage()) <= set(ALERTS)


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_alert_is_unit_tested_firing_and_not_firing(alertname: str) -> None:
    coverage = unit_test_coverage().get(alertname, Coverage())
    assert coverage.firing, f"{alertname}: no promtool case where it fires"
    assert coverage.quiet, f"{alertname}: no promtool case where it must not fire"
    # A "not firing" check before `for` has elapsed proves little: require one after it.
    hold = parse_duration(ALERTS[alertname]["for"])
    assert any(at >= hold for _, at in coverage.quiet), (
        f"{alertname}: every not-firing case is evaluated before `for` ({hold:.0f}s) elapsed: {coverage.quiet}"
    )


def test_unit_test_series_use_the_exporter_metric_names() -> None:
    unknown = {(file, name) for file, name in input_series_names() if name not in KNOWN_METRICS}
    assert not unknown, f"series that the exporter does not expose: {sorted(unknown)}"


# --- the rules themselves ------------------------------------------------------------------------


def test_the_required_alerts_exist_with_their_severity() -> None:
    actual = {name: ALERTS[name]["labels"]["severity"] for name in REQUIRED_ALERTS if name in ALERTS}
    assert actual == REQUIRED_ALERTS


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_alert_has_for_severity_and_annotations(alertname: str) -> None:
    rule = ALERTS[alertname]
    assert parse_duration(rule["for"]) > 0, f"{alertname}: `for` must be a positive duration"
    assert rule.get("labels", {}).get("severity") in SEVERITIES
    annotations = rule.get("annotations", {})
    for key in REQUIRED_ANNOTATIONS:
        assert str(annotations.get(key, "")).strip(), f"{alertname}: annotation {key} missing or empty"


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_runbook_url_points_at_a_section_of_the_runbooks(alertname: str) -> None:
    url = ALERTS[alertname]["annotations"]["runbook_url"]
    base, _, anchor = url.partition("#")
    assert base.startswith("https://") and base.endswith("/docs/runbooks.md"), url
    assert anchor == alertname.lower(), f"{alertname}: anchor should be #{alertname.lower()}"
    assert anchor in github_anchors(RUNBOOKS.read_text(encoding="utf-8")), (
        f"{alertname}: docs/runbooks.md has no heading for #{anchor}"
    )


def test_runbook_urls_share_one_base() -> None:
    bases = {rule["annotations"]["runbook_url"].partition("#")[0] for rule in ALERTS.values()}
    assert len(bases) == 1, f"runbook links should differ only in their anchor: {bases}"


def test_every_runbook_section_belongs_to_an_alert() -> None:
    sections = set(re.findall(r"^## (\w+)\s*$", RUNBOOKS.read_text(encoding="utf-8"), re.M))
    assert sections == set(ALERTS)


def test_rules_only_read_metrics_the_exporter_exposes() -> None:
    for group in rule_groups():
        for rule in group["rules"]:
            names = set(METRIC_NAME.findall(rule["expr"]))
            assert names <= KNOWN_METRICS, f"{rule.get('alert') or rule.get('record')}: {names - KNOWN_METRICS}"


def test_thresholds_are_recorded_once_in_the_threshold_group() -> None:
    recorded: dict[str, list[str]] = {}
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                recorded.setdefault(rule["record"], []).append(group["name"])
    for name, groups in recorded.items():
        assert groups and set(groups) == {THRESHOLD_GROUP}, f"{name} recorded outside {THRESHOLD_GROUP}"
        if name.startswith("dora:alert_threshold:"):
            assert len(groups) == 1, f"{name} must be a single series (it is matched with on())"
    used = {name for rule in ALERTS.values() for name in RECORDED_NAME.findall(rule["expr"])}
    assert used <= set(recorded), f"alerts read series nobody records: {used - set(recorded)}"
    assert set(recorded) <= used, f"recorded but unused: {set(recorded) - used}"


@pytest.mark.parametrize("alertname", sorted(ALERTS))
def test_alert_expressions_repeat_no_threshold_value(alertname: str) -> None:
    """Values live in the threshold group; an alert may only use 0, 1 and the 30 of its 30d window."""
    expr = ALERTS[alertname]["expr"]
    expr = re.sub(r'"[^"]*"', "", expr)  # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = RECORDED_NAME.sub("", expr)
    expr = METRIC_NAME.sub("", expr)
    numbers = {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", expr)}
    assert numbers <= {0.0, 1.0, 30.0}, f"{alertname}: literal threshold(s) {numbers} in the expression"


def test_no_alert_relies_on_counter_increases() -> None:
    """increase()/rate() would count the whole history again after a counter reset."""
    for name, rule in ALERTS.items():
        assert not re.search(r"\b(increase|rate|irate|delta|resets)\s*\(", rule["expr"]), name


def test_alerts_doc_names_every_alert_and_threshold() -> None:
    doc = ALERTS_DOC.read_text(encoding="utf-8")
    for name in ALERTS:
        assert name in doc, f"docs/alerts.md does not mention {name}"
    for group in rule_groups():
        for rule in group["rules"]:
            if "record" in rule:
                assert f"`{rule['record']}" in doc, f"docs/alerts.md does not document {rule['record']}"
    assert 'job="dora-exporter"' in doc, "docs/alerts.md must say which job name to edit"
