# SPDX-License-Identifier: Apache-2.0
"""The Argo CD watch against a scripted fake API server on loopback, for faults a real one cannot
be made to produce on demand: a half-open connection, an ERROR 410 inside a 200 stream, a garbage
line, 403, 404 (CRD not installed) and 429 with Retry-After.

Only the network is fake: the real ``Watcher`` and the real kubernetes client talk HTTP to it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from kubernetes import client

from exporter.errors import SourceError
from exporter.sources.argocd.apps import App
from exporter.sources.argocd.watch import Watcher, WatchSettings
from tests.support.argocd import APPLICATION
from tests.support.waiting import wait_until

NS = "argocd"


def app_object(name: str, rv: str) -> dict[str, Any]:
    """Our fixture Application as the API server would send it: named, with a uid and a resourceVersion."""
    obj: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    obj["metadata"].update(name=name, namespace=NS, uid=f"uid-{name}", resourceVersion=rv)
    return obj


@dataclass
class Step:
    """One scripted response: a JSON body with a status, watch lines, or headers then silence."""

    status: int = 200
    body: Any = None
    lines: Sequence[bytes] = ()
    hang: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class FakeApi:
    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.requests: list[tuple[float, str, dict[str, list[str]]]] = []
        self.release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append((time.monotonic(), url.path, parse_qs(url.query)))
                step = fake.steps.pop(0) if fake.steps else Step(hang=True)
                self.send_response(step.status)
                self.send_header("Content-Type", "application/json")
                for k, v in step.headers.items():
                    self.send_header(k, v)
                if step.hang or step.lines:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    for line in step.lines:
                        chunk = line + b"\n"
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                    if step.hang:
                        fake.release.wait(30)  # headers, then silence: a half-open connection
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = True
                    return
                body = json.dumps(step.body if step.body is not None else {}).encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Recorder:
    """A Listener that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def _add(self, kind: str, value: Any) -> None:
        with self.lock:
            self.events.append((kind, value))

    def kinds(self, kind: str) -> list[Any]:
        with self.lock:
            return [v for k, v in self.events if k == kind]

    def listed(self, scope: str, apps: Sequence[App]) -> None:
        self._add("listed", [a.name for a in apps])

    def changed(self, scope: str, app: App) -> None:
        self._add("changed", app.name)

    def deleted(self, scope: str, app: App) -> None:
        self._add("deleted", app.name)

    def healthy(self, scope: str) -> None:
        self._add("healthy", scope)

    def failed(self, scope: str, error: SourceError) -> None:
        self._add("failed", error.kind)

    def reconnecting(self, scope: str, reason: str) -> None:
        self._add("reconnecting", reason)

    def relisting(self, scope: str, reason: str) -> None:
        self._add("relisting", reason)


def listing(rv: str, *names: str) -> Step:
    return Step(body={"kind": "ApplicationList", "metadata": {"resourceVersion": rv},
                      "items": [app_object(n, rv) for n in names]})  # fmt: skip


def event(kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode()


@pytest.fixture
def run_watch() -> Iterator[Any]:
    started: list[tuple[FakeApi, threading.Event, threading.Thread, client.ApiClient]] = []

    def start(steps: list[Step], namespace: str | None = NS, **settings: Any) -> tuple[FakeApi, Recorder]:
        fake = FakeApi(steps)
        cfg = client.Configuration(host=fake.url)
        cfg.retries = False
        api = client.ApiClient(cfg)
        rec = Recorder()
        s = WatchSettings(namespaces=(NS,), connect_timeout=1, read_timeout=1.0, watch_timeout=0.5,
                          backoff=(0.0,), jitter=0.0, **settings)  # fmt: skip
        stop = threading.Event()
        t = threading.Thread(target=Watcher(api, s, namespace, rec).run, args=(stop,), daemon=True)
        t.start()
        started.append((fake, stop, t, api))
        return fake, rec

    yield start
    for fake, stop, t, api in started:
        stop.set()
        fake.close()
        t.join(timeout=10)
        api.close()
        assert not t.is_alive(), "the watch did not stop"


def watch_rvs(fake: FakeApi) -> list[str | None]:
    return [q.get("resourceVersion", [None])[0] for _, path, q in fake.requests if "watch" in q]


def test_half_open_connection_is_recovered_by_the_read_timeout(run_watch: Any) -> None:
    steps = [
        listing("10", "a-prod"),
        Step(hang=True),  # headers, then nothing
        Step(lines=[event("MODIFIED", app_object("a-prod", "11"))], hang=True),
    ]
    fake, rec = run_watch(steps)
    wait_until(lambda: "a-prod" in rec.kinds("changed"), 10, message="event after the half-open stream")
    assert rec.kinds("reconnecting") and rec.kinds("reconnecting")[0].startswith("stream broke")
    assert watch_rvs(fake)[:2] == ["10", "10"]  # re-watched from where it was, no relist
    assert len(rec.kinds("listed")) == 1


def test_error_410_inside_a_200_stream_relists(run_watch: Any) -> None:
    gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
            "message": "too old resource version: 10 (20)"}  # fmt: skip
    steps = [listing("10", "a-prod"), Step(lines=[event("ERROR", gone)]), listing("21", "a-prod", "b-prod")]
    fake, rec = run_watch(steps)
    wait_until(lambda: len(rec.kinds("listed")) == 2, 10, message="relist")
    assert rec.kinds("relisting") == ["too old resource version: 10 (20)"]
    assert rec.kinds("listed")[1] == ["a-prod", "b-prod"]
    wait_until(lambda: len(watch_rvs(fake)) >= 2, 10)
    assert watch_rvs(fake)[1] == "21"


