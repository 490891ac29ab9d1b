# SPDX-License-Identifier: Apache-2.0
"""The GitHub source's cache kept in the store, shared by every GitHub ingester."""

from __future__ import annotations

from exporter.store import Store

__all__ = ["StoreCache"]


class StoreCache:
    """The GitHub source's cache (commit facts, ETags) kept in the store's ``github_cache`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, key: str) -> tuple[str | None, str] | None:
        return self.store.cache_get(key)

    def put(self, key: str, etag: str | None, body: str) -> None:
        with self.store.transaction() as tx:
            tx.cache_put(key, etag, body)
