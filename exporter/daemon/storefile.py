# SPDX-License-Identifier: Apache-2.0
"""Opening the configured store: a failure names ``store.path``.

The store itself says what is wrong with the place and what to do (``store/engine.py``); an
operator also needs to know which setting points there.
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import StoreError
from exporter.store import Store

__all__ = ["open_store"]


def open_store(path: Path, *, exclusive: bool = False) -> Store:
    """``Store(path)``; a failure to open keeps the store's own words and kind (a parent that is a
    file, read-only, full, corrupt, locked by another daemon) and names the setting that points
    there. ``exclusive``: take the store's lock, as a daemon does (``report`` and ``explain`` read
    beside a running one)."""
    try:
        return Store(path, exclusive=exclusive)
    except StoreError as exc:
        raise StoreError(f"store.path: {exc}", kind=exc.kind) from exc
