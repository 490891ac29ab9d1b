# SPDX-License-Identifier: Apache-2.0
"""Scripted hostile clients for the HTTP listeners, kept here so they run in CI.

Each talks to one ``(host, port)`` on loopback over a raw socket, is bounded in count and in time,
and reports what happened (bytes it got out, whether the server cut it off, the status it got)
rather than how long it took: the tests assert on resources and outcomes, not on timings.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

__all__ = [
    "Outcome",
    "big_bodies",
    "half_sent_requests",
    "refused",
    "request_head",
    "slow_body",
    "slow_headers",
]


@dataclass(frozen=True)
class Outcome:
    """What one attacking connection saw."""

    sent: int  # bytes the attacker got out
    cut_off: bool  # the server answered or closed before the attacker had sent everything
    status: int | None  # the status code of the server's answer, if it sent one


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 request line and headers, ending with the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status(data: bytes) -> int | None:
    parts = data.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
        return int(parts[1])
    return None


def _server_spoke(sock: socket.socket, wait: float) -> tuple[bool, int | None]:
    """Wait up to ``wait`` s for the server to answer or close; (it did, status if any)."""
    readable, _, _ = select.select([sock], [], [], wait)
    if not readable:
        return False, None
    try:
        data = sock.recv(4096)
    except OSError:
        return True, None
    return True, _status(data)


def _trickle(sock: socket.socket, data: bytes, *, interval: float, give_up_after: float, sent: int = 0) -> Outcome:
    """Send ``data`` one byte per ``interval`` until done, cut off, or ``give_up_after`` seconds."""
    stop = time.monotonic() + give_up_after
    for i in range(len(data)):
        if time.monotonic() > stop:
            return Outcome(sent=sent, cut_off=False, status=None)
        try:
            sock.sendall(data[i : i + 1])
        except OSError:
            return Outcome(sent=sent, cut_off=True, status=None)
        sent += 1
        spoke, status = _server_spoke(sock, interval)
        if spoke:
            return Outcome(sent=sent, cut_off=True, status=status)
    return Outcome(sent=sent, cut_off=False, status=None)


def slow_headers(host: str, port: int, *, head: bytes, interval: float, give_up_after: float) -> Outcome:
    """Slowloris: the request line and headers one byte at a time."""
    with socket.create_connection((host, port), timeout=5) as sock:
        return _trickle(sock, head, interval=interval, give_up_after=give_up_after)


def slow_body(host: str, port: int, *, head: bytes, body: bytes, interval: float, give_up_after: float) -> Outcome:
    """Headers at once (``head`` should declare ``len(body)``), then the body one byte at a time."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head)
        return _trickle(sock, body, interval=interval, give_up_after=give_up_after, sent=len(head))


@contextlib.contextmanager
def half_sent_requests(host: str, port: int, *, count: int, head: bytes) -> Iterator[list[socket.socket]]:
    """``count`` connections that each send ``head`` (a request cut short) and then stay silent."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=5)
            socks.append(sock)
            with contextlib.suppress(OSError):  # a refused connection may be closed already
                sock.sendall(head)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def refused(sock: socket.socket) -> bool:
    """The server answered (a fast 503) or closed this connection; does not wait."""
    spoke, _ = _server_spoke(sock, 0)
    return spoke


def _send_part(host: str, port: int, head: bytes, part: memoryview) -> tuple[socket.socket, Outcome]:
    sock = socket.create_connection((host, port), timeout=10)
    try:
        sock.sendall(head)
        sock.sendall(part)
    except OSError:
        spoke, status = _server_spoke(sock, 0)
        return sock, Outcome(sent=0, cut_off=True, status=status)
    spoke, status = _server_spoke(sock, 0)
    return sock, Outcome(sent=len(head) + len(part), cut_off=spoke, status=status)


@contextlib.contextmanager
def big_bodies(host: str, port: int, *, count: int, head: bytes, part: bytes) -> Iterator[list[Outcome]]:
    """``count`` parallel connections that declare a large body (in ``head``), send ``part`` of it
    and then hold the connection open; the outcomes once every send finished or was refused."""
    view = memoryview(part)
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(lambda _: _send_part(host, port, head, view), range(count)))
    try:
        yield [outcome for _, outcome in results]
    finally:
        for sock, _ in results:
            sock.close()
