# SPDX-License-Identifier: Apache-2.0
"""One writer per store, across processes: an exclusive ``flock`` on ``<store>.lock``.

Two daemons on one store would interleave their ingests and each keep its own idea of the
cursors; nothing refused the second one (issue 13 §8). A writer (the daemon: ``run``, ``ingest``,
``demo``) takes the lock before it opens the database and holds it until it closes the store;
readers (``report``, ``explain``) do not take it. The holder writes its PID into the file so the
one refused can name it. The kernel drops the lock when the holder's process ends, however it
ends, so a stale file (a PID left after ``kill -9``) never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from exporter.errors import StoreError

__all__ = ["WriterLock", "lock_path"]


def lock_path(store: Path) -> Path:
    return Path(f"{store}.lock")


class WriterLock:
    """The held lock; ``release`` (or the process's end) gives it back."""

    def __init__(self, store: Path) -> None:
        self.path = lock_path(store)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)  # OSError: the caller's to explain
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise StoreError(
                f"store {store} is in use by another exporter (pid {holder}, per {self.path}); a store has "
                "one writer: stop that one, or give this one its own store.path"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        """Closing the descriptor drops the lock; the file stays (removing it would race a starter)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    """The PID the holder wrote, or ``unknown`` in the instant between its lock and its write."""
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return pid if pid.isdigit() else "unknown"
