# SPDX-License-Identifier: Apache-2.0
"""End to end with real servers: an exporter restart in the middle of a failing sync does not
resolve and re-page DoraSyncFailed (issue 20, item 1).

The daemon runs in-process on the demo, scraped by a real Prometheus that loads ``alerts/`` and
delivers to a real Alertmanager and a recorded webhook (the stack of ``test_prometheus.py``). The
failing sync is written the way the Argo CD watch writes it: an ``argocd_apps`` row of the store with
``sync_failing`` set, then ``Daemon.argocd_observed``. A restarted daemon reads that row back on start
(``_load_argocd_live``), as a real pod does from its volume, so it serves the failure from its first
scrape.

1. The failure pages: DoraSyncFailed is delivered as firing after the rule's ``for:``.
2. The daemon stops (its HTTP server closes, the scrape target is down) for ``GAP_SECONDS``, then a
   new daemon starts on the same port from the same store. Throughout, and for longer than ``for:``
   after it, the alert stays firing in Prometheus, no ``resolved`` reaches the webhook and every
   ``firing`` notification carries the first one's ``startsAt`` (a re-sent alert keeps it; a re-page
   would start a new one).
3. The sync recovers (the row's ``sync_failing`` cleared): the resolution reaches the webhook within
   ``RESOLVE_TIMEOUT``, so the bridge does not hold a real recovery back.

The measured latencies are printed (``pytest -s``).
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from exporter import config
from exporter.daemon.runtime import STOP_BUDGET_SECONDS, Daemon
from exporter.demo.generate import generate, write_config
from exporter.model import PairKey
from exporter.store import ArgoApp
from tests.e2e.test_prometheus import DEMO_DAYS, JOB, RULE_FILES, STARTUP_TIMEOUT, Received, Webhook, seconds
from tests.support.kube import free_ports, wait_until
from tests.support.promstack import INSTALL_HINT, PromStack, missing_binaries

pytestmark = pytest.mark.slow

ALERT = "DoraSyncFailed"
PAIR = PairKey("payment-service", "prod")
APP_UID = "e2e-restart-payment-service-prod"
GAP_SECONDS = 15.0  # the scrape target is down this long (a quick pod replacement)
DELIVERY_SLACK = 30.0  # on top of the rule's `for:`
AFTER_RESTART_SLACK = 15.0  # watch this long beyond `for:` after the restart for a re-page
RESOLVE_TIMEOUT = 20.0


def _serves_metrics(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return b"dora_sync_failing" in response.read()
    except OSError:
        return False


class Exporter:
    """One daemon at a time on a fixed port and store; ``restart`` replaces it like a new pod."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.daemon: Daemon | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.daemon is not None
        return self.daemon.cfg.listen[1]

    def start(self, *, ingest: bool = False) -> Daemon:
        assert self.daemon is None, "already running"
        d = Daemon(config.load(self.config_path))
        if ingest:
            d.ingest_once()
        thread = threading.Thread(target=d.run, kwargs={"install_signals": False}, name="daemon", daemon=True)
        thread.start()
        self.daemon, self._thread = d, thread
        wait_until(
            lambda: _serves_metrics(f"http://127.0.0.1:{self.port}/metrics"),
            timeout=STARTUP_TIMEOUT,
            what="the daemon's /metrics",
        )
        return d

    def stop(self) -> None:
        if self.daemon is None:
            return
        assert self._thread is not None
        self.daemon.stop.set()
        self._thread.join(timeout=STOP_BUDGET_SECONDS + 5)
        assert not self._thread.is_alive(), "the daemon did not stop"
        self.daemon, self._thread = None, None

    def set_sync_failing(self, failing: bool) -> None:
        """What the Argo CD watch does on an observation: store the app's state, then republish."""
        d = self.daemon
        assert d is not None
        with d.store.transaction() as tx:
            app = ArgoApp(APP_UID, PAIR.service, PAIR.service, PAIR.environment, None, "Healthy", 0.0, failing, False)
            tx.upsert_argocd_app(app, "argocd")
        d.argocd_observed(False)
        assert [p.key for p in d.holder.get().pairs if p.sync_failing] == ([PAIR] if failing else [])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = missing_binaries()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    return tmp_path_factory.mktemp("e2e-restart")


