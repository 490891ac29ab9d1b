# SPDX-License-Identifier: Apache-2.0
"""The threading HTTP server of each listener, bounded in connections.

One thread per connection is what lets a slow client not block Prometheus; the cap on connections
is what keeps slow clients from holding a thread each without end. The accepting thread answers a
connection over the cap itself, with a canned 503, and closes it: no thread, no read.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from exporter.serve.auth import BasicAuth
from exporter.serve.budget import Budget
from exporter.serve.limits import Limits
from exporter.serve.tls import TlsContext

__all__ = ["Listener"]

log = structlog.get_logger(__name__)

_BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\n"
    b"Server: dora-exporter\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 5\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"X-Content-Type-Options: nosniff\r\n"
    b"Cache-Control: no-store\r\n"
    b"\r\n"
    b"busy\n"
)
_LOG_EVERY = 1000  # refusals logged: the first of a flood, then one per this many


class Listener(ThreadingHTTPServer):
    """A listener named ``name`` (``http``, ``webhooks``) serving ``handler`` within ``limits``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        name: str,
        limits: Limits,
        tls: TlsContext | None = None,
        auth: BasicAuth | None = None,
    ) -> None:
        self.name = name
        self.limits = limits
        self.tls = tls  # the handshake runs on the connection's own thread, never the accepting one
        self.auth = auth
        self.handshake_failures = 0
        self.request_queue_size = limits.listen_backlog  # read by server_activate, in the base __init__
        self.slots = Budget(limits.max_connections)
        self.bodies = Budget(limits.webhook_body_budget)  # body bytes held, reserved before reading
        self.refused = 0
        super().__init__(address, handler)

    @property
    def active(self) -> int:
        """Connections being served now (each on its own thread)."""
        return self.slots.in_use

    @property
    def body_bytes(self) -> int:
        """Request body bytes reserved now, over all connections."""
        return self.bodies.in_use

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.take():
            self._refuse(request, client_address)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # the thread did not start: its slot would never come back
            self.slots.give_back()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            if self.tls is not None:
                request = self._handshake(request, client_address)
                if request is None:
                    return
            super().process_request_thread(request, client_address)
        finally:
            self.slots.give_back()

    def _handshake(self, request: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        """The TLS handshake within ``header_timeout`` (per read); a failed one is logged and closed."""
        assert self.tls is not None
        secure: ssl.SSLSocket | None = None
        try:
            request.settimeout(self.limits.header_timeout)
            secure = self.tls.current().wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            secure.do_handshake()
        except (OSError, ValueError) as exc:  # ssl.SSLError, a timeout, a reset
            self.handshake_failures += 1
            log.debug("http.tls_handshake_failed", listener=self.name, client=str(client_address[0]), error=str(exc))
            self.shutdown_request(secure if secure is not None else request)  # the wrapper owns the socket
            return None
        return secure

    def _refuse(self, request: socket.socket, client_address: Any) -> None:
        """503 and close, on the accepting thread: non-blocking, so a client cannot stall it."""
        self.refused += 1
        if self.refused % _LOG_EVERY == 1:
            log.warning(
                "http.connections_full",
                listener=self.name,
                max_connections=self.limits.max_connections,
                refused=self.refused,
            )
        with contextlib.suppress(OSError):
            request.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                request.recv(65536)  # what already arrived, so the close is a FIN rather than a reset
            request.send(_BUSY)
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-reply is routine (a scraper timing out, a webhook sender giving up): log
        it as a structured event instead of the standard library's traceback on stderr."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            log.debug("http.client_gone", client=str(client_address[0]), error=type(exc).__name__)
            return
        log.error("http.handler_failed", client=str(client_address[0]), exc_info=True)
