# SPDX-License-Identifier: Apache-2.0
"""The snapshot publisher: recomputes the snapshot from the store and hands it to the scrapes.

A recompute happens after an ingest changed something, never per scrape. Recomputes are
serialised, and each one reads the live Argo CD state under its own lock, so the snapshot
published last always includes the latest state of every pair.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from exporter.core import snapshot
from exporter.model import PairKey
from exporter.serve import SnapshotHolder
from exporter.settings import Config
from exporter.store import Store
from exporter.store.db import LazyHistories

__all__ = ["Publisher", "known_pairs"]


def known_pairs(cfg: Config) -> list[PairKey]:
    """Every configured service in every environment: the pairs served even before a deployment."""
    return [PairKey(s.name, e) for s in cfg.services for e in cfg.environments]


class Publisher:
    def __init__(self, *, cfg: Config, store: Store, holder: SnapshotHolder) -> None:
        self.cfg = cfg
        self.store = store
        self.holder = holder
        self._compute_lock = threading.Lock()
        self._live_lock = threading.Lock()
        self._live: dict[PairKey, snapshot.LiveState] = {}
        self._argo_pairs: set[PairKey] = set()

    def recompute(self, now: datetime | None = None) -> snapshot.Snapshot:
        """Rebuild the served snapshot from the store."""
        cfg, store = self.cfg, self.store
        with self._compute_lock:
            with self._live_lock:
                live = dict(self._live)
            now = now or datetime.now(UTC)
            longest = max(w.seconds for w in cfg.windows)
            snap = snapshot.build(
                # the windows' history as objects, one pair at a time; all-time numbers aggregated by the store
                LazyHistories(store, cfg.change_start, now.timestamp() - longest),
                known_pairs=known_pairs(cfg),
                now=now,
                windows=[(w.label, w.seconds) for w in cfg.windows],
                thresholds=cfg.thresholds,
                unmatched=store.unmatched_counts(),
                live=live,
                # only the GitHub source looks for pull requests: without it the count is 0, no scan needed
                changes_without_pull_request=store.changes_without_pull_request() if cfg.github.enabled else 0,
                phases=store.lead_time_phases() if cfg.github.lead_time_phases else None,
                totals=store.totals(cfg.change_start, snapshot.LEAD_TIME_BUCKETS),
            )
            self.holder.set(snap)
            return snap

    def set_live_state(
        self, service: str, environment: str, *, sync_failing: bool | None = None, degraded: bool | None = None
    ) -> snapshot.Snapshot:
        """Record the live state of one pair (``None`` keeps a value) and republish the snapshot.

        The Argo CD watch republishes the stored state of every pair instead (``argocd_observed``);
        this one-pair form serves callers that push a state directly."""
        key = PairKey(service, environment)
        with self._live_lock:
            old = self._live.get(key, snapshot.LiveState())
            self._live[key] = snapshot.LiveState(
                sync_failing=old.sync_failing if sync_failing is None else sync_failing,
                degraded=old.degraded if degraded is None else degraded,
            )
        return self.recompute()

    def load_argocd_live(self) -> bool:
        """Serve the stored live state of every pair with Argo CD apps; True when something changed."""
        live = self.store.argocd_live()
        changed = False
        with self._live_lock:
            for key in list(self._argo_pairs):  # pairs whose last Argo CD app was deleted
                if (key.service, key.environment) not in live and self._live.get(key) != snapshot.LiveState():
                    self._live[key] = snapshot.LiveState()
                    changed = True
            self._argo_pairs = {PairKey(s, e) for s, e in live}
            for (service, env), (failing, degraded) in live.items():
                state = snapshot.LiveState(sync_failing=failing, degraded=degraded)
                if self._live.get(PairKey(service, env)) != state:
                    self._live[PairKey(service, env)] = state
                    changed = True
        return changed

    def argocd_observed(self, outcome_changed: bool) -> None:
        """After an Argo CD observation: republish live state and numbers when something changed."""
        live_changed = self.load_argocd_live()
        if outcome_changed or live_changed:
            self.recompute()