def test_410_as_http_status_relists(run_watch: Any) -> None:
    steps = [listing("10", "a-prod"), Step(status=410, body={"kind": "Status", "code": 410}), listing("30")]
    _fake, rec = run_watch(steps)
    wait_until(lambda: len(rec.kinds("listed")) == 2, 10, message="relist")
    assert rec.kinds("relisting") == ["410 Gone"] and not rec.kinds("failed")


def test_garbage_line_reconnects_from_the_last_good_version(run_watch: Any) -> None:
    steps = [
        listing("10"),
        Step(lines=[event("ADDED", app_object("a-prod", "11")), b"<html>proxy error</html>"]),
        Step(lines=[event("MODIFIED", app_object("a-prod", "12"))], hang=True),
    ]
    fake, rec = run_watch(steps)
    wait_until(lambda: rec.kinds("changed") == ["a-prod", "a-prod"], 10, message="both events")
    assert rec.kinds("reconnecting")[0].startswith("unreadable watch line")
    assert watch_rvs(fake)[:2] == ["10", "11"]
    assert len(rec.kinds("listed")) == 1


def test_bookmarks_move_the_resource_version(run_watch: Any) -> None:
    bookmark = {"kind": "Application", "apiVersion": "argoproj.io/v1alpha1", "metadata": {"resourceVersion": "15"}}
    steps = [listing("10"), Step(lines=[event("BOOKMARK", bookmark)]), Step(hang=True)]
    fake, _rec = run_watch(steps)
    wait_until(lambda: len(watch_rvs(fake)) >= 2, 10)
    assert watch_rvs(fake)[:2] == ["10", "15"]
    assert watch_rvs(fake)[0] and fake.requests[1][2]["allowWatchBookmarks"] == ["true"]


@pytest.mark.parametrize(("status", "kind"), [(403, "forbidden"), (404, "not_found")])
def test_forbidden_and_missing_crd_are_source_errors_then_recover(run_watch: Any, status: int, kind: str) -> None:
    steps = [Step(status=status, body={"kind": "Status", "code": status}), listing("5", "a-prod")]
    _fake, rec = run_watch(steps)
    wait_until(lambda: rec.kinds("listed") == [["a-prod"]], 10, message="recovered list")
    assert rec.kinds("failed") == [kind]


def test_429_waits_for_retry_after(run_watch: Any) -> None:
    steps = [Step(status=429, body={"kind": "Status", "code": 429}, headers={"Retry-After": "1"}), listing("5")]
    fake, rec = run_watch(steps)
    wait_until(lambda: len(rec.kinds("listed")) == 1, 10, message="list after 429")
    assert rec.kinds("failed") == ["throttled"]
    waited = fake.requests[1][0] - fake.requests[0][0]
    assert waited >= 0.95, f"retried after {waited:.2f}s, before Retry-After: 1"


def test_backoff_is_capped_and_jittered() -> None:
    s = WatchSettings(backoff=(1.0, 2.0, 4.0), jitter=0.25)
    for attempt in range(10):
        d = s.delay(attempt)
        base = (1.0, 2.0, 4.0)[min(attempt, 2)]
        assert base * 0.75 <= d <= base * 1.25
    assert WatchSettings(backoff=(0.0,), jitter=0.0).delay(5) == 0.0


def test_label_selector_and_all_namespaces(run_watch: Any) -> None:
    fake, rec = run_watch([listing("3", "a-prod"), Step(hang=True)], namespace=None, label_selector="team=shop")
    wait_until(lambda: len(fake.requests) >= 2, 10)
    paths = {path for _, path, _ in fake.requests}
    assert paths == {"/apis/argoproj.io/v1alpha1/applications"}
    assert all(q.get("labelSelector") == ["team=shop"] for _, _, q in fake.requests)
    assert rec.kinds("healthy") == ["*"]
