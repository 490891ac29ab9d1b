# SPDX-License-Identifier: Apache-2.0
"""The SQLite engine: the only module that knows which database the store is.

WAL, ``synchronous=FULL``, one writer connection behind a lock, and one reader connection per
thread. Writes happen only inside ``transaction()``, which holds the writer lock and runs ``BEGIN
IMMEDIATE``: a batch of source data and the cursor that says how far it got commit together or not
at all, which is what makes ``kill -9`` mid-ingest safe. Nested on the same thread, a transaction
is a savepoint inside the outer one.

The aggregate modules speak SQL through ``store.connection.Connection`` and never import a driver.
A second engine (``engine_postgres.py``) must provide the same class face as ``SQLiteEngine``:

- ``reader()`` (a connection for the calling thread), ``transaction()`` and ``read_snapshot()``
  yielding a ``Connection``, ``bulk_writes()``, ``checkpoint()``, ``close()``, ``schema_version``;
- the migrations in its own dialect, applied in order and recorded (SQLite: ``user_version``);
- rows as tuples, and its driver's errors mapped to ``StoreError`` where this one maps them;
- ``?`` placeholders: the aggregate modules' statements use SQLite's ``?`` (and ``:name``) style
  for now, so a second engine translates them (or they move to a neutral style then), along with
  the few SQLite spellings they contain (``INSERT OR IGNORE``, ``MAX(a, b)``, ``json_each``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from exporter.errors import StoreError
from exporter.store.connection import Connection
from exporter.store.migrations import MIGRATIONS

__all__ = ["BULK_CACHE_MB", "SQLiteEngine"]

log = structlog.get_logger(__name__)

# the random-key indexes a first ingest writes (natural keys, change keys, pairs) are ≈ 38 MB at
# 200k deployments; a cache that holds them, and no more: it is most of an ingest's peak memory
BULK_CACHE_MB = 48
DEFAULT_CACHE_PAGES = -2000  # SQLite's default: 2 MB per connection
BULK_CHECKPOINT_PAGES = 65536  # 256 MiB of WAL between checkpoints while a poll writes
DEFAULT_CHECKPOINT_PAGES = 1000  # SQLite's default


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open store {path}: {exc}") from exc
    return conn


class SQLiteEngine:
    """One database file: its connections, schema and transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path)
        self._write_lock = threading.RLock()
        self._depth = 0  # nesting of transaction() on the thread holding the write lock
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._migrate()

    def reader(self) -> Connection:
        """This thread's own connection (created on first use), for reads outside a transaction."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _migrate(self) -> None:
        with self._write_lock:
            version = int(self._writer.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"store {self.path} has schema {version}, newer than this version knows ({len(MIGRATIONS)})"
                )
            if 0 < version < len(MIGRATIONS):  # an upgrade: some steps rewrite tables (seconds per million rows)
                log.info("store.migrating", path=str(self.path), schema=version, to=len(MIGRATIONS))
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                try:
                    if isinstance(step, str):
                        # executescript commits first; the version bump rides in the same script
                        script = f"BEGIN IMMEDIATE;\n{step}\nPRAGMA user_version = {number};\nCOMMIT;"
                        self._writer.executescript(script)
                    else:  # a step that needs Python (rows rewritten), in one transaction all the same
                        self._writer.execute("BEGIN IMMEDIATE")
                        step(self._writer)
                        self._writer.execute(f"PRAGMA user_version = {number}")
                        self._writer.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._writer.execute("ROLLBACK") if self._writer.in_transaction else None
                    raise StoreError(f"migration {number} failed on {self.path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return int(self.reader().execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction on the writer connection; nested on the same thread, a savepoint
        inside the outer one (a source's cache write during an ingest batch commits or rolls back
        with that batch)."""
        with self._write_lock:
            if self._depth:
                yield from self._savepoint()
                return
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot begin a write: {exc}") from exc
            self._depth += 1
            try:
                yield self._writer
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            finally:
                self._depth -= 1
            try:
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"commit failed: {exc}") from exc

    def _savepoint(self) -> Iterator[Connection]:
        self._writer.execute("SAVEPOINT nested")
        self._depth += 1
        try:
            yield self._writer
        except BaseException:
            self._writer.execute("ROLLBACK TO nested")
            self._writer.execute("RELEASE nested")
            raise
        finally:
            self._depth -= 1
        self._writer.execute("RELEASE nested")

    @contextmanager
    def read_snapshot(self) -> Iterator[Connection]:
        """Several reads on this thread's connection that see one state of the database."""
        conn = self.reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def bulk_writes(self, cache_mb: int = BULK_CACHE_MB) -> Iterator[None]:
        """A larger page cache for the writer while many rows go in (a first ingest inserts into
        three B-trees at random keys, and misses the default 2 MB cache on most of them); given
        back afterwards, so a daemon at steady state does not keep it."""
        with self._write_lock:
            self._writer.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
            self._writer.execute(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
        try:
            yield
        finally:
            with self._write_lock:
                self._writer.execute(f"PRAGMA cache_size={DEFAULT_CACHE_PAGES}")
                self._writer.execute("PRAGMA shrink_memory")
                self._writer.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_CHECKPOINT_PAGES}")
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def checkpoint(self) -> None:
        """Fold the WAL into the main file so a stopped daemon leaves one self-contained file."""
        with self._write_lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()
