# SPDX-License-Identifier: Apache-2.0
"""HTTP servers and routing: ``/metrics``, ``/healthz``, ``/readyz``, ``/``, ``/api/...`` on the main
listener, the webhook routes on their own.

The standard library server is enough: every handler reads in-memory state or one indexed query,
and a threading server keeps a slow client from blocking Prometheus. Each listener is bounded by
``Limits`` (connections, deadlines, header and body sizes; see ``docs/limits.md``).
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar
from urllib.parse import SplitResult, urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter.core.snapshot import Snapshot
from exporter.serve import api
from exporter.serve.api import Explain
from exporter.serve.auth import BasicAuth
from exporter.serve.exposition import GZIP_LEVEL, Encoder
from exporter.serve.handler import BoundedHandler
from exporter.serve.health import Health
from exporter.serve.landing import landing_page
from exporter.serve.limits import Limits
from exporter.serve.listener import Listener
from exporter.serve.tls import TlsContext
from exporter.serve.webhooks import PostRoute, Webhook, WebhookHandler
from exporter.settings import ListenerSecurity

__all__ = ["HEARTBEAT_MAX_AGE", "HttpApp"]

log = structlog.get_logger(__name__)

HEARTBEAT_MAX_AGE = 60.0
_OPEN = ListenerSecurity()  # no TLS, no users
# (status, body, content type) of one GET, and its extra headers when it has some
Reply = tuple[HTTPStatus, bytes, str] | tuple[HTTPStatus, bytes, str, dict[str, str]]


class HttpApp:
    """The handlers' shared state; ``serve`` starts a server thread on ``(host, port)``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Health,
        snapshot: Callable[[], Snapshot],
        explain: Explain,
        production_environment: str,
        window: str,
        render: Callable[[Encoder], bytes] | None = None,
        *,
        limits: Limits | None = None,
        render_gzip: Callable[[Encoder], bytes] | None = None,
    ) -> None:
        self.registry = registry
        self.render = render or (lambda encoder: encoder(registry))  # the /metrics body for an encoder
        # the same body gzipped (``Exposition.gzipped`` reuses the compressed DORA part per snapshot)
        self.render_gzip = render_gzip or (lambda encoder: gzip.compress(self.render(encoder), GZIP_LEVEL))
        self.health = health
        self.snapshot = snapshot
        self.explain = explain
        self.production_environment = production_environment
        self.window = window
        self.limits = limits or Limits()
        self._servers: list[Listener] = []
        self.webhooks: dict[str, tuple[str | None, Webhook]] = {}
        self.post_routes: dict[str, PostRoute] = {}  # served on the webhook listener, self-authenticating

    def add_webhook(self, path: str, token: str | None, handler: Webhook) -> None:
        """Serve ``POST path`` on the webhook listener; a request must carry ``Bearer <token>``.

        Without a configured token every request is refused (401): an open endpoint that writes to
        the store is not a default anyone wants."""
        self.webhooks[path] = (token, handler)

    def serve_webhooks(
        self, host: str, port: int, security: ListenerSecurity = _OPEN, *, key: str = "http.webhook_tls"
    ) -> tuple[str, int]:
        """The webhook listener: separate from ``/metrics`` so it can be exposed alone."""
        return self._listen(host, port, WebhookHandler, "webhooks", security, key)

    def serve(
        self, host: str, port: int, security: ListenerSecurity = _OPEN, *, key: str = "http.tls"
    ) -> tuple[str, int]:
        """The main listener; with ``security``'s TLS and basic-auth users (``key`` names its TLS in errors)."""
        return self._listen(host, port, _Handler, "http", security, key)

    def listener(self, name: str) -> Listener:
        """The running listener ``http`` or ``webhooks``: its load (``active``, ``body_bytes``)."""
        return next(s for s in self._servers if s.name == name)

    def _listen(
        self, host: str, port: int, base: type[Any], name: str, security: ListenerSecurity, key: str
    ) -> tuple[str, int]:
        """A threading server for ``base``'s routes on its own thread; returns the bound address."""
        handler = type(f"{base.__name__}Bound", (base,), {"app": self})
        tls = TlsContext(security.tls, key=key) if security.tls is not None else None
        auth = BasicAuth(security.basic_auth_users) if security.basic_auth_users else None
        server = Listener((host, port), handler, name=name, limits=self.limits, tls=tls, auth=auth)
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, name=f"{name}-{port}", daemon=True).start()
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def shutdown(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def landing(self) -> str:
        sources, _ = self.health.copy()
        return landing_page(
            self.snapshot(), sources, production_environment=self.production_environment, window=self.window
        )

    def metrics_gzip(self, accept: str) -> Reply:
        """``/metrics`` for a scraper that sent ``Accept-Encoding: gzip``."""
        encoder, content_type = choose_encoder(accept)
        return HTTPStatus.OK, self.render_gzip(encoder), content_type

    def get(self, url: SplitResult, accept: str) -> Reply:
        """The answer to ``GET url`` on the main listener."""
        route = _ROUTES.get(url.path)
        if route is None:
            return HTTPStatus.NOT_FOUND, b"not found\n", "text/plain"
        return route(self, url, accept)


def _metrics(app: HttpApp, url: SplitResult, accept: str) -> Reply:
    encoder, content_type = choose_encoder(accept)
    return HTTPStatus.OK, app.render(encoder), content_type


def _healthz(app: HttpApp, url: SplitResult, accept: str) -> Reply:
    """Live while every heartbeat is recent: a stuck loop restarts the pod."""
    stale = app.health.stale_heartbeats(HEARTBEAT_MAX_AGE)
    if stale:
        return HTTPStatus.SERVICE_UNAVAILABLE, f"stale: {', '.join(stale)}\n".encode(), "text/plain"
    return HTTPStatus.OK, b"ok\n", "text/plain"


def _readyz(app: HttpApp, url: SplitResult, accept: str) -> Reply:
    if app.health.ready():
        return HTTPStatus.OK, b"ready\n", "text/plain"
    return HTTPStatus.SERVICE_UNAVAILABLE, b"not ready\n", "text/plain"


def _deployments(app: HttpApp, url: SplitResult, accept: str) -> Reply:
    return api.deployments(app.explain, url.path, url.query)


def _landing(app: HttpApp, url: SplitResult, accept: str) -> Reply:
    return HTTPStatus.OK, app.landing().encode(), "text/html; charset=utf-8"


_ROUTES: dict[str, Callable[[HttpApp, SplitResult, str], Reply]] = {
    "/metrics": _metrics,
    "/healthz": _healthz,
    "/readyz": _readyz,
    "/api/deployments": _deployments,
    "/": _landing,
}


class _Handler(BoundedHandler):
    """GET and HEAD on the main listener's routes."""

    app: HttpApp
    allowed: ClassVar[tuple[str, ...]] = ("GET", "HEAD")
    # kubelet probes cannot send credentials; they reveal only liveness and readiness
    open_paths: ClassVar[frozenset[str]] = frozenset({"/healthz", "/readyz"})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.request", client=self.client_address[0], line=format % args)

    def known_path(self, path: str) -> bool:
        return path in _ROUTES

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url, accept = urlsplit(self.path), self.headers.get("Accept", "")
        if url.path == "/metrics" and gzip_accepted(self.headers.get("Accept-Encoding", "")):
            status, body, content_type = self.app.metrics_gzip(accept)[:3]
            self.send(status, body, content_type, [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")])
            return
        reply = self.app.get(url, accept)
        status, body, content_type = reply[:3]
        self.send(status, body, content_type, list((reply[3] if len(reply) == 4 else {}).items()))
