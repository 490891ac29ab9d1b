"""HTTP surface: ``/metrics``, ``/healthz``, ``/readyz``, a landing page and the JSON debug API.

The standard library server is enough: every handler reads in-memory state or one indexed query,
and a threading server keeps a slow client from blocking Prometheus.
"""

from __future__ import annotations

import hmac
import html
import json
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.core.dora import Metric
from exporter.core.durations import format_duration
from exporter.core.snapshot import Snapshot
from exporter.serve.health import Health

log = structlog.get_logger(__name__)

HEARTBEAT_MAX_AGE = 60.0
WEBHOOK_MAX_BODY = 64 * 1024
WEBHOOK_READ_TIMEOUT = 10.0
Explain = Callable[[str | None, str | None], list[dict[str, Any]]]
# (raw body) -> (HTTP status, short text); called only after the bearer token matched
Webhook = Callable[[bytes], tuple[int, str]]
# A route that authenticates the request itself (GitHub's HMAC signature over the raw body):
# (header getter, raw body) -> (HTTP status, short text)
PostRoute = Callable[[Callable[[str], str | None], bytes], tuple[int, str]]
SIGNED_MAX_BODY = 25 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-reply is routine (a scraper timing out, a webhook sender giving up): log
        it as a structured event instead of the standard library's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("http.client_gone", client=str(client_address[0]), error=type(exc).__name__)
            return
        log.error("http.handler_failed", client=str(client_address[0]), exc_info=True)

    allow_reuse_address = True


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
        render: Callable[[Callable[[Any], bytes]], bytes] | None = None,
    ) -> None:
        self.registry = registry
        self.render = render or (lambda encoder: encoder(registry))  # the /metrics body for an encoder
        self.health = health
        self.snapshot = snapshot
        self.explain = explain
        self.production_environment = production_environment
        self.window = window
        self._servers: list[_Server] = []
        self.webhooks: dict[str, tuple[str | None, Webhook]] = {}
        self.post_routes: dict[str, PostRoute] = {}  # served on the webhook listener, self-authenticating

    def add_webhook(self, path: str, token: str | None, handler: Webhook) -> None:
        """Serve ``POST path`` on the webhook listener; a request must carry ``Bearer <token>``.

        Without a configured token every request is refused (401): an open endpoint that writes to
        the store is not a default anyone wants."""
        self.webhooks[path] = (token, handler)

    def serve_webhooks(self, host: str, port: int) -> tuple[str, int]:
        """The webhook listener: separate from ``/metrics`` so it can be exposed alone."""
        return self._listen(host, port, _WebhookHandler, "webhooks")

    def serve(self, host: str, port: int) -> tuple[str, int]:
        return self._listen(host, port, _Handler, "http")

    def _listen(self, host: str, port: int, base: type[Any], name: str) -> tuple[str, int]:
        """A threading server for ``base``'s routes on its own thread; returns the bound address."""
        handler = type(f"{base.__name__}Bound", (base,), {"app": self})
        server = _Server((host, port), handler)
        self._servers.append(server)
        threading.Thread(target=server.serve_forever, name=f"{name}-{port}", daemon=True).start()
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def shutdown(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def landing(self) -> str:
        snap = self.snapshot()
        sources, _ = self.health.copy()
        rows = []
        for p in snap.pairs:
            if p.key.environment != self.production_environment:
                continue
            s = p.windows.get(self.window)
            lv = p.levels.get(self.window, {})
            if s is None:
                continue

            def cell(value: str, metric: Metric, lv: Any = lv) -> str:
                level = lv.get(metric)
                return f"<td>{html.escape(value)} <small>{level.label if level else ''}</small></td>"

            rows.append(
                f"<tr><td>{html.escape(p.key.service)}</td>"
                + cell(f"{s.deployments_per_day:.2f}/day", Metric.DEPLOYMENT_FREQUENCY)
                + cell(_dur(s.lead_time_median_seconds), Metric.LEAD_TIME)
                + cell(
                    "-" if s.change_failure_rate is None else f"{s.change_failure_rate:.0%}", Metric.CHANGE_FAILURE_RATE
                )
                + cell(_dur(s.time_to_restore_median_seconds), Metric.TIME_TO_RESTORE)
                + "</tr>"
            )
        src = "".join(
            f"<tr><td>{html.escape(n)}</td><td>{'up' if st.up else 'down'}</td>"
            f"<td>{html.escape(st.last_error)}</td></tr>"
            for n, st in sorted(sources.items())
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>dora-exporter</title></head><body>"
            f"<h1>dora-exporter</h1><p>Production environment <b>{html.escape(self.production_environment)}</b>, "
            f"window {html.escape(self.window)}, computed {snap.computed_at.isoformat(timespec='seconds')}.</p>"
            "<table border=1 cellpadding=4><tr><th>service</th><th>deployment frequency</th>"
            "<th>lead time (median)</th><th>change failure rate</th><th>time to restore (median)</th></tr>"
            + "".join(rows)
            + "</table><h2>Sources</h2><table border=1 cellpadding=4><tr><th>source</th><th>state</th>"
            "<th>last error</th></tr>" + src + "</table>"
            "<p><a href='/metrics'>/metrics</a> · <a href='/api/deployments'>/api/deployments</a> · "
            "<a href='/healthz'>/healthz</a> · <a href='/readyz'>/readyz</a></p></body></html>"
        )


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


class _Handler(BaseHTTPRequestHandler):
    app: HttpApp
    server_version = "dora-exporter"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.request", client=self.client_address[0], line=format % args)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        app = self.app
        if url.path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(HTTPStatus.OK, app.render(encoder), content_type)
        elif url.path == "/healthz":
            stale = app.health.stale_heartbeats(HEARTBEAT_MAX_AGE)
            if stale:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"stale: {', '.join(stale)}\n".encode(), "text/plain")
            else:
                self._send(HTTPStatus.OK, b"ok\n", "text/plain")
        elif url.path == "/readyz":
            ok = app.health.ready()
            self._send(
                HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                b"ready\n" if ok else b"not ready\n",
                "text/plain",
            )
        elif url.path == "/api/deployments":
            q = parse_qs(url.query)
            body = app.explain(q.get("service", [None])[0], q.get("environment", [None])[0])
            self._send(HTTPStatus.OK, json.dumps({"deployments": body}, indent=1).encode(), "application/json")
        elif url.path == "/":
            self._send(HTTPStatus.OK, app.landing().encode(), "text/html; charset=utf-8")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")


