# SPDX-License-Identifier: Apache-2.0
"""The rollback rule for Argo CD without a GitOps repository: judged from its history alone.

Split from ``ingest.argocd``: with a GitOps repository, rollbacks are decided by git ancestry
(``ingest.gitops``); without one there is no ancestry to ask, and Argo CD's own history is the
only evidence of a return to an earlier version (what ``argocd app rollback`` records).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from exporter import keys
from exporter.core.correlate import Transition, rollback_kind
from exporter.model import FailureReason
from exporter.settings import Config
from exporter.store import Tx

if TYPE_CHECKING:  # annotations only: the kubernetes client loads with the watch, not with this module
    from exporter.sources.argocd.apps import App, HistoryEntry

__all__ = ["EARLIER_REVISION", "history_rollback"]

log = structlog.get_logger(__name__)

EARLIER_REVISION = "earlier_history_revision"  # the detail of a rollback judged from Argo CD's history alone


def history_rollback(tx: Tx, cfg: Config, app: App, *, entry: HistoryEntry, revision: str, dep_id: int) -> bool:
    """A history entry whose revision differs from the previous entry's and equals an older
    entry's is a return to an earlier version: the previous entry's deployment failed, this one
    (``dep_id``) is rework, under the same age guard as every rollback (``rollback_min_age``).
    True when it recorded one."""
    earlier = tx.argocd_history_before(app.uid, entry.id)
    if not earlier or earlier[0][1] in (None, revision) or earlier[0][2] is None:
        return False
    if revision not in {rev for _, rev, _ in earlier[1:]}:
        return False
    prev = tx.deployment(earlier[0][2])
    if prev is None or prev.id == dep_id:
        return False
    guard = Transition(prev.version, prev.deployed_at, revision, entry.time, "", is_ancestor_of_previous=True)
    if rollback_kind(guard, cfg.revert_pattern, cfg.rollback_min_age) is None:
        log.info("argocd.rollback_too_soon", app=app.name, history_id=entry.id, revision=revision)
        return False
    tx.add_failure(
        natural_key=keys.rollback_key(prev.id),
        service=prev.service,
        environment=prev.environment,
        reason=FailureReason.ROLLBACK,
        started_at=prev.deployed_at.timestamp(),
        deployment_id=prev.id,
        restored_at=max(entry.time.timestamp(), prev.deployed_at.timestamp()),
        restored_by=dep_id,
        detail=EARLIER_REVISION,
    )
    tx.mark_rework(dep_id)
    log.info("argocd.rollback", app=app.name, history_id=entry.id, revision=revision, failed=prev.id)
    return True
