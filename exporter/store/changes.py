# SPDX-License-Identifier: Apache-2.0
"""The changes table's dedup key: a change is attributed once per pair, to the first deployment
that delivered it.

Rows are stored in arrival order (a rowid table), so a bulk ingest appends to the table and to its
deployment index. Uniqueness of ``(service, environment, sha)`` rests on one narrow integer
column instead of a primary key on those three strings: an ingest inserts about 3.5 changes per
deployment at random places of whatever unique index there is, and a 16-byte entry keeps that
index a seventh of the size of the table it replaced as the clustered key.

The key is a 60-bit hash, so two different changes can share one. ``insert`` resolves that
exactly, as open addressing does: a row whose key is taken by a different change moves on to the
next key of its probe sequence until it finds itself (a duplicate) or a free key. Rows are never
deleted, so a probe sequence is never broken by a hole.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from exporter.model import Change, PullRequest, utc
from exporter.store.base import Queries
from exporter.store.connection import Connection

__all__ = ["KEY_BITS", "MAX_PROBES", "ChangeReads", "ChangeRow", "ChangeWrites", "change_key", "insert", "probe"]

KEY_BITS = 60  # within SQLite's signed 64-bit integers, with room for the probe steps
_MASK = (1 << KEY_BITS) - 1
_STEP = 0x9E3779B97F4A7  # odd, so the probe sequence visits every key before repeating
MAX_PROBES = 64  # 64 different changes on one key is corruption, not chance (p ≈ 2^-3800)

# (service, environment, sha, deployment id, author time, commit time, subject, pr checked,
#  pr number, pr first commit time, pr opened at, pr merged at)
ChangeRow = tuple[str, str, str, int, float, float, str, int, int | None, float | None, float | None, float | None]

_INSERT = (
    "INSERT OR IGNORE INTO changes (key, service, environment, sha, deployment_id, author_time, commit_time, "
    "subject, pr_checked, pr_number, pr_first_commit_time, pr_opened_at, pr_merged_at) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


@lru_cache(maxsize=4096)
def _pair_seed(service: str, environment: str) -> int:
    """A stable (process-independent) per-pair value mixed into the key, so the same commit
    delivered to dev, staging and prod does not probe three times."""
    return zlib.crc32(f"{service}\0{environment}".encode()) << (KEY_BITS - 32)


def change_key(service: str, environment: str, sha: str) -> int:
    """The first key of a change. A commit SHA is already uniformly distributed, so its first 60
    bits are used as they are; anything else (never from git or GitHub) is hashed."""
    try:
        prefix = int(sha[:15], 16) if len(sha) >= 15 else _hashed(sha)
    except ValueError:
        prefix = _hashed(sha)
    return prefix ^ _pair_seed(service, environment)


def _hashed(sha: str) -> int:
    return int.from_bytes(hashlib.blake2b(sha.encode(), digest_size=8).digest(), "big") & _MASK


def probe(key: int, attempt: int) -> int:
    """The ``attempt``-th key of the probe sequence starting at ``key``."""
    return (key + attempt * _STEP) & _MASK


def insert(conn: Connection, rows: Sequence[ChangeRow]) -> int:
    """Insert the changes not yet attributed to their pair; returns how many were new.

    The common case is one ``executemany``. Only when some row was ignored (a duplicate, or very
    rarely a key shared with another change) are the rows looked up one by one."""
    keyed = [(change_key(r[0], r[1], r[2]), *r) for r in rows]
    inserted = conn.executemany(_INSERT, keyed).rowcount
    if inserted < len(keyed):
        for row in keyed:
            inserted += _settle(conn, row)
    return inserted


def _settle(conn: Connection, row: tuple[Any, ...]) -> int:
    """Make sure the change of ``row`` is stored once: found on its probe sequence, or inserted at
    the first free key of it. Returns how many rows it inserted (0 or 1)."""
    first = int(row[0])
    for attempt in range(MAX_PROBES):
        key = probe(first, attempt)
        found = conn.execute("SELECT service, environment, sha FROM changes WHERE key = ?", (key,)).fetchone()
        if found is None:
            return conn.execute(_INSERT, (key, *row[1:])).rowcount
        if tuple(found) == row[1:4]:
            return 0
    raise conn.IntegrityError(f"no free change key after {MAX_PROBES} probes for {row[1:4]}")


class ChangeReads(Queries):
    def changes_of(self, deployment_id: int) -> list[Change]:
        rows = self.conn.execute(
            "SELECT sha, author_time, commit_time, subject, pr_checked, pr_number, pr_first_commit_time, "
            "pr_opened_at, pr_merged_at FROM changes WHERE deployment_id = ? ORDER BY commit_time, sha",
            (deployment_id,),
        )
        out = []
        for sha, at, ct, subject, checked, number, first, opened, merged in rows:
            pr = None
            if number is not None and first is not None:
                pr = PullRequest(int(number), utc(first), utc(opened if opened is not None else first), utc(merged))
            out.append(Change(sha, utc(at), utc(ct), subject, bool(checked), pr))
        return out

    def changes_without_pull_request(self) -> int:
        """Changes whose pull request was looked up and not found (direct pushes)."""
        row = self.conn.execute("SELECT COUNT(*) FROM changes WHERE pr_checked = 1 AND pr_number IS NULL").fetchone()
        return int(row[0])


class ChangeWrites(Queries):
    def add_change_rows(
        self, deployment_id: int, service: str, environment: str, rows: Iterable[tuple[str, float, float, str]]
    ) -> int:
        """``add_changes`` for ``(sha, author time, commit time, subject)`` rows of a local commit
        graph (no pull request looked for): the bulk path of an ingest."""
        return insert(
            self.conn,
            [
                (service, environment, sha, deployment_id, at, ct, subject, 0, None, None, None, None)
                for sha, at, ct, subject in rows
            ],
        )

    def add_changes(self, deployment_id: int, service: str, environment: str, items: Iterable[Change]) -> int:
        """Attribute changes not yet delivered to this pair (to the first deployment that delivers
        them); returns how many were new."""
        return insert(
            self.conn,
            [
                (
                    service,
                    environment,
                    c.sha,
                    deployment_id,
                    c.author_time.timestamp(),
                    c.commit_time.timestamp(),
                    c.subject,
                    int(c.pr_checked),
                    c.pull_request.number if c.pull_request else None,
                    c.pull_request.first_commit_time.timestamp() if c.pull_request else None,
                    c.pull_request.opened_at.timestamp() if c.pull_request else None,
                    c.pull_request.merged_at.timestamp() if c.pull_request else None,
                )
                for c in items
            ],
        )