@pytest.fixture(scope="module")
def exporter(workdir: Path) -> Iterator[Exporter]:
    demo = workdir / "demo"
    generate(demo, days=DEMO_DAYS, end=datetime.now(UTC) - timedelta(hours=1))
    (port,) = free_ports(1)
    e = Exporter(write_config(demo, f"127.0.0.1:{port}"))
    e.start(ingest=True)
    try:
        yield e
    finally:
        e.stop()


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def stack(workdir: Path, exporter: Exporter, webhook: Webhook) -> Iterator[PromStack]:
    s = PromStack.start(
        workdir / "stack",
        scrape_target=f"127.0.0.1:{exporter.port}",
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
        yield s
    finally:
        s.stop()


def _rule_for(alertname: str) -> float:
    rule = next(
        r
        for p in RULE_FILES
        for g in yaml.safe_load(p.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == alertname
    )
    return seconds(rule.get("for", "0s"))


def _ours(webhook: Webhook, status: str | None = None) -> list[Received]:
    return [
        r
        for r in webhook.received()
        if r.alert["labels"].get("alertname") == ALERT
        and r.alert["labels"].get("service") == PAIR.service
        and r.alert["labels"].get("environment") == PAIR.environment
        and (status is None or r.alert.get("status") == status)
    ]


def _describe(received: list[Received], since: float) -> str:
    return "\n".join(
        f"  +{r.at - since:6.1f}s {r.alert.get('status')} startsAt={r.alert.get('startsAt')}" for r in received
    )


# a page (for: 1m), a restart, 90 s of watching for a resolve or a re-page, then the recovery: ~170 s
@pytest.mark.timeout(420)
def test_a_restart_during_a_failing_sync_neither_resolves_nor_repages(
    stack: PromStack, exporter: Exporter, webhook: Webhook
) -> None:
    hold = _rule_for(ALERT)
    pair = f'service="{PAIR.service}", environment="{PAIR.environment}"'
    firing_query = f'ALERTS{{alertname="{ALERT}", alertstate="firing", {pair}}}'
    assert _ours(webhook) == []

    # 1. The failure pages.
    failed = time.monotonic()
    exporter.set_sync_failing(True)
    wait_until(
        lambda: bool(_ours(webhook, "firing")),
        timeout=hold + DELIVERY_SLACK,
        what=f"the webhook to receive {ALERT} for {PAIR}",
        on_timeout=lambda: f"received: {webhook.bodies}\n{stack.logs()}",
    )
    page = _ours(webhook, "firing")[0]
    starts_at = page.alert["startsAt"]
    page_latency = page.at - failed
    assert hold <= page_latency <= hold + DELIVERY_SLACK

    # 2. The exporter restarts: down for GAP_SECONDS, then a new daemon on the same port and store.
    stopped = time.monotonic()
    exporter.stop()
    wait_until(
        lambda: bool(stack.vector(f'up{{job="{JOB}"}} == 0')),
        timeout=STARTUP_TIMEOUT,
        what="Prometheus to see the exporter down",
        on_timeout=stack.logs,
    )
    states: list[tuple[float, bool]] = []  # (time, the alert firing in Prometheus)
    while time.monotonic() - stopped < GAP_SECONDS:
        states.append((time.monotonic(), bool(stack.vector(firing_query))))
        time.sleep(1)
    assert not stack.vector(f"dora_sync_failing{{{pair}}}"), "the series should be absent while the target is down"
    exporter.start()
    restarted = time.monotonic()
    wait_until(
        lambda: bool(stack.vector(f'up{{job="{JOB}"}} == 1')),
        timeout=STARTUP_TIMEOUT,
        what="Prometheus to scrape the restarted exporter",
        on_timeout=stack.logs,
    )
    gap = time.monotonic() - stopped
    # Long enough after the restart that a re-page (pending again for `for:`) would have been delivered.
    while time.monotonic() - restarted < hold + AFTER_RESTART_SLACK:
        states.append((time.monotonic(), bool(stack.vector(firing_query))))
        time.sleep(2)

    received = _ours(webhook)
    history = _describe(received, failed)
    assert _ours(webhook, "resolved") == [], f"{ALERT} was resolved by the restart:\n{history}"
    assert {r.alert["startsAt"] for r in _ours(webhook, "firing")} == {starts_at}, (
        f"{ALERT} paged again as a new alert after the restart:\n{history}"
    )
    not_firing = [round(t - stopped, 1) for t, firing in states if not firing]
    assert not_firing == [], f"{ALERT} was not firing in Prometheus at +{not_firing}s after the stop"

    # 3. A real recovery still resolves promptly.
    recovered = time.monotonic()
    exporter.set_sync_failing(False)
    wait_until(
        lambda: bool(_ours(webhook, "resolved")),
        timeout=RESOLVE_TIMEOUT,
        what=f"the webhook to receive the resolution of {ALERT} for {PAIR}",
        on_timeout=lambda: f"received:\n{_describe(_ours(webhook), failed)}\n{stack.logs()}",
    )
    resolved = _ours(webhook, "resolved")[0]
    assert resolved.alert["startsAt"] == starts_at
    resolve_latency = resolved.at - recovered
    print(
        f"\n{ALERT} for {PAIR.service}/{PAIR.environment}: paged {page_latency:.1f}s after the failure "
        f"(for: {hold:.0f}s); exporter down {gap:.1f}s, watched {time.monotonic() - stopped:.0f}s: "
        f"no resolve, no re-page ({len(_ours(webhook, 'firing'))} firing notification(s), one startsAt); "
        f"recovery -> resolution delivered {resolve_latency:.1f}s"
    )
    assert resolve_latency <= RESOLVE_TIMEOUT
