# SPDX-License-Identifier: Apache-2.0
"""What every request handler of both listeners shares: the request deadline and header
allowance, the headers on every answer, and 405 for a method a route does not serve."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import ClassVar, cast

from exporter.serve.deadline import DeadlineReader, HeadersTooLarge
from exporter.serve.limits import Limits
from exporter.serve.listener import Listener

__all__ = ["BoundedHandler"]


class BoundedHandler(BaseHTTPRequestHandler):
    """A request bounded by the listener's ``Limits``: headers within ``header_timeout`` and
    ``max_header_bytes``, the whole request (answer included) within ``request_timeout``.

    Subclasses define ``do_<METHOD>`` for the methods in ``allowed`` and ``known_path``; every
    other method gets 405 with ``Allow`` on a known path, 404 elsewhere."""

    server_version = "dora-exporter"
    allowed: ClassVar[tuple[str, ...]] = ("GET", "HEAD")
    open_paths: ClassVar[frozenset[str]] = frozenset()  # served without basic auth (health probes)
    _reader: DeadlineReader
    _started: float

    @property
    def limits(self) -> Limits:
        return cast(Listener, self.server).limits

    def known_path(self, path: str) -> bool:
        return False

    def version_string(self) -> str:
        """No Python version in ``Server``: it only helps an attacker pick an exploit."""
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self._reader = DeadlineReader(self.connection, header_allowance=self.limits.max_header_bytes)
        self.rfile.close()
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._started = time.monotonic()
        self.command, self.requestline = "", ""  # an answer to a request line never read needs them
        self._reader.start(self._started + self.limits.header_timeout)
        try:
            super().handle_one_request()  # a passed deadline ends there, as a TimeoutError: closed
        except HeadersTooLarge as exc:
            self.close_connection = True
            self.log_message("headers too large: %s", exc)
            self.request_version = "HTTP/1.0"  # not HTTP/0.9, which would get no status line
            with contextlib.suppress(OSError):
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self._reader.headers_done(self._started + self.limits.request_timeout)
            ok = self._authenticated()
        return ok

    def _authenticated(self) -> bool:
        """Basic auth, when the listener has users: 401 (and the connection closed, since a body
        may follow unread) unless the credentials match or the path is open."""
        auth = cast(Listener, self.server).auth
        if auth is None or self.path.split("?", 1)[0] in self.open_paths:
            return True
        if auth.check(self.headers.get("Authorization")):
            return True
        self.close_connection = True
        self.log_message("basic auth failed for %s", self.path)
        self.send(
            HTTPStatus.UNAUTHORIZED,
            b"unauthorized\n",
            "text/plain",
            [("WWW-Authenticate", 'Basic realm="dora-exporter", charset="UTF-8"'), ("Connection", "close")],
        )
        return False

    def end_headers(self) -> None:
        """Every answer, errors included: no MIME sniffing, no caching of live values; the write
        gets the time left to the deadline (at least a second, to send an error)."""
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.connection.settimeout(max(self._reader.remaining(), 1.0))
        super().end_headers()

    def send(self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """One whole answer (the body left out for HEAD)."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def not_allowed(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self.known_path(path):
            self.send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        allow = ", ".join(self.allowed)
        self.send(HTTPStatus.METHOD_NOT_ALLOWED, f"allowed: {allow}\n".encode(), "text/plain", [("Allow", allow)])

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = not_allowed
