# SPDX-License-Identifier: Apache-2.0
"""POST /webhooks/argocd on its own listener: bearer token, bounded body, JSON shape, replays.

The daemon runs for real (its watch pointed at a kubeconfig that does not exist, so the source is
down and the webhook must work regardless); requests go over loopback HTTP.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from exporter.serve import WEBHOOK_MAX_BODY
from exporter.sources.argocd import parse_argocd_notification
from tests.support.argocd import WEBHOOK_TOKEN, RunningDaemon, write_config
from tests.support.paths import PROJECT_ROOT
from tests.support.waiting import wait_until

EXAMPLES = PROJECT_ROOT / "examples"
BODY = {
    "trigger": "on-sync-failed",
    "app": "shop-api-prod",
    "namespace": "argocd",
    "uid": "4f1c2d7e-0000-4000-8000-000000000001",
    "revision": "1f0c4e2b9a7d3c5e6f8091a2b3c4d5e6f7a8b9c0",
    "phase": "Failed",
    "startedAt": "2026-11-26T05:00:00Z",
    "finishedAt": "2026-11-26T05:00:40Z",
    "health": "Healthy",
    "message": 'one or more objects failed to apply: "quoted"\nand a newline',
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    tmp = tmp_path_factory.mktemp("webhook")
    d = RunningDaemon(write_config(tmp, tmp / "no-such-kubeconfig", ["argocd"], backoff=["1s"]))
    yield d
    d.stop()


def post(url: str, body: bytes, token: str | None = WEBHOOK_TOKEN, length: int | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    if length is not None:
        req.add_header("Content-Length", str(length))
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        with exc:  # an error response holds its connection until closed
            return exc.code, exc.read().decode().strip()


def outcome_count(d: RunningDaemon, outcome: str) -> float:
    return d.value("dora_exporter_webhook_events_total", source="argocd", outcome=outcome) or 0.0


def test_good_token_records_and_a_replay_is_a_duplicate(daemon: RunningDaemon) -> None:
    body = json.dumps(BODY).encode()
    assert post(daemon.webhook_url, body) == (202, "recorded")
    assert post(daemon.webhook_url, body) == (202, "duplicate")
    assert outcome_count(daemon, "recorded") == 1
    assert outcome_count(daemon, "duplicate") == 1
    assert daemon.daemon.store.conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0] == 1


@pytest.mark.parametrize("token", [None, "wrong-token", WEBHOOK_TOKEN + "x", ""])
def test_missing_or_wrong_token_is_401(daemon: RunningDaemon, token: str | None) -> None:
    status, _ = post(daemon.webhook_url, json.dumps({**BODY, "uid": "other"}).encode(), token=token)
    assert status == 401


def test_oversized_body_is_413_without_reading_it(daemon: RunningDaemon) -> None:
    status, _ = post(daemon.webhook_url, b"{" + b" " * WEBHOOK_MAX_BODY + b"}")
    assert status == 413


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", json.dumps({**BODY, "uid": 7}).encode(), json.dumps({"app": "x"}).encode(), b"\xff\xfe"],
)
def test_malformed_body_is_400(daemon: RunningDaemon, body: bytes) -> None:
    before = outcome_count(daemon, "malformed")
    status, _ = post(daemon.webhook_url, body)
    assert status == 400
    assert outcome_count(daemon, "malformed") == before + 1


def test_webhooks_live_only_on_their_own_listener(daemon: RunningDaemon) -> None:
    metrics_base = daemon.metrics_url.rsplit("/", 1)[0]
    status, _ = post(metrics_base + "/webhooks/argocd", json.dumps(BODY).encode())
    assert status >= 400
    hook_base = daemon.webhook_url.rsplit("/webhooks", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(hook_base + "/metrics", timeout=5)
    err.value.close()
    assert err.value.code == 404


def test_nothing_blocks_or_crashes_the_daemon(daemon: RunningDaemon) -> None:
    # A client that announces a body and never sends it only holds its own thread.
    import socket

    _host, port = daemon.cfg.webhook_listen or ("", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            f"POST /webhooks/argocd HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {WEBHOOK_TOKEN}\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        assert post(daemon.webhook_url, json.dumps({**BODY, "uid": "while-stalled"}).encode())[0] == 202
        wait_until(lambda: daemon.value("dora_exporter_source_up", source="argocd") == 0, 10)
    assert daemon.thread.is_alive()


def test_the_example_template_renders_the_documented_fields() -> None:
    cm = yaml.safe_load((EXAMPLES / "argocd-notifications-cm.yaml").read_text())
    templates = {k: v for k, v in cm["data"].items() if k.startswith("template.")}
    assert templates
    for name, text in templates.items():
        webhook = yaml.safe_load(text)["webhook"]["dora-exporter"]
        assert webhook["method"] == "POST" and webhook["path"] == "/webhooks/argocd"
        body = webhook["body"].strip()
        assert body.startswith("{{ toJson (dict ") and body.endswith(") }}"), name
        keys = set(re.findall(r'"(\w+)" (?:\.|\(|")', body))
        assert {"trigger", "app", "namespace", "uid"} <= keys, name
    # What the template produces (a JSON object with string fields) is what the receiver accepts.
    assert parse_argocd_notification(json.dumps(BODY).encode()).app == "shop-api-prod"
    assert "Bearer $dora-webhook-token" in cm["data"]["service.webhook.dora-exporter"]


def test_an_operation_the_watch_already_saw_is_known(daemon: RunningDaemon) -> None:
    import yaml as _yaml

    from exporter.sources.argocd.apps import parse_app
    from tests.support.argocd import APPLICATION

    obj = _yaml.safe_load(APPLICATION.read_text())
    obj["metadata"].update(name="shop-api-prod", uid="seen-by-watch")
    app = parse_app(obj)
    assert app is not None and daemon.daemon.argo is not None
    daemon.daemon.argo.apply(app)  # what the watch would have delivered
    note = {**BODY, "uid": "seen-by-watch", "trigger": "on-sync-succeeded", "phase": "Succeeded",
            "startedAt": obj["status"]["operationState"]["startedAt"]}  # fmt: skip
    assert post(daemon.webhook_url, json.dumps(note).encode()) == (202, "known")
