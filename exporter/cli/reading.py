# SPDX-License-Identifier: Apache-2.0
"""The store opened for a command that only reads it (``report``, ``explain``): no daemon is built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import structlog

from exporter.daemon import storefile
from exporter.errors import DoraError
from exporter.settings import Config
from exporter.store import Store

__all__ = ["open_store"]

log = structlog.get_logger(__name__)


@contextmanager
def open_store(cfg: Config) -> Iterator[Store]:
    """The configured store; closed as a daemon closes it, the WAL folded into the file."""
    store = storefile.open_store(cfg.store_path)
    try:
        yield store
    finally:
        try:
            store.checkpoint()
        except DoraError as exc:
            log.error("store.checkpoint_failed", error=str(exc))
        store.close()
