# SPDX-License-Identifier: Apache-2.0
"""An Argo CD Application that is gone: its live state stops counting, its open failures restore.

Split from ``ingest.argocd``: an app is gone either by a watched ``DELETED`` event or by missing
from a complete list of its scope (deleted while the exporter was not watching); both end here.
Its rows stay (they happened); only its live state and its own open failures change.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from exporter import keys
from exporter.store import Store

__all__ = ["DELETED", "forget_app"]

log = structlog.get_logger(__name__)

DELETED = "Deleted"  # the status of the health transition recorded when an app is gone


def forget_app(store: Store, uid: str, at: datetime, *, why: str) -> bool:
    """Mark the app ``uid`` deleted, record a ``Deleted`` health transition at ``at``, and restore
    its own open failures (failed syncs, degradations) at ``at``, in one transaction; logged once
    it has committed. False when it was already known to be gone (or never stored)."""
    with store.transaction() as tx:
        app = tx.argocd_app(uid)
        if app is None or app.deleted or not tx.mark_argocd_app_deleted(uid):
            return False
        pair = (app.service, app.environment)
        tx.add_argocd_health(uid, at.timestamp(), DELETED, pair)
        restored = tx.restore_app_failures(
            keys.argocd_failure_prefixes(uid), at.timestamp(), note=f"restored: application deleted ({why})"
        )
    log.info("argocd.app_deleted", app=app.name, uid=uid, why=why, restored_failures=restored)
    return True
