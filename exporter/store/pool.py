# SPDX-License-Identifier: Apache-2.0
"""A bounded pool of reader connections, lent for one read (or one snapshot) at a time.

Why a pool and not a connection per thread: the HTTP server runs every request on a new thread,
and a per-thread connection kept until the store closed leaked two file descriptors and half a
megabyte per request (issue 13). Lent per read, the readers are bounded by the pool's size
however many threads come and go, and each stays open between reads, with its prepared
statements cached. The pool knows no driver: the engine gives it ``connect`` and ``close``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from exporter.errors import StoreError

__all__ = ["READERS", "READER_WAIT_SECONDS", "ReaderPool"]

READERS = 4  # the HTTP API, a webhook, the publisher and a watch reading at once; more wait their turn
READER_WAIT_SECONDS = 30.0  # as long as SQLite's busy timeout: a reader is lent for one query or one snapshot

C = TypeVar("C")


class ReaderPool(Generic[C]):
    """At most ``size`` connections, opened on demand and kept idle between loans."""

    def __init__(
        self,
        *,
        connect: Callable[[], C],
        close: Callable[[C], None],
        size: int = READERS,
        wait: float = READER_WAIT_SECONDS,
    ) -> None:
        self.size = size
        self._connect = connect
        self._close = close
        self._wait = wait
        self._idle: list[C] = []
        self._opened = 0
        self._closed = False
        self._cond = threading.Condition()
        self._local = threading.local()  # the connection lent to this thread, only while it is lent

    @property
    def opened(self) -> int:
        """Connections open now, lent or idle."""
        with self._cond:
            return self._opened

    def held(self) -> C | None:
        """The connection lent to the calling thread, if any (a snapshot's reads run on it)."""
        conn: C | None = getattr(self._local, "conn", None)
        return conn

    @contextmanager
    def lend(self) -> Iterator[C]:
        """A connection for the calling thread until the block ends; nested on the same thread,
        the one already lent (so a read inside a snapshot sees the snapshot's state)."""
        held = self.held()
        if held is not None:
            yield held
            return
        conn = self._acquire()
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            self._release(conn)

    def _acquire(self) -> C:
        deadline = time.monotonic() + self._wait
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError("the store is closed")
                if self._idle:
                    return self._idle.pop()  # the most recently used: its pages are the warmest
                if self._opened < self.size:
                    self._opened += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreError(f"all {self.size} store readers stayed busy for {self._wait:g}s")
                self._cond.wait(remaining)
        try:
            return self._connect()  # outside the lock: opening may wait on the file
        except BaseException:
            with self._cond:
                self._opened -= 1
                self._cond.notify()
            raise

    def _release(self, conn: C) -> None:
        with self._cond:
            if self._closed:
                self._opened -= 1
                self._close(conn)
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        """Close the idle connections now; a lent one is closed when it comes back."""
        with self._cond:
            self._closed = True
            for conn in self._idle:
                self._close(conn)
            self._opened -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()