class _WebhookHandler(BaseHTTPRequestHandler):
    """POST-only; authentication before reading the body, the body bounded in size and in time."""

    app: HttpApp
    server_version = "dora-exporter"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http.webhook_request", client=self.client_address[0], line=format % args)

    def _reply(self, status: int, text: str) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        known = path in self.app.webhooks or path in self.app.post_routes
        self._reply(HTTPStatus.NOT_FOUND if not known else 405, "POST only")

    def _body(self, limit: int) -> bytes | None:
        """The request body, bounded in size and in time; ``None`` once an error was answered."""
        length_raw = self.headers.get("Content-Length")
        if length_raw is None or not length_raw.isdigit():
            self._reply(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return None
        length = int(length_raw)
        if length > limit:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {limit} bytes")
            return None
        self.connection.settimeout(WEBHOOK_READ_TIMEOUT)
        try:
            body = self.rfile.read(length)
        except OSError:
            self._reply(HTTPStatus.REQUEST_TIMEOUT, "body not received in time")
            return None
        if len(body) != length:
            self._reply(HTTPStatus.BAD_REQUEST, "truncated body")
            return None
        return body

    def do_POST(self) -> None:
        route = self.app.post_routes.get(urlsplit(self.path).path)
        if route is not None:
            body = self._body(SIGNED_MAX_BODY)
            if body is not None:
                status, text = route(self.headers.get, body)
                self._reply(status, text)
            return
        entry = self.app.webhooks.get(urlsplit(self.path).path)
        if entry is None:
            self._reply(HTTPStatus.NOT_FOUND, "not found")
            return
        token, handler = entry
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {token}" if token else None
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("webhook.unauthorized", path=self.path, client=self.client_address[0])
            self._reply(HTTPStatus.UNAUTHORIZED, "unauthorized")
            return
        length_raw = self.headers.get("Content-Length")
        if length_raw is None or not length_raw.isdigit():
            self._reply(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
            return
        length = int(length_raw)
        if length > WEBHOOK_MAX_BODY:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {WEBHOOK_MAX_BODY} bytes")
            return
        self.connection.settimeout(WEBHOOK_READ_TIMEOUT)
        try:
            body = self.rfile.read(length)
        except OSError:
            self._reply(HTTPStatus.REQUEST_TIMEOUT, "body not received in time")
            return
        if len(body) != length:
            self._reply(HTTPStatus.BAD_REQUEST, "truncated body")
            return
        status, text = handler(body)
        self._reply(status, text)
