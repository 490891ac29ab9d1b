# SPDX-License-Identifier: Apache-2.0
"""The ingesters' own state: cursors, the GitOps pair state, the GitHub answer cache, the inputs
skipped as unusable (counted once each) and the webhook events received."""

from __future__ import annotations

import time

from exporter.model import Skip
from exporter.store.base import Queries

__all__ = [
    "WEBHOOK_EVENTS_PRUNED_PER_INSERT",
    "WEBHOOK_EVENT_RETENTION_SECONDS",
    "BookkeepingReads",
    "BookkeepingWrites",
]

# a webhook event is kept to tell a replay from a new event: Argo CD's notifications controller
# retries within minutes, so a week is far past any replay, and the table stays a week of events
WEBHOOK_EVENT_RETENTION_SECONDS = 7 * 86400
# each insert prunes at most this many expired events, oldest first, through the age index: the
# insert's cost stays bounded, and a table grown before pruning existed drains 100 rows at a time
WEBHOOK_EVENTS_PRUNED_PER_INSERT = 100


class BookkeepingReads(Queries):
    def cursor(self, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def gitops_state(self, repo: str) -> dict[tuple[str, str], str]:
        rows = self.conn.execute("SELECT service, environment, value FROM gitops_state WHERE repo = ?", (repo,))
        return {(s, e): v for s, e, v in rows}

    def cache_get(self, key: str) -> tuple[str | None, str] | None:
        """A cached GitHub answer: (etag, body), or ``None``."""
        row = self.conn.execute("SELECT etag, body FROM github_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], str(row[1]))

    def unmatched_counts(self) -> dict[tuple[str, str], int]:
        rows = self.conn.execute("SELECT source, reason, COUNT(*) FROM unmatched GROUP BY source, reason")
        return {(s, r): n for s, r, n in rows}


class BookkeepingWrites(Queries):
    def set_cursor(self, name: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (name, value, time.time()),
        )

    def set_gitops_state(self, repo: str, state: dict[tuple[str, str], str]) -> None:
        self.conn.execute("DELETE FROM gitops_state WHERE repo = ?", (repo,))
        self.conn.executemany(
            "INSERT INTO gitops_state (repo, service, environment, value) VALUES (?, ?, ?, ?)",
            [(repo, s, e, v) for (s, e), v in state.items()],
        )

    def cache_put(self, key: str, etag: str | None, body: str) -> None:
        self.conn.execute(
            "INSERT INTO github_cache (key, etag, body, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET etag = excluded.etag, body = excluded.body, "
            "updated_at = excluded.updated_at",
            (key, etag, body, time.time()),
        )

    def record_skip(self, skip: Skip) -> bool:
        """Count an unusable input once per natural key, however often it is re-read."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO unmatched (source, reason, key, detail, first_seen) VALUES (?,?,?,?,?)",
            (skip.source, skip.reason, skip.key, skip.detail, time.time()),
        )
        return cur.rowcount > 0

    def add_webhook_event(self, source: str, key: str, body: str, *, now: float | None = None) -> bool:
        """Record an event once (``False`` for a replay), and prune events past the retention
        (``now``: the receiving time, the clock's unless a test gives one)."""
        now = time.time() if now is None else now
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO webhook_events (source, key, received_at, body) VALUES (?,?,?,?)",
            (source, key, now, body),
        )
        new = cur.rowcount > 0
        self.conn.execute(
            "DELETE FROM webhook_events WHERE (source, key) IN (SELECT source, key FROM webhook_events "
            "WHERE received_at < ? ORDER BY received_at LIMIT ?)",
            (now - WEBHOOK_EVENT_RETENTION_SECONDS, WEBHOOK_EVENTS_PRUNED_PER_INSERT),
        )
        return new
