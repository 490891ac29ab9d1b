"""Webhook bodies and receivers: Argo CD notifications and GitHub's signed deliveries.

**Argo CD.** What argocd-notifications sends with the template in
``examples/argocd-notifications-cm.yaml``. A notification is a hint, not a fact: delivery is best
effort (no retries on our side of the contract, lost on restarts of the notifications controller),
so the watch stays the source of truth. A body is accepted when it is a JSON object carrying the
documented fields; its natural key (app uid, trigger, operation start, health, revision) makes a
replay a duplicate.

**GitHub.** ``X-Hub-Signature-256`` is checked as HMAC-SHA256 of the raw body with the shared
secret, in constant time, before the body is parsed. A delivery id (``X-GitHub-Delivery``) is
accepted once. The HTTP thread only verifies and enqueues; a worker thread runs the handler, so
GitHub gets its 2xx at once. Polling stays the source of truth (GitHub does not redeliver), so a
webhook only makes the matching poll run early.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

REQUIRED = ("trigger", "app", "namespace", "uid")
OPTIONAL = ("revision", "phase", "startedAt", "finishedAt", "health", "message")
MAX_FIELD = 2000


@dataclass(frozen=True, slots=True)
class Notification:
    trigger: str
    app: str
    namespace: str
    uid: str
    key: str
    raw: str
    started_at: str | None = None


def parse_argocd_notification(body: bytes) -> Notification:
    """Validate one body; ``ValueError`` (with a short reason) for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc.__class__.__name__}") from exc
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    for name in REQUIRED:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"missing string field {name!r}")
    for name in (*REQUIRED, *OPTIONAL):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD):
            raise ValueError(f"field {name!r} must be a string of at most {MAX_FIELD} characters")
    identity = [data.get(n) or "" for n in ("uid", "trigger", "startedAt", "finishedAt", "phase", "health", "revision")]
    key = hashlib.sha256("\x00".join(identity).encode()).hexdigest()[:32]
    clean = {n: data[n] for n in (*REQUIRED, *OPTIONAL) if data.get(n) is not None}
    return Notification(
        trigger=data["trigger"],
        app=data["app"],
        namespace=data["namespace"],
        uid=data["uid"],
        key=key,
        raw=json.dumps(clean),
        started_at=data.get("startedAt") or None,
    )


GITHUB_EVENTS = frozenset({"push", "issues", "pull_request", "deployment_status"})
MAX_BODY = 25 * 1024 * 1024  # GitHub caps payloads at 25 MB
HeaderGetter = Callable[[str], str | None]


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """``header`` is ``sha256=<hex>`` over ``body``; compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


class GitHubWebhook:
    """``handle`` runs on the HTTP thread; ``on_event(event, payload)`` on the worker thread."""

    def __init__(
        self,
        secret: str,
        on_event: Callable[[str, dict[str, Any]], None],
        remember: int = 10000,
        queue_size: int = 1000,
    ) -> None:
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
        if not valid_signature(self._secret, body, header("X-Hub-Signature-256")):
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
        if event not in GITHUB_EVENTS:
            self._remember_delivery(delivery)
            return 202, "ignored event"
        try:
            payload = json.loads(body)
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
