# SPDX-License-Identifier: Apache-2.0
"""Every request is bounded in file descriptors: 1,000 requests to ``/api/deployments`` and 1,000
Argo CD notifications leave an in-process daemon holding what it held before (issue 13: each one
kept a store connection, two descriptors, until the daemon stopped)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from exporter.store.pool import READERS
from tests.support.argocd import WEBHOOK_TOKEN, RunningDaemon, write_config
from tests.support.resources import FD_SLACK, open_fds

pytestmark = pytest.mark.slow

REQUESTS = 1000


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("resources")
    d = RunningDaemon(write_config(tmp, tmp / "no-such-kubeconfig", ["argocd"], backoff=["1s"]))
    yield d
    d.stop()


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        resp.read()
        return int(resp.status)


def _notify(url: str, n: int) -> int:
    body = json.dumps(
        {
            "trigger": "on-sync-succeeded",
            "app": "shop-api-prod",
            "namespace": "argocd",
            "uid": f"4f1c2d7e-0000-4000-8000-{n:012d}",
            "revision": "1f0c4e2b9a7d3c5e6f8091a2b3c4d5e6f7a8b9c0",
            "phase": "Succeeded",
            "startedAt": "2026-11-26T05:00:00Z",
            "finishedAt": "2026-11-26T05:00:40Z",
            "health": "Healthy",
            "message": "ok",
        }
    ).encode()
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()
        return int(resp.status)


def test_api_requests_hold_no_descriptor(daemon: RunningDaemon) -> None:
    url = daemon.metrics_url.replace("/metrics", "/api/deployments")
    for _ in range(10):
        assert _get(url) == 200
    before = open_fds()
    statuses = {_get(url) for _ in range(REQUESTS)}
    after = open_fds()
    assert statuses == {200}
    assert after - before <= FD_SLACK, f"{after - before} descriptors more after {REQUESTS} API requests"
    assert daemon.daemon.store.readers.opened <= READERS


def test_argocd_notifications_hold_no_descriptor(daemon: RunningDaemon) -> None:
    for n in range(10):
        assert _notify(daemon.webhook_url, n) == 202
    before = open_fds()
    statuses = {_notify(daemon.webhook_url, n) for n in range(10, 10 + REQUESTS)}
    after = open_fds()
    assert statuses == {202}
    assert after - before <= FD_SLACK, f"{after - before} descriptors more after {REQUESTS} notifications"
    assert daemon.daemon.store.readers.opened <= READERS
