# SPDX-License-Identifier: Apache-2.0
"""POST /webhooks/github: signatures over the raw body, replayed deliveries, async hand-off."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.config.loading import parse
from exporter.core import snapshot
from exporter.daemon.runtime import Daemon
from exporter.serve import GitHubWebhook, Health, HttpApp
from exporter.serve.api import Page
from exporter.sources.github import valid_signature
from tests.support.fakegithub import TOKEN, FakeGitHub
from tests.support.github_webhooks import SECRET, headers, post, sign
from tests.support.gitrepo import T0, GitRepo, manifest, values_yaml
from tests.support.waiting import wait_until

BODY = json.dumps({"action": "opened", "issue": {"number": 1, "labels": [{"name": "incident"}]}}).encode()


def test_the_signature_matches_githubs_documented_example() -> None:
    # the example from GitHub's "Validating webhook deliveries" page
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert valid_signature("It's a Secret to Everybody", b"Hello, World!", expected)
    assert not valid_signature("It's a Secret to Everybody", b"Hello, World?", expected)
    assert not valid_signature("It's a Secret to Everybody", b"Hello, World!", expected.replace("sha256=", "sha1="))


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    hook = GitHubWebhook(SECRET, lambda e, p: events.append((e, p)))
    hook.start()
    app = HttpApp(
        CollectorRegistry(),
        Health({}),
        lambda: snapshot.Snapshot(datetime.now(UTC)),
        lambda _: Page([], None),
        "prod",
        "30d",
    )
    app.post_routes["/webhooks/github"] = hook.handle
    host, port = app.serve_webhooks("127.0.0.1", 0)
    try:
        yield f"http://{host}:{port}", events
    finally:
        app.shutdown()
        hook.stop()


def test_valid_wrong_missing_tampered_and_replayed_deliveries(
    receiver: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    base, events = receiver
    assert post(base, BODY, headers("d-1", sign(BODY))) == (202, "accepted")
    wait_until(lambda: events, 5, message="the event reached the worker")
    assert events == [("issues", json.loads(BODY))]

    assert post(base, BODY, headers("d-2", sign(BODY, "not the secret")))[0] == 401
    assert post(base, BODY, headers("d-3", None))[0] == 401
    tampered = BODY.replace(b"opened", b"closed")
    assert post(base, tampered, headers("d-4", sign(BODY)))[0] == 401
    assert post(base, b"not json", headers("d-5", sign(b"not json")))[0] == 400  # parsed only once verified

    assert post(base, BODY, headers("d-1", sign(BODY))) == (200, "duplicate delivery")
    assert post(base, BODY, headers("d-6", sign(BODY))) == (202, "accepted")
    wait_until(lambda: len(events) == 2, 5, message="the second delivery")
    assert [e for e, _ in events] == ["issues", "issues"]  # d-1 once, d-6 once, nothing unverified


def test_the_webhook_listener_serves_nothing_else(receiver: tuple[str, list[tuple[str, dict[str, Any]]]]) -> None:
    base, _ = receiver
    for path in ("/metrics", "/api/deployments", "/"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(base + path, timeout=5)
        err.value.close()
        assert err.value.code == 404
    assert post(base, BODY, {**headers("p", sign(BODY), "ping")})[0] == 200


def test_an_issues_event_makes_the_daemon_poll_incidents_early(tmp_path: Path, fake: FakeGitHub) -> None:
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("deploy", T0, {manifest("shop"): values_yaml("v1")})
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "http": {"listen": "127.0.0.1:0", "webhook_listen": "127.0.0.1:0"},
        "gitops": [
            {
                "repo": gitops.url,
                "poll_interval": "1h",
                "manifests": [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}],
            }
        ],
        "services": [{"name": "shop"}],
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "poll_interval": "1h",
            "incidents": {"repos": ["acme/ops"], "services": [{"service": "shop", "label": "service:shop"}]},
        },
    }
    cfg = parse(raw, environ={"DORA_GITHUB_TOKEN": TOKEN, "DORA_GITHUB_WEBHOOK_SECRET": SECRET}, base_dir=tmp_path)
    d = Daemon(cfg)
    runner = threading.Thread(target=d.run, kwargs={"install_signals": False})
    runner.start()
    try:
        wait_until(lambda: d.health.ready() and fake.hits("/issues"), 15, message="first incident poll")
        fake.repo("acme/ops").issue(3, "Shop down", ["incident", "service:shop"], T0 + 60)
        assert d.http is not None
        port = d.http._servers[1].server_address[1]
        body = json.dumps({"action": "opened", "issue": {"number": 3}}).encode()
        assert post(f"http://127.0.0.1:{port}", body, headers("d-9", sign(body)))[0] == 202
        wait_until(lambda: any(f.detail == "acme/ops#3" for f in d.store.failures()), 15, message="early poll")
    finally:
        d.stop.set()
        runner.join(20)
    assert not runner.is_alive()


def _form(document: bytes) -> bytes:
    """GitHub's default content type: the JSON document as the form field ``payload``."""
    return urllib.parse.urlencode({"payload": document.decode()}).encode()


def _form_headers(delivery: str, body: bytes, event: str = "issues") -> dict[str, str]:
    return headers(delivery, sign(body), event) | {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_form_encoded_delivery_is_verified_over_the_raw_body_then_decoded(
    receiver: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    # GitHub's "Creating webhooks": content type application/x-www-form-urlencoded (the default)
    # sends the JSON payload as the value of a form parameter called ``payload``
    base, events = receiver
    body = _form(BODY)
    assert post(base, body, _form_headers("f-1", body)) == (202, "accepted")
    wait_until(lambda: events, 5, message="the form-encoded event reached the worker")
    assert events == [("issues", json.loads(BODY))]

    # the signature covers the raw form body, not the decoded payload
    assert (
        post(base, body, headers("f-2", sign(BODY)) | {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    )
    no_payload = urllib.parse.urlencode({"other": "x"}).encode()
    status, text = post(base, no_payload, _form_headers("f-3", no_payload))
    assert status == 400
    assert "payload" in text
    not_json = _form(b"not json")
    assert post(base, not_json, _form_headers("f-4", not_json))[0] == 400


def test_a_form_encoded_payload_keeps_the_json_depth_cap(
    receiver: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    base, events = receiver
    deep = b'{"action": "opened", "x": ' + b"[" * 200 + b"]" * 200 + b"}"
    body = _form(deep)
    status, text = post(base, body, _form_headers("f-5", body))
    assert status == 400
    assert "nested deeper" in text
    assert events == []
