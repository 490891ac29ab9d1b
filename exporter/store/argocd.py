# SPDX-License-Identifier: Apache-2.0
"""What the store keeps of Argo CD: applications, their history entries (each the deployment it
became), sync operations, health transitions and history gaps."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.store.base import Queries

__all__ = ["ArgoApp", "ArgoReads", "ArgoWrites"]


@dataclass(frozen=True, slots=True)
class ArgoApp:
    uid: str
    name: str
    service: str
    environment: str
    max_history_id: int | None
    health: str | None
    healthy_since: float | None
    sync_failing: bool
    deleted: bool


class ArgoReads(Queries):
    def argocd_app(self, uid: str) -> ArgoApp | None:
        row = self.conn.execute(
            "SELECT uid, name, service, environment, max_history_id, health, healthy_since, sync_failing, deleted "
            "FROM argocd_apps WHERE uid = ?",
            (uid,),
        ).fetchone()
        if row is None:
            return None
        return ArgoApp(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), bool(row[8]))

    def argocd_live(self) -> dict[tuple[str, str], tuple[bool, bool]]:
        """(sync_failing, degraded) per pair over its apps that still exist."""
        rows = self.conn.execute(
            "SELECT service, environment, MAX(sync_failing), MAX(health = 'Degraded') FROM argocd_apps "
            "WHERE deleted = 0 GROUP BY service, environment"
        )
        return {(s, e): (bool(f), bool(d)) for s, e, f, d in rows}

    def argocd_live_uids(self, namespace: str | None) -> list[str]:
        """The uids of stored apps not known to be gone, in ``namespace`` (``None``: every namespace)."""
        if namespace is None:
            rows = self.conn.execute("SELECT uid FROM argocd_apps WHERE deleted = 0 ORDER BY uid")
        else:
            rows = self.conn.execute(
                "SELECT uid FROM argocd_apps WHERE deleted = 0 AND namespace = ? ORDER BY uid", (namespace,)
            )
        return [str(r[0]) for r in rows]

    def argocd_history_before(self, uid: str, history_id: int) -> list[tuple[int, str | None, int | None]]:
        """(history id, revision, deployment id) of the app's stored entries before ``history_id``,
        newest first: every entry ever seen, also those Argo CD has trimmed since."""
        rows = self.conn.execute(
            "SELECT history_id, revision, deployment_id FROM argocd_history WHERE uid = ? AND history_id < ? "
            "ORDER BY history_id DESC",
            (uid, history_id),
        )
        return [(int(h), r, d) for h, r, d in rows]

    def argocd_counts(self) -> dict[str, int]:
        """Persisted totals behind self-metrics, so they never decrease across restarts."""
        gaps = self.conn.execute("SELECT COALESCE(SUM(to_id - from_id + 1), 0) FROM argocd_gaps").fetchone()[0]
        hooks = self.conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0]
        ops = self.conn.execute("SELECT COUNT(*) FROM argocd_operations").fetchone()[0]
        return {"history_gaps": int(gaps), "webhook_events": int(hooks), "operations": int(ops)}

    def argocd_operation_known(self, uid: str, started_at: float) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM argocd_operations WHERE uid = ? AND started_at = ?", (uid, started_at)
        ).fetchone()
        return row is not None


class ArgoWrites(Queries):
    """Argo CD writes, each idempotent on the entry's natural key."""

    def upsert_argocd_app(self, a: ArgoApp, namespace: str) -> None:
        self.conn.execute(
            "INSERT INTO argocd_apps (uid, name, namespace, service, environment, max_history_id, health, "
            "healthy_since, sync_failing, deleted, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (uid) DO UPDATE SET name = excluded.name, namespace = excluded.namespace, "
            "service = excluded.service, environment = excluded.environment, "
            "max_history_id = excluded.max_history_id, health = excluded.health, "
            "healthy_since = excluded.healthy_since, sync_failing = excluded.sync_failing, "
            "deleted = excluded.deleted, updated_at = excluded.updated_at",
            (a.uid, a.name, namespace, a.service, a.environment, a.max_history_id, a.health, a.healthy_since,
             int(a.sync_failing), int(a.deleted), time.time()),
        )  # fmt: skip

    def mark_argocd_app_deleted(self, uid: str) -> bool:
        cur = self.conn.execute("UPDATE argocd_apps SET deleted = 1 WHERE uid = ? AND deleted = 0", (uid,))
        return cur.rowcount > 0

    def restore_app_failures(self, prefixes: Sequence[str], at: float, *, note: str) -> int:
        """Restore the open failures whose natural key starts with one of ``prefixes`` (one app's
        own failures) at ``at`` (never before a failure's start), by no deployment, with ``note``
        appended to their detail so that ``explain`` says how they ended."""
        n = 0
        for prefix in prefixes:
            cur = self.conn.execute(
                "UPDATE failures SET restored_at = MAX(started_at, ?), restored_by = NULL, "
                "detail = CASE WHEN detail = '' THEN ? ELSE detail || '; ' || ? END "
                "WHERE restored_at IS NULL AND substr(natural_key, 1, ?) = ?",
                (at, note, note, len(prefix), prefix),
            )
            n += cur.rowcount
        return n

    def has_argocd_history(self, uid: str, history_id: int) -> bool:
        row = self.conn.execute(
            "SELECT 1 FROM argocd_history WHERE uid = ? AND history_id = ?", (uid, history_id)
        ).fetchone()
        return row is not None

    def add_argocd_history(
        self,
        uid: str,
        history_id: int,
        app_name: str,
        pair: tuple[str, str],
        revision: str | None,
        started_at: float | None,
        deployed_at: float,
        deployment_id: int | None,
    ) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO argocd_history (uid, history_id, app_name, service, environment, revision, "
            "started_at, deployed_at, deployment_id) VALUES (?,?,?,?,?,?,?,?,?)",
            (uid, history_id, app_name, *pair, revision, started_at, deployed_at, deployment_id),
        )
        return cur.rowcount > 0

    def argocd_history_deployment(self, uid: str, started_at: float) -> int | None:
        """The deployment of the history entry whose ``deployStartedAt`` equals an operation's ``startedAt``."""
        row = self.conn.execute(
            "SELECT deployment_id FROM argocd_history WHERE uid = ? AND started_at = ?", (uid, started_at)
        ).fetchone()
        return None if row is None else row[0]

    def add_argocd_operation(
        self,
        uid: str,
        app_name: str,
        pair: tuple[str, str],
        started_at: float,
        phase: str,
        finished_at: float | None,
        retry_count: int,
        revision: str | None,
        message: str,
    ) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO argocd_operations (uid, started_at, app_name, service, environment, phase, "
            "finished_at, retry_count, revision, message) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (uid, started_at, app_name, *pair, phase, finished_at, retry_count, revision, message),
        )
        return cur.rowcount > 0

    def add_argocd_health(self, uid: str, at: float, status: str, pair: tuple[str, str]) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO argocd_health (uid, at, status, service, environment) VALUES (?,?,?,?,?)",
            (uid, at, status, *pair),
        )

    def add_argocd_gap(self, uid: str, from_id: int, to_id: int) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO argocd_gaps (uid, from_id, to_id) VALUES (?,?,?)", (uid, from_id, to_id)
        )
        return cur.rowcount > 0
