# SPDX-License-Identifier: Apache-2.0
"""The failures table: rollbacks, failed syncs and deployments, degradations and incidents, each
with the deployment it is attributed to and when (and by which deployment) it was restored."""

from __future__ import annotations

from collections.abc import Sequence

from exporter.model import Failure, FailureReason, utc
from exporter.store.base import Queries, pair_filter
from exporter.store.connection import Row

__all__ = ["FAILURE_COLS", "FailureReads", "FailureWrites", "failure_of"]

FAILURE_COLS = "id, service, environment, reason, started_at, deployment_id, restored_at, restored_by, detail"


def failure_of(row: Row) -> Failure:
    """A ``FAILURE_COLS`` row as a model object."""
    return Failure(
        id=row[0],
        service=row[1],
        environment=row[2],
        reason=FailureReason(row[3]),
        started_at=utc(row[4]),
        deployment_id=row[5],
        restored_at=utc(row[6]) if row[6] is not None else None,
        restored_by=row[7],
        detail=row[8],
    )


class FailureReads(Queries):
    def failures_touching(self, deployment_ids: Sequence[int]) -> list[Failure]:
        """The failures attributed to, or restored by, any of these deployments (a page of
        ``/api/deployments``), through the two deployment indexes."""
        if not deployment_ids:
            return []
        marks = ",".join("?" * len(deployment_ids))
        sql = (
            f"SELECT {FAILURE_COLS} FROM failures WHERE deployment_id IN ({marks}) "  # noqa: S608
            f"OR restored_by IN ({marks}) ORDER BY started_at, id"
        )
        return [failure_of(r) for r in self.conn.execute(sql, (*deployment_ids, *deployment_ids))]

    def failures(self, service: str | None = None, environment: str | None = None) -> list[Failure]:
        where, args = pair_filter(service, environment)
        sql = f"SELECT {FAILURE_COLS} FROM failures{where} ORDER BY started_at, id"  # noqa: S608
        return [failure_of(r) for r in self.conn.execute(sql, args)]


class FailureWrites(Queries):
    """Failure writes, idempotent on their natural keys, and the open failures a restore closes."""

    def add_failure(
        self,
        *,
        natural_key: str,
        service: str,
        environment: str,
        reason: FailureReason,
        started_at: float,
        deployment_id: int | None,
        restored_at: float | None = None,
        restored_by: int | None = None,
        detail: str = "",
    ) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO failures (natural_key, service, environment, reason, deployment_id, started_at, "
            "restored_at, restored_by, detail) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                natural_key,
                service,
                environment,
                reason.value,
                deployment_id,
                started_at,
                restored_at,
                restored_by,
                detail,
            ),
        )
        return cur.rowcount > 0

    def upsert_incident(
        self,
        *,
        natural_key: str,
        service: str,
        environment: str,
        started_at: float,
        deployment_id: int | None,
        restored_at: float | None,
        detail: str,
    ) -> bool:
        """Insert an incident failure, or update when it was restored (closed) or reopened.

        The attribution (``deployment_id``) is decided once, when the incident is first seen; a
        later edit of the issue never moves it to another deployment. Returns True when new."""
        row = self.conn.execute("SELECT id FROM failures WHERE natural_key = ?", (natural_key,)).fetchone()
        if row is not None:
            self.conn.execute(
                "UPDATE failures SET restored_at = ?, started_at = ? WHERE id = ?", (restored_at, started_at, row[0])
            )
            return False
        self.add_failure(
            natural_key=natural_key,
            service=service,
            environment=environment,
            reason=FailureReason.INCIDENT,
            started_at=started_at,
            deployment_id=deployment_id,
            restored_at=restored_at,
            detail=detail,
        )
        return True

    def open_failures(self, service: str, environment: str, reason: FailureReason) -> list[Failure]:
        rows = self.conn.execute(
            f"SELECT {FAILURE_COLS} FROM failures WHERE service = ? AND environment = ? AND reason = ? "  # noqa: S608
            "AND restored_at IS NULL ORDER BY started_at, id",
            (service, environment, reason.value),
        )
        return [failure_of(r) for r in rows]

    def open_failure_pairs(self, reason: FailureReason) -> list[tuple[str, str]]:
        """The pairs with an open failure of ``reason``."""
        rows = self.conn.execute(
            "SELECT DISTINCT service, environment FROM failures WHERE reason = ? AND restored_at IS NULL "
            "ORDER BY service, environment",
            (reason.value,),
        )
        return [(str(a), str(b)) for a, b in rows]

    def restore_failure(self, failure_id: int, restored_at: float, restored_by: int | None) -> None:
        self.conn.execute(
            "UPDATE failures SET restored_at = ?, restored_by = ? WHERE id = ? AND restored_at IS NULL",
            (restored_at, restored_by, failure_id),
        )
