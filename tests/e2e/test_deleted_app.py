# SPDX-License-Identifier: Apache-2.0
"""End to end with real servers: deleting a failing Argo CD Application resolves its pages, and an
Argo CD-only install has no false DoraSourceDown (issue 20, items 2 and 3).

A daemon configured with the Argo CD source only (no GitOps repository) watches a real
kube-apiserver; a real Prometheus loads ``alerts/`` unmodified, scrapes it and delivers to a real
Alertmanager and a recorded webhook. Two Applications end a sync ``Failed``, written the way Argo
CD's controller writes ``operationState``; both page DoraSyncFailed, and DoraFailureNotRestored is
pending for both.

1. ``shop-api-prod`` is deleted while the daemon watches: DoraSyncFailed is resolved within
   ``RESOLVE_TIMEOUT`` and DoraFailureNotRestored stops being pending; the series stay, at 0.
2. The daemon stops, ``cart-prod`` is deleted, the daemon starts again on the same port and store:
   its first list lacks the app, so the same happens for ``cart``.

Throughout, no ``dora_exporter_source_up{source="gitops"}`` series exists and DoraSourceDown is never
pending for any source but ``argocd`` (which, configured, reads 0 for the seconds between a start and
its watch's first list: pending briefly at the restart, far from its ``for: 15m``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.test_prometheus import JOB, RULE_FILES, STARTUP_TIMEOUT, Received, Webhook
from tests.support.argocd import RunningDaemon, fixture_app, operation, write_config
from tests.support.argocd_objects import REV_A, REV_B, Apps, app_body
from tests.support.kube import KubeCluster, wait_until
from tests.support.kube_fixtures import kube_cluster  # noqa: F401
from tests.support.promstack import INSTALL_HINT, PromStack, missing_binaries

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
    # two pages (for: 1m each), a daemon restart and two resolves, on a real Prometheus: a few minutes
    pytest.mark.timeout(420),
]

PAGE_TIMEOUT = 60.0 + 40.0  # DoraSyncFailed's `for: 1m`, plus delivery
RESOLVE_TIMEOUT = 20.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.stop()


def _ours(webhook: Webhook, service: str, status: str) -> list[Received]:
    return [
        r
        for r in webhook.received()
        if r.alert["labels"].get("alertname") == "DoraSyncFailed"
        and r.alert["labels"].get("service") == service
        and r.alert.get("status") == status
    ]


def _fail(apps: Apps, name: str) -> None:
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    failed = operation(fixture_app("x", "y"), "Failed", t, REV_B, t + timedelta(seconds=30), 2, "objects failed")
    apps.status(name, operationState=failed)


def test_deleting_a_failing_app_resolves_its_pages(
    kube_cluster: KubeCluster,  # noqa: F811
    tmp_path: Path,
    webhook: Webhook,
) -> None:
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    kube_cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n")
    apps = Apps(kube_cluster, namespace)
    cfg_path = write_config(tmp_path, kube_cluster.kubeconfig, [namespace])
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    for name in ("shop-api-prod", "cart-prod"):
        apps.create(app_body(name, namespace, [(1, t0, REV_A)]))

    d = RunningDaemon(cfg_path)
    stack = PromStack.start(
        tmp_path / "stack",
        scrape_target=f"127.0.0.1:{d.cfg.listen[1]}",
        rule_files=[str(p) for p in RULE_FILES],
        webhook_url=webhook.url,
        job=JOB,
    )
    source_down: list[object] = []

    def watch_source_down() -> None:
        source_down.extend(stack.vector('ALERTS{alertname="DoraSourceDown", source!="argocd"}'))
        source_down.extend(stack.vector('dora_exporter_source_up{source="gitops"}'))

    try:
        wait_until(
            lambda: bool(stack.vector('dora_exporter_source_up{source="argocd"} == 1')),
            timeout=STARTUP_TIMEOUT,
            what="Prometheus to scrape the daemon with the Argo CD watch up",
            on_timeout=stack.logs,
        )
        for name in ("shop-api-prod", "cart-prod"):
            _fail(apps, name)
        for service in ("shop-api", "cart"):
            wait_until(
                lambda s=service: bool(_ours(webhook, s, "firing")),
                timeout=PAGE_TIMEOUT,
                what=f"DoraSyncFailed for {service} to page",
                on_timeout=stack.logs,
            )
            assert stack.vector(f'ALERTS{{alertname="DoraFailureNotRestored", service="{service}"}}')
        watch_source_down()

        # 1. Deleted while watched.
        deleted = time.monotonic()
        apps.delete("shop-api-prod")
        wait_until(
            lambda: bool(_ours(webhook, "shop-api", "resolved")),
            timeout=RESOLVE_TIMEOUT,
            what="DoraSyncFailed for shop-api to resolve after the deletion",
            on_timeout=stack.logs,
        )
        latency = _ours(webhook, "shop-api", "resolved")[0].at - deleted
        wait_until(
            lambda: not stack.vector('ALERTS{alertname="DoraFailureNotRestored", service="shop-api"}'),
            timeout=RESOLVE_TIMEOUT,
            what="DoraFailureNotRestored for shop-api to leave pending",
        )
        assert [s["value"][1] for s in stack.vector('dora_failure_open{service="shop-api"}')] == ["0"]
        assert [s["value"][1] for s in stack.vector('dora_sync_failing{service="shop-api"}')] == ["0"]
        assert _ours(webhook, "cart", "resolved") == []
        watch_source_down()

        # 2. Deleted while the daemon was stopped: the restart's list lacks it.
        d.stop()
        apps.delete("cart-prod")
        d = RunningDaemon(cfg_path)
        restarted = time.monotonic()
        wait_until(
            lambda: bool(_ours(webhook, "cart", "resolved")),
            timeout=RESOLVE_TIMEOUT,
            what="DoraSyncFailed for cart to resolve after the restart",
            on_timeout=stack.logs,
        )
        restart_latency = _ours(webhook, "cart", "resolved")[0].at - restarted
        wait_until(
            lambda: not stack.vector('ALERTS{alertname="DoraFailureNotRestored", service="cart"}'),
            timeout=RESOLVE_TIMEOUT,
            what="DoraFailureNotRestored for cart to leave pending",
        )
        assert [s["value"][1] for s in stack.vector('dora_failure_open{service="cart"}')] == ["0"]
        watch_source_down()
        assert source_down == [], f"an unconfigured source showed up: {source_down}"
        print(f"\nresolved {latency:.1f}s after a watched deletion, {restart_latency:.1f}s after the restart")
    finally:
        d.stop()
        stack.stop()
