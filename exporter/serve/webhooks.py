# SPDX-License-Identifier: Apache-2.0
"""The webhook listener's request handling and GitHub's delivery queue.

The listener is separate from ``/metrics`` so it can be exposed alone. It serves POST only and
authenticates before reading the body where it can: a bearer-token route (Argo CD notifications)
is checked against its configured token, a self-authenticating route (GitHub's HMAC signature
over the raw body) checks the body itself; a form-encoded GitHub delivery is decoded after that
check and its ``payload`` document gets the same nesting cap. A body is bounded in size (per route), in time (the
request deadline) and in memory over all connections (the listener's body budget, reserved from
``Content-Length`` before a byte is read and read as it arrives, never allocated up front), and its
JSON nesting is capped before any handler parses it.

**GitHub.** A delivery id (``X-GitHub-Delivery``) is accepted once. The HTTP thread only verifies
and enqueues; a worker thread runs the handler, so GitHub gets its 2xx at once. Polling stays the
source of truth (GitHub does not redeliver), so a webhook only makes the matching poll run early.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast
from urllib.parse import urlsplit

import structlog

from exporter.serve.handler import BoundedHandler
from exporter.serve.jsondepth import nested_deeper_than
from exporter.serve.limits import JSON_MAX_DEPTH, SIGNED_MAX_BODY, WEBHOOK_MAX_BODY
from exporter.serve.listener import Listener

if TYPE_CHECKING:
    from exporter.sources.argocd import Notification

__all__ = [
    "SIGNED_MAX_BODY",
    "WEBHOOK_MAX_BODY",
    "GitHubWebhook",
    "HeaderGetter",
    "PostRoute",
    "Webhook",
    "WebhookHandler",
    "WebhookRoutes",
    "parse_argocd_notification",
]

log = structlog.get_logger(__name__)

_CHUNK = 64 * 1024  # a body is read at most this much per read, so memory follows what arrived
HeaderGetter = Callable[[str], str | None]
# (raw body) -> (HTTP status, short text); called only after the bearer token matched
Webhook = Callable[[bytes], tuple[int, str]]
# A route that authenticates the request itself (GitHub's HMAC signature over the raw body):
# (header getter, raw body) -> (HTTP status, short text)
PostRoute = Callable[[HeaderGetter, bytes], tuple[int, str]]


def parse_argocd_notification(body: bytes) -> Notification:
    """``exporter.sources.argocd``'s parser, imported on first use: that package loads the
    Kubernetes client (~45 MB), which a daemon without Argo CD never needs."""
    from exporter.sources.argocd import parse_argocd_notification as parse

    return parse(body)


class WebhookRoutes(Protocol):
    """What the listener serves: bearer-token routes by path, and self-authenticating ones."""

    webhooks: dict[str, tuple[str | None, Webhook]]
    post_routes: dict[str, PostRoute]


class WebhookHandler(BoundedHandler):
    """POST-only; authentication before reading the body, the body bounded in size, time and memory."""

    app: WebhookRoutes
    allowed: ClassVar[tuple[str, ...]] = ("POST",)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.webhook_request", client=self.client_address[0], line=format % args)

    def known_path(self, path: str) -> bool:
        return path in self.app.webhooks or path in self.app.post_routes

    def _reply(self, status: int, text: str) -> None:
        self.send(status, (text + "\n").encode(), "text/plain", [("Connection", "close")])
        self.close_connection = True

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        route = self.app.post_routes.get(path)
        if route is not None:
            self._with_body(self.limits.signed_max_body, lambda body: route(self.headers.get, body))
            return
        entry = self.app.webhooks.get(path)
        if entry is None:
            self._reply(HTTPStatus.NOT_FOUND, "not found")
            return
        token, handler = entry
        if not self._authorized(token):
            log.warning("webhook.unauthorized", path=self.path, client=self.client_address[0])
            self._reply(HTTPStatus.UNAUTHORIZED, "unauthorized")
            return
        self._with_body(self.limits.webhook_max_body, handler)

    def _authorized(self, token: str | None) -> bool:
        """``Authorization: Bearer <token>``, compared in constant time; no token refuses all."""
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {token}" if token else None
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    def _with_body(self, limit: int, use: Callable[[bytes], tuple[int, str]]) -> None:
        """Answer with ``use(body)``; the body's bytes count against the listener's budget from
        before the first read until ``use`` returned."""
        length_raw = self.headers.get("Content-Length")
        if length_raw is None or not length_raw.isdigit():
            self._reply(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return
        length = int(length_raw)
        if length > limit:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
            return
        budget = cast(Listener, self.server).bodies
        if not budget.take(length):
            log.warning("webhook.body_budget_full", path=self.path, length=length, held=budget.in_use)
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, "busy; retry later")
            return
        try:
            body = self._read(length)
            if body is None:
                return
            depth = self.limits.json_max_depth
            if nested_deeper_than(body, depth):
                self._reply(HTTPStatus.BAD_REQUEST, f"JSON nested deeper than {depth} levels")
                return
            self._reply(*use(body))
        finally:
            budget.give_back(length)

    def _read(self, length: int) -> bytes | None:
        """The body as it arrives, within the request deadline; ``None`` once an error was answered."""
        buf = bytearray()
        try:
            while len(buf) < length:
                chunk = self.rfile.read1(min(_CHUNK, length - len(buf)))
                if not chunk:
                    break
                buf += chunk
        except TimeoutError:
            self._reply(HTTPStatus.REQUEST_TIMEOUT, "body not received in time")
            return None
        if len(buf) != length:
            self._reply(HTTPStatus.BAD_REQUEST, "truncated body")
            return None
        return bytes(buf)


class GitHubWebhook:
    """``handle`` runs on the HTTP thread; ``on_event(event, payload)`` on the worker thread."""

    def __init__(
        self,
        secret: str,
        on_event: Callable[[str, dict[str, Any]], None],
        remember: int = 10000,
        queue_size: int = 1000,
        json_max_depth: int = JSON_MAX_DEPTH,
    ) -> None:
        # imported here, not at module level: that package loads PyGithub, needed only with GitHub configured
        from exporter.sources.github import GITHUB_EVENTS, PayloadError, delivery_document, valid_signature

        self._events = GITHUB_EVENTS
        self._valid_signature = valid_signature
        self._document = delivery_document
        self._payload_error = PayloadError
        self._json_max_depth = json_max_depth
        self._secret = secret
        self.on_event = on_event
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self.processed = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="webhooks-github", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)

    def handle(self, header: HeaderGetter, body: bytes) -> tuple[int, str]:
        """Status and a short text answer for one delivery."""
        if not self._valid_signature(self._secret, body, header("X-Hub-Signature-256")):
            log.warning("webhook.github.bad_signature", present=header("X-Hub-Signature-256") is not None)
            return 401, "invalid or missing signature"
        delivery = header("X-GitHub-Delivery") or ""
        event = header("X-GitHub-Event") or ""
        if not delivery:
            return 400, "missing X-GitHub-Delivery"
        with self._lock:
            if delivery in self._seen:
                log.info("webhook.github.duplicate", delivery=delivery)
                return 200, "duplicate delivery"
        if event == "ping":
            self._remember_delivery(delivery)
            return 200, "pong"
        if event not in self._events:
            self._remember_delivery(delivery)
            return 202, "ignored event"
        try:  # a form-encoded hook (GitHub's default) carries the document in its payload field
            document = self._document(body, header("Content-Type"))
        except self._payload_error as exc:
            return 400, str(exc)
        if document is not body and nested_deeper_than(document, self._json_max_depth):
            return 400, f"JSON nested deeper than {self._json_max_depth} levels"
        try:
            payload = json.loads(document)
        except ValueError:
            return 400, "body is not JSON"
        if not isinstance(payload, dict):
            return 400, "body is not a JSON object"
        try:
            self._queue.put_nowait((event, payload))
        except queue.Full:
            log.warning("webhook.github.queue_full", delivery=delivery, github_event=event)
            return 503, "busy; polling will catch up"
        self._remember_delivery(delivery)
        return 202, "accepted"

    def _remember_delivery(self, delivery: str) -> None:
        with self._lock:
            self._seen[delivery] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event, payload = item
            try:
                self.on_event(event, payload)
            except Exception:  # one bad event must not end the worker; logged with its traceback
                log.exception("webhook.github.handler_failed", github_event=event)
            self.processed += 1
