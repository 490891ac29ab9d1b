# SPDX-License-Identifier: Apache-2.0
"""Reads from a client's socket against one deadline for the whole request.

A socket timeout alone is per ``recv``: a client sending one byte just before each timeout holds
its connection (and thread) forever. Here every read gets only the time left until the request's
deadline, and the bytes read before the headers end are counted, so a request is bounded in time
and in header size however its bytes are spread.
"""

from __future__ import annotations

import io
import math
import socket
import time

__all__ = ["DeadlineReader", "HeadersTooLarge"]


class HeadersTooLarge(Exception):
    """More bytes arrived than the header allowance before the headers ended."""


class DeadlineReader(io.RawIOBase):
    """The raw stream under a handler's ``rfile``; ``deadline`` is a ``time.monotonic()`` value."""

    def __init__(self, sock: socket.socket, *, header_allowance: int) -> None:
        super().__init__()
        self._sock = sock
        self._header_allowance = header_allowance
        self.deadline = math.inf
        self.in_headers = True
        self.received = 0  # bytes of the current request

    def start(self, deadline: float) -> None:
        """A new request: its header phase ends at ``deadline``."""
        self.deadline = deadline
        self.in_headers = True
        self.received = 0

    def headers_done(self, deadline: float) -> None:
        """The headers were parsed; the rest of the request ends at ``deadline``."""
        self.in_headers = False
        self.deadline = deadline

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        left = self.remaining()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self._sock.settimeout(left)
        n = self._sock.recv_into(buffer)
        self.received += n
        if self.in_headers and self.received > self._header_allowance:
            raise HeadersTooLarge(f"headers over {self._header_allowance} bytes")
        return n
