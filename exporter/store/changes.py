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
import sqlite3
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

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


def insert(conn: sqlite3.Connection, rows: Sequence[ChangeRow]) -> int:
    """Insert the changes not yet attributed to their pair; returns how many were new.

    The common case is one ``executemany``. Only when some row was ignored (a duplicate, or very
    rarely a key shared with another change) are the rows looked up one by one."""
    keyed = [(change_key(r[0], r[1], r[2]), *r) for r in rows]
    before = conn.total_changes
    conn.executemany(_INSERT, keyed)
    if conn.total_changes - before < len(keyed):
        for row in keyed:
            _settle(conn, row)
    return conn.total_changes - before


def _settle(conn: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """Make sure the change of ``row`` is stored once: found on its probe sequence, or inserted at
    the first free key of it."""
    first = int(row[0])
    for attempt in range(MAX_PROBES):
        key = probe(first, attempt)
        found = conn.execute("SELECT service, environment, sha FROM changes WHERE key = ?", (key,)).fetchone()
        if found is None:
            conn.execute(_INSERT, (key, *row[1:]))
            return
        if tuple(found) == row[1:4]:
            return
    raise sqlite3.IntegrityError(f"no free change key after {MAX_PROBES} probes for {row[1:4]}")
