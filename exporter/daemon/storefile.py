# SPDX-License-Identifier: Apache-2.0
"""Opening the configured store: a failure names ``store.path`` and says what to do.

The store reports SQLite's own words ("unable to open database file"); an operator needs to know
which setting points where, and what is wrong with that place.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from exporter.errors import StoreError
from exporter.store import Store

__all__ = ["open_store"]

_FIX = "point store.path at a file in a directory this user can write"


def open_store(path: Path, *, exclusive: bool = False) -> Store:
    """``Store(path)``, with an ``OSError`` or an unwritable place turned into a ``StoreError`` that
    names ``store.path`` and keeps the store's own kind (full, corrupt, read-only). ``exclusive``:
    take the store's lock, as a daemon does (``report`` and ``explain`` read beside a running one)."""
    try:
        return Store(path, exclusive=exclusive)
    except OSError as exc:
        raise StoreError(f"store.path {path}: {_os_reason(exc)}; {_FIX}") from exc
    except StoreError as exc:
        unwritable = _unwritable(path)
        if unwritable is None:  # the store said what is wrong; say which setting points there
            raise StoreError(f"store.path: {exc}", kind=exc.kind) from exc
        raise StoreError(
            f"store.path {path}: {unwritable} is not writable by this user ({exc}); {_FIX}", kind=exc.kind
        ) from exc


def _os_reason(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "its directory"
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return f"cannot create its directory: {where} (or a parent) is a file, not a directory"
    return f"cannot create its directory {where}: {exc.strerror or exc}"


def _unwritable(path: Path) -> Path | None:
    """The file or directory SQLite cannot write (the WAL and its index sit beside the file), if any."""
    if path.exists() and not os.access(path, os.W_OK):
        return path
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        return path.parent
    return None
