# SPDX-License-Identifier: Apache-2.0
"""The latest snapshot and the ``/metrics`` body rendered from it.

The DORA families are a pure function of the (immutable) snapshot, which changes only after a
poll, so their text is rendered once per snapshot and encoder and reused by every scrape until the
next one; self-metrics, process and platform metrics are collected on each scrape. Tens of
thousands of samples (240 pairs) then cost a scrape a few byte copies instead of formatting.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from exporter.core.snapshot import Snapshot

if TYPE_CHECKING:
    from exporter.serve.collector import DoraCollector

__all__ = ["GZIP_LEVEL", "Encoder", "Exposition", "SnapshotHolder"]

GZIP_LEVEL = 6  # zlib's default: most of level 9's ratio at a fraction of its CPU

# prometheus_client's text or OpenMetrics ``generate_latest``: (registry-like) -> body
Encoder = Callable[[Any], bytes]


class SnapshotHolder:
    """The latest snapshot, swapped atomically after each compute."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._lock = threading.Lock()

    def get(self) -> Snapshot:
        with self._lock:
            return self._snapshot

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot


class _Families:
    """A registry-like holder of fixed families, for an encoder."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class Exposition:
    """The ``/metrics`` body: the DORA families rendered once per snapshot and format, the rest fresh."""

    _EOF = b"# EOF\n"

    def __init__(self, registry: CollectorRegistry, dora: DoraCollector) -> None:
        self.registry = registry
        self.dora = dora
        self._cache: dict[Encoder, tuple[Snapshot, bytes]] = {}
        self._gzip_cache: dict[Encoder, tuple[bytes, bytes]] = {}  # the DORA part, and it gzipped
        self._lock = threading.Lock()

    def __call__(self, encoder: Encoder) -> bytes:
        return self._dora_part(encoder) + self._rest(encoder)

    def gzipped(self, encoder: Encoder) -> bytes:
        """The body as a gzip stream of two members: the DORA part compressed once per snapshot
        (cached like its text), then the fresh rest. Concatenated members are one valid gzip
        stream (RFC 1952 §2.2) that Prometheus's reader, like Python's, inflates as a whole."""
        part = self._dora_part(encoder)
        with self._lock:
            hit = self._gzip_cache.get(encoder)
        if hit is not None and hit[0] is part:
            packed = hit[1]
        else:
            packed = gzip.compress(part, GZIP_LEVEL, mtime=0)
            with self._lock:
                self._gzip_cache[encoder] = (part, packed)
        return packed + gzip.compress(self._rest(encoder), GZIP_LEVEL, mtime=0)

    def _dora_part(self, encoder: Encoder) -> bytes:
        """The DORA families of the current snapshot, from the cache when it holds them."""
        snap = self.dora.holder.get()
        with self._lock:
            hit = self._cache.get(encoder)
        if hit is not None and hit[0] is snap:
            return hit[1]
        errors = self.dora.collector_errors
        part = encoder(_Families(self.dora.dora_families(snap)))
        if part.endswith(self._EOF):  # OpenMetrics ends once, after the rest
            part = part[: -len(self._EOF)]
        if self.dora.collector_errors == errors:  # a failed render is retried (and counted) next scrape
            with self._lock:
                self._cache[encoder] = (snap, part)
        return part

    def _rest(self, encoder: Encoder) -> bytes:
        """Everything else in the registry, collected fresh, without the DORA families again."""
        with self.dora.without_dora_families():
            return encoder(self.registry)
