# SPDX-License-Identifier: Apache-2.0
"""Rollbacks: a deployment that goes back to an earlier version marks the one it replaced as failed."""

from __future__ import annotations

from exporter.core.correlate import Transition, rollback_kind
from exporter.keys import rollback_key
from exporter.model import Deployment, FailureReason
from exporter.settings import Config
from exporter.store import Tx

__all__ = ["record_rollback"]


def record_rollback(tx: Tx, cfg: Config, prev: Deployment, t: Transition, dep_id: int) -> bool:
    """Mark ``prev`` failed and ``dep_id`` rework when the transition is a rollback (idempotent)."""
    kind = rollback_kind(t, cfg.revert_pattern, cfg.rollback_min_age)
    if kind is None:
        return False
    tx.add_failure(
        natural_key=rollback_key(prev.id),
        service=prev.service,
        environment=prev.environment,
        reason=FailureReason.ROLLBACK,
        started_at=prev.deployed_at.timestamp(),
        deployment_id=prev.id,
        restored_at=t.deployed_at.timestamp(),
        restored_by=dep_id,
        detail=kind.value,
    )
    tx.mark_rework(dep_id)
    return True
