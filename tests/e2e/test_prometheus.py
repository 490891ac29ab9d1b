# SPDX-License-Identifier: Apache-2.0
"""End to end with real servers: the daemon on demo data, scraped by a real Prometheus that loads
``alerts/``, alerts delivered by a real Alertmanager to a webhook receiver on loopback.

- Every PromQL expression of the rules and the dashboards runs through Prometheus' HTTP API and must
  succeed; the dashboards' variables are resolved the way Grafana does (their ``label_values``
  queries run too), and the expressions that must have data on the demo must return some.
- A failed sync is injected through ``Daemon.set_live_state`` (what the Argo CD source will call):
  Alertmanager must deliver DoraSyncFailed with the pair's ``service`` and ``environment`` labels, and
  nothing else critical, and the resolution once the sync recovers. The latency from the injection
  to the delivered alert is printed (``pytest -s``); its floor is the rule's ``for:`` (1m).

Prometheus and Alertmanager come from Debian (``bash .ci/install-prometheus.sh``); the test fails,
it does not skip, when they are missing.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter import config
from exporter.daemon.runtime import STOP_BUDGET_SECONDS, Daemon
from exporter.demo.generate import SERVICES, generate, write_config
from exporter.model import PairKey
from tests.support.kube import free_ports, wait_until
from tests.support.paths import PROJECT_ROOT
from tests.support.promstack import INSTALL_HINT, PromStack, missing_binaries

pytestmark = pytest.mark.slow

ROOT = PROJECT_ROOT
RULE_FILES = sorted((ROOT / "alerts").glob("*.yaml"))
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
JOB = "dora-exporter"
DEMO_DAYS = 30
INJECTED = PairKey("payment-service", "prod")
STARTUP_TIMEOUT = 30.0
DELIVERY_SLACK = 30.0  # on top of the rule's `for:`
RESOLVE_TIMEOUT = 20.0

# Grafana's built-in variables, as Grafana would set them for these dashboards (1 s scrapes here;
# a target's own `interval` overrides $__interval, and $__range comes from the dashboard's time).
RATE_INTERVAL = "1m"
DEFAULT_INTERVAL = "5m"
# Range queries (panels and annotations) run over the last minute of the test's Prometheus.
RANGE_SECONDS = 60.0
RANGE_STEP = 5.0

# What may legitimately return nothing on the healthy demo, and why. Every other dashboard query,
# dashboard variable and recording rule must return data. Alert expressions are conditions and may
# be empty (on a healthy demo they mostly are).
MAY_BE_EMPTY: dict[str, str] = {
    r"dora_exporter_github_rate_limit_remaining": "the demo has no GitHub source",
    r"dora_exporter_changes_without_pull_request_total": "the demo has no GitHub source",
    r"dora_exporter_source_errors_total": "no source fails on the demo",
    r"dora_exporter_(watch_re|history_gaps|events_processed|webhook_events)": "the demo has no Argo CD source",
    r"^ALERTS\{": "nothing fires on the healthy demo",
    r"== 1$": "no sync fails on the healthy demo",
    r"changes\(dora_deployments_total": "no deployment happens while the test runs",
    r"dora_time_to_restore|metric=\"time_to_restore\"": (
        "restores inside a window depend on the demo's rollbacks, which vary with the weekday the test runs"
    ),
}
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
LABEL_VALUES = re.compile(r"label_values\((?:(?P<match>.+),\s*)?(?P<label>\w+)\)", re.DOTALL)
DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration: str) -> float:
    parts = DURATION.findall(duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a Prometheus duration: {duration!r}"
    return sum(int(n) * SECONDS[u] for n, u in parts)


def may_be_empty(expr: str) -> bool:
    return any(re.search(pattern, expr.strip()) for pattern in MAY_BE_EMPTY)


# -- the webhook receiver --------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() when the POST arrived
    alert: dict[str, Any]


class Webhook:
    """An Alertmanager webhook receiver on loopback that records every alert it is sent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.bodies: list[dict[str, Any]] = []
        webhook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with webhook._lock:
                    webhook.bodies.append(body)
                    webhook._received.extend(Received(at, alert) for alert in body.get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def first(self, alertname: str, pair: PairKey, status: str) -> Received | None:
        return next(
            (
                r
                for r in self.received()
                if r.alert.get("status") == status
                and r.alert["labels"].get("alertname") == alertname
                and r.alert["labels"].get("service") == pair.service
                and r.alert["labels"].get("environment") == pair.environment
            ),
            None,
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = missing_binaries()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    return tmp_path_factory.mktemp("e2e-prometheus")


@pytest.fixture(scope="module")
def daemon(workdir: Path) -> Iterator[Daemon]:
    """The daemon in-process on a small demo history ending an hour ago (so 1d/7d/30d have data)."""
    demo = workdir / "demo"
    generate(demo, days=DEMO_DAYS, end=datetime.now(UTC) - timedelta(hours=1))
    (port,) = free_ports(1)
    d = Daemon(config.load(write_config(demo, f"127.0.0.1:{port}")))
    d.ingest_once()
    thread = threading.Thread(target=d.run, kwargs={"install_signals": False}, name="daemon", daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: _serves_metrics(f"http://127.0.0.1:{port}/metrics"),
            timeout=STARTUP_TIMEOUT,
            what="the daemon's /metrics",
        )
        yield d
    finally:
        d.stop.set()
        thread.join(timeout=STOP_BUDGET_SECONDS + 5)
        assert not thread.is_alive(), "the daemon did not stop"


def _serves_metrics(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return b"dora_deployments_total" in response.read()
    except OSError:
        return False


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def stack(workdir: Path, daemon: Daemon, webhook: Webhook) -> Iterator[PromStack]:
    """Alertmanager, then Prometheus scraping the daemon and loading alerts/, ready once every rule
    group has evaluated on scraped data (with a few scrapes, so rate() and increase() have two points)."""
    _host, port = daemon.cfg.listen
    s = PromStack.start(
        workdir / "stack",
        scrape_target=f"127.0.0.1:{port}",
        rule_files=[str(p) for p in RULE_FILES],
        webhook_url=webhook.url,
        job=JOB,
    )
    try:
        wait_until(
            lambda: bool(s.vector(f'count_over_time(up{{job="{JOB}"}}[1m]) >= 3 and up{{job="{JOB}"}} == 1')),
            timeout=STARTUP_TIMEOUT,
            what="three successful scrapes of the daemon",
            on_timeout=s.logs,
        )
        before = _last_evaluations(s)
        wait_until(
            lambda: all(_last_evaluations(s)[g] != t for g, t in before.items()),
            timeout=STARTUP_TIMEOUT,
            what="every rule group to evaluate on scraped data",
            on_timeout=s.logs,
        )
        yield s
    finally:
        s.stop()


def _rule_groups(s: PromStack) -> list[dict[str, Any]]:
    result = s.api("rules")
    assert result["status"] == "success", result
    groups: list[dict[str, Any]] = result["data"]["groups"]
    return groups


def _last_evaluations(s: PromStack) -> dict[str, str]:
    return {f"{g['file']}:{g['name']}": g["lastEvaluation"] for g in _rule_groups(s)}


# -- the expressions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    where: str
    expr: str
    range: bool
    must_have_data: bool


def rule_exprs() -> list[Expr]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    where = f"{path.name}: record {rule['record']}"
                    out.append(Expr(where, rule["expr"], False, not may_be_empty(rule["expr"])))
                else:
                    out.append(Expr(f"{path.name}: alert {rule['alert']}", rule["expr"], False, False))
    return out


def substitute(text: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values.get(m[1] or m[2], m[0]), text)


def resolve_variables(s: PromStack, dashboard: dict[str, Any], name: str) -> dict[str, str]:
    """The dashboard's variables as Grafana would set them: each ``label_values`` query runs (and
    must return data); the saved value, "All" (its ``allValue``) or else the first value is used."""
    values: dict[str, str] = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        assert var["type"] == "query", f"{name}: variable {var['name']} of unhandled type {var['type']}"
        query = substitute(var["query"], values)
        m = LABEL_VALUES.fullmatch(query.strip())
        assert m, f"{name}: variable {var['name']}: not a label_values() query: {query}"
        result = s.label_values(m["label"], m["match"] or "{__name__=~'.+'}")
        assert result["status"] == "success", f"{name}: variable {var['name']}: {query}: {result}"
        options = result["data"]
        assert options, f"{name}: variable {var['name']} has no values on the demo: {query}"
        current = (var.get("current") or {}).get("value")
        if current == "$__all":
            values[var["name"]] = var["allValue"]
        elif current:
            assert current in options, f"{name}: variable {var['name']}'s saved value {current!r} not in {options}"
            values[var["name"]] = current
        else:
            values[var["name"]] = sorted(options)[0]
    return values


def _targets(panels: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels:
        for target in panel.get("targets", []):
            yield panel, target
        yield from _targets(panel.get("panels", []))  # collapsed rows


def dashboard_exprs(s: PromStack) -> list[Expr]:
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        variables = resolve_variables(s, dashboard, path.name)
        time_from = dashboard["time"]["from"]
        assert time_from.startswith("now-"), f"{path.name}: time.from {time_from!r}"
        builtins = {"__range": time_from.removeprefix("now-"), "__rate_interval": RATE_INTERVAL}
        for panel, target in _targets(dashboard["panels"]):
            if "expr" not in target:
                continue
            interval = target.get("interval") or panel.get("interval") or DEFAULT_INTERVAL
            expr = substitute(target["expr"], {**variables, **builtins, "__interval": interval})
            where = f"{path.name}: panel {panel['title']!r} target {target.get('refId')}"
            out.append(Expr(where, expr, not target.get("instant", False), not may_be_empty(expr)))
        for annotation in dashboard["annotations"]["list"]:
            if "expr" in annotation:
                expr = substitute(annotation["expr"], {**variables, **builtins, "__interval": DEFAULT_INTERVAL})
                out.append(Expr(f"{path.name}: annotation {annotation['name']!r}", expr, True, not may_be_empty(expr)))
    return out


def run(s: PromStack, e: Expr) -> str | None:
    """Run one expression; a problem described, or None."""
    unresolved = VARIABLE.search(e.expr)
    if unresolved:
        return f"{e.where}: unresolved variable {unresolved[0]} in {e.expr}"
    if e.range:
        end = time.time()
        result = s.query_range(e.expr, end - RANGE_SECONDS, end, RANGE_STEP)
    else:
        result = s.query(e.expr)
    if result.get("status") != "success":
        return f"{e.where}: {result.get('errorType')}: {result.get('error')}\n    {e.expr}"
    if e.must_have_data and not result["data"]["result"]:
        return f"{e.where}: no data on the demo\n    {e.expr}"
    return None


# -- the tests -------------------------------------------------------------------------------------


def test_every_promql_expression_runs_and_has_data_on_the_demo(stack: PromStack) -> None:
    # Prometheus loaded every rule file of alerts/ and evaluates every rule without error.
    groups = _rule_groups(stack)
    assert {Path(g["file"]).name for g in groups} == {p.name for p in RULE_FILES}
    broken = [f"{r['name']}: {r.get('lastError')}" for g in groups for r in g["rules"] if r["health"] != "ok"]
    assert not broken, "rules evaluated with errors:\n" + "\n".join(broken)

    exprs = rule_exprs() + dashboard_exprs(stack)
    problems = [p for p in (run(stack, e) for e in exprs) if p]
    assert not problems, f"{len(problems)} of {len(exprs)} expressions failed:\n" + "\n".join(problems)
    # The exceptions above stay honest: each one still excuses some expression.
    for pattern, why in MAY_BE_EMPTY.items():
        assert any(re.search(pattern, e.expr.strip()) for e in exprs), f"stale MAY_BE_EMPTY entry {pattern} ({why})"
    must = sum(e.must_have_data for e in exprs)
    print(f"\n{len(exprs)} PromQL expressions ran through Prometheus; {must} of them returned the data they must")


# about 65 s: the alert rule's `for:` runs in real time, then Alertmanager's delivery and resolve;
# the waits inside (start-up, delivery, resolve) must fire with their own messages before this does
@pytest.mark.timeout(300)
def test_failed_sync_is_delivered_as_dora_sync_failed(stack: PromStack, daemon: Daemon, webhook: Webhook) -> None:
    assert INJECTED.service in SERVICES
    rule = next(
        r
        for p in RULE_FILES
        for g in yaml.safe_load(p.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "DoraSyncFailed"
    )
    hold = seconds(rule.get("for", "0s"))

    # Quiet: on the healthy demo no critical alert is even pending, and none was delivered.
    assert stack.vector('ALERTS{severity="critical"}') == []
    assert [r.alert for r in webhook.received() if r.alert["labels"].get("severity") == "critical"] == []

    pair = f'service="{INJECTED.service}", environment="{INJECTED.environment}"'
    injected = time.monotonic()
    daemon.set_live_state(INJECTED.service, INJECTED.environment, sync_failing=True)
    snap = daemon.holder.get()
    assert [p.key for p in snap.pairs if p.sync_failing] == [INJECTED]

    wait_until(
        lambda: bool(stack.vector(f"dora_sync_failing{{{pair}}} == 1")),
        timeout=STARTUP_TIMEOUT,
        what="Prometheus to scrape dora_sync_failing == 1",
        on_timeout=stack.logs,
    )
    scraped = time.monotonic()
    wait_until(
        lambda: bool(stack.vector(f'ALERTS{{alertname="DoraSyncFailed", {pair}}}')),
        timeout=STARTUP_TIMEOUT,
        what="DoraSyncFailed to become pending",
        on_timeout=stack.logs,
    )
    pending = time.monotonic()
    wait_until(
        lambda: webhook.first("DoraSyncFailed", INJECTED, "firing") is not None,
        timeout=hold + DELIVERY_SLACK,
        what=f"the webhook to receive DoraSyncFailed for {INJECTED}",
        on_timeout=lambda: f"received: {webhook.bodies}\n{stack.logs()}",
    )
    delivered = webhook.first("DoraSyncFailed", INJECTED, "firing")
    assert delivered is not None
    latency = delivered.at - injected
    print(
        f"\nDoraSyncFailed for {INJECTED.service}/{INJECTED.environment}: injected -> scraped "
        f"{scraped - injected:.1f}s, -> pending {pending - injected:.1f}s, -> delivered to the webhook "
        f"{latency:.1f}s (rule for: {rule.get('for', '0s')})"
    )
    assert hold <= latency <= hold + DELIVERY_SLACK

    labels = delivered.alert["labels"]
    assert labels["service"] == INJECTED.service
    assert labels["environment"] == INJECTED.environment
    assert labels["severity"] == "critical"
    assert labels["job"] == JOB
    assert "exported_service" not in labels  # honor_labels kept the exporter's `service`
    assert delivered.alert["annotations"]["summary"] == (
        f"Argo CD sync of {INJECTED.service} in {INJECTED.environment} failed"
    )
    others = [
        r.alert["labels"]
        for r in webhook.received()
        if r.alert["labels"].get("severity") == "critical"
        and (r.alert["labels"]["alertname"], r.alert["labels"].get("service"), r.alert["labels"].get("environment"))
        != ("DoraSyncFailed", INJECTED.service, INJECTED.environment)
    ]
    assert others == [], "other critical alerts were delivered"

    # The sync recovers: the page resolves.
    recovered = time.monotonic()
    daemon.set_live_state(INJECTED.service, INJECTED.environment, sync_failing=False)
    wait_until(
        lambda: webhook.first("DoraSyncFailed", INJECTED, "resolved") is not None,
        timeout=RESOLVE_TIMEOUT,
        what=f"the webhook to receive the resolution of DoraSyncFailed for {INJECTED}",
        on_timeout=lambda: f"received: {webhook.bodies}\n{stack.logs()}",
    )
    resolved = webhook.first("DoraSyncFailed", INJECTED, "resolved")
    assert resolved is not None
    print(f"recovered -> resolution delivered {resolved.at - recovered:.1f}s")
