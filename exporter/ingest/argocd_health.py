# SPDX-License-Identifier: Apache-2.0
"""What an Argo CD Application's health transitions mean: when they happened, a Degraded app
failing its latest deployment, a Healthy one restoring the pair's open failures.

Split from ``ingest.argocd``, which decides when a transition is new and records it; the rules
for its time, for attributing a degradation and for restoring are here.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from exporter import keys
from exporter.core.correlate import within
from exporter.model import FailureReason
from exporter.settings import Config
from exporter.store import Tx

if TYPE_CHECKING:  # annotations only: the kubernetes client loads with the watch, not with this module
    from exporter.sources.argocd.apps import App

__all__ = ["degraded", "health_changed_at", "restore"]

log = structlog.get_logger(__name__)


def health_changed_at(app: App, now: datetime) -> datetime:
    """When the health status changed: ``status.health.lastTransitionTime`` (Argo CD 2.14+) when
    present, so a change seen late (after a restart or an outage) is timed when it happened;
    else ``now``, the observation. Never later than ``now`` (a controller clock ahead of ours)."""
    return min(app.health_since, now) if app.health_since is not None else now


def degraded(tx: Tx, cfg: Config, app: App, *, pair: tuple[str, str], at: datetime) -> bool:
    """A Degraded transition at ``at`` fails the pair's latest deployment at or before it, when
    that deployment is at most ``failure_window`` older."""
    last = tx.deployment_before(*pair, at.timestamp())
    if last is None or not within(last.deployed_at, at, cfg.failure_window):
        log.info("argocd.degraded_unattributed", app=app.name)
        return False
    return tx.add_failure(
        natural_key=keys.degraded_key(app.uid, at.timestamp()),
        service=pair[0],
        environment=pair[1],
        reason=FailureReason.DEGRADED,
        started_at=at.timestamp(),
        deployment_id=last.id,
        detail=f"{app.name} turned Degraded",
    )


def restore(tx: Tx, pair: tuple[str, str], reason: FailureReason, at: float) -> int:
    """Restore the pair's open failures of ``reason`` at ``at`` (never before one started), by the
    pair's latest deployment when it came after the failure; how many."""
    n = 0
    last = tx.last_deployment(*pair)
    for f in tx.open_failures(*pair, reason):
        by = last.id if last is not None and last.deployed_at.timestamp() > f.started_at.timestamp() else None
        tx.restore_failure(f.id, max(at, f.started_at.timestamp()), by)
        n += 1
    return n
