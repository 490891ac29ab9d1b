# SPDX-License-Identifier: Apache-2.0
"""Restores of failed attempts: how a failed sync or a failed GitHub deployment ends."""

from __future__ import annotations

from exporter.model import FailureReason
from exporter.store import Tx

__all__ = ["restore_open"]


def restore_open(tx: Tx, pair: tuple[str, str], reason: FailureReason, until: float, at: float, by: int | None) -> int:
    """Restore the pair's open failures of ``reason`` that started at or before ``until``: at ``at``,
    by deployment ``by``. How a failed attempt (a failed sync, a failed GitHub deployment) ends."""
    n = 0
    for f in tx.open_failures(*pair, reason):
        if f.started_at.timestamp() <= until:
            tx.restore_failure(f.id, at, by)
            n += 1
    return n
