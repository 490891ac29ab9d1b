# SPDX-License-Identifier: Apache-2.0
"""Per-source health and process heartbeats, shared by the daemon (writer) and HTTP/metrics (readers)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["Health", "SourceState"]


@dataclass
class SourceState:
    """A source is up when every part of it (e.g. each GitOps repo) succeeded on its last attempt."""

    parts: dict[str, bool] = field(default_factory=dict)
    attempted: set[str] = field(default_factory=set)
    last_success: float | None = None
    last_error: str = ""
    last_duration: float = 0.0

    @property
    def up(self) -> bool:
        return bool(self.parts) and all(self.parts.values())


class Health:
    """Thread-safe counters and flags; cheap enough to read on every scrape."""

    def __init__(self, sources: dict[str, list[str]]) -> None:
        """``sources``: each configured source and its parts. A source without parts is not
        configured and gets no state, hence no health series, until it reports itself."""
        self._lock = threading.Lock()
        self._expected = {s: set(parts) for s, parts in sources.items() if parts}
        self.sources: dict[str, SourceState] = {s: SourceState() for s in self._expected}
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.heartbeats: dict[str, float] = {}
        self.store_open = False
        self.scrape_duration = 0.0
        # GitHub requests left per rate-limit resource (core, search, ...), from the last answers
        self.github_rate_limit_remaining: dict[str, float] = {}
        self.counters: defaultdict[tuple[str, str], int] = defaultdict(int)
        # services that can count no change (no repository, or none of their paths in it): why, by name
        self.without_changes: dict[str, str] = {}

    def service_without_changes(self, service: str, reason: str) -> None:
        with self._lock:
            self.without_changes[service] = reason

    def count(self, name: str, source: str, n: int = 1) -> None:
        """Bump a self-metric counter (``dora_exporter_<name>_total{source}``)."""
        with self._lock:
            self.counters[(name, source)] += n

    def counts(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.counters)

    def success(self, source: str, part: str, duration: float) -> None:
        with self._lock:
            st = self.sources.setdefault(source, SourceState())
            st.parts[part] = True
            st.attempted.add(part)
            st.last_success, st.last_duration = time.time(), duration
            if st.up:
                st.last_error = ""

    def failure(self, source: str, part: str, kind: str, message: str) -> None:
        with self._lock:
            st = self.sources.setdefault(source, SourceState())
            st.parts[part] = False
            st.attempted.add(part)
            st.last_error = message
            self.errors[(source, kind)] += 1

    def beat(self, name: str) -> None:
        with self._lock:
            self.heartbeats[name] = time.monotonic()

    def stale_heartbeats(self, max_age: float) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [n for n, t in self.heartbeats.items() if now - t > max_age]

    def ready(self) -> bool:
        """Store open and every source part attempted once: a failing source is visible as
        ``source_up=0`` and alerts, rather than holding the pod unready (and restarting it) forever."""
        with self._lock:
            return self.store_open and all(
                self._expected.get(name, set()) <= st.attempted for name, st in self.sources.items()
            )

    def copy(self) -> tuple[dict[str, SourceState], dict[tuple[str, str], int]]:
        with self._lock:
            states = {
                k: SourceState(dict(v.parts), set(v.attempted), v.last_success, v.last_error, v.last_duration)
                for k, v in self.sources.items()
            }
            return states, dict(self.errors)
