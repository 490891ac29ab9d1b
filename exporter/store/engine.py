# SPDX-License-Identifier: Apache-2.0
"""The SQLite engine: the only module that knows which database the store is.

WAL, ``synchronous=FULL``, one writer connection behind a lock, and a small pool of reader
connections lent per read (``store.pool``). Writes happen only inside ``transaction()``, which
holds the writer lock and runs ``BEGIN IMMEDIATE``: a batch of source data and the cursor that says
how far it got commit together or not at all, which is what makes ``kill -9`` mid-ingest safe.
Nested on the same thread, a transaction is a savepoint inside the outer one.

Every driver error that is the environment's (a full disk, damaged pages, a read-only file, a
lock) leaves the engine as a ``StoreError`` whose message says what to do and whose ``kind`` tells
those faults apart; errors that are bugs (a constraint, bad SQL) stay the driver's. Cleaning up
after an error (a rollback, the cache given back after bulk writes) never hides that error.

The aggregate modules speak SQL through ``store.connection.Connection`` and never import a driver.
A second engine (``engine_postgres.py``) must provide the same class face as ``SQLiteEngine``:

- ``reader()`` (a connection for reads outside a transaction: each statement runs on a pooled
  connection, its rows fetched before the connection goes back), ``transaction()`` and
  ``read_snapshot()`` yielding a ``Connection``, ``bulk_writes()``, ``checkpoint()``, ``close()``,
  ``schema_version``;
- the migrations in its own dialect, applied in order and recorded (SQLite: ``user_version``);
- rows as tuples, and its driver's errors mapped to ``StoreError`` (with its ``kind``) where this
  one maps them;
- ``?`` placeholders: the aggregate modules' statements use SQLite's ``?`` (and ``:name``) style
  for now, so a second engine translates them (or they move to a neutral style then), along with
  the few SQLite spellings they contain (``INSERT OR IGNORE``, ``MAX(a, b)``, ``json_each``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from exporter.errors import ErrorKind, StoreError
from exporter.store.connection import Connection, Params, Row
from exporter.store.lock import WriterLock
from exporter.store.migrations import MIGRATIONS
from exporter.store.pool import READERS, ReaderPool

__all__ = ["BULK_CACHE_MB", "SQLiteEngine"]

log = structlog.get_logger(__name__)

# the random-key indexes a first ingest writes (natural keys, change keys, pairs) are ≈ 38 MB at
# 200k deployments; a cache that holds them, and no more: it is most of an ingest's peak memory
BULK_CACHE_MB = 48
DEFAULT_CACHE_PAGES = -2000  # SQLite's default: 2 MB per connection
BULK_CHECKPOINT_PAGES = 65536  # 256 MiB of WAL between checkpoints while a poll writes
DEFAULT_CHECKPOINT_PAGES = 1000  # SQLite's default

_KINDS = {
    sqlite3.SQLITE_FULL: ErrorKind.STORE_FULL,
    sqlite3.SQLITE_CORRUPT: ErrorKind.STORE_CORRUPT,
    sqlite3.SQLITE_NOTADB: ErrorKind.STORE_CORRUPT,
    sqlite3.SQLITE_READONLY: ErrorKind.STORE_READONLY,
}
# the driver's errors that are bugs in the code, not faults of the environment: left as they are
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _fault(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    """The ``StoreError`` for a driver error: what happened, to which file, and what to do."""
    code = getattr(exc, "sqlite_errorcode", None)
    kind = _KINDS.get(code & 0xFF, ErrorKind.STORE) if isinstance(code, int) else ErrorKind.STORE
    if kind is ErrorKind.STORE and _unwritable(path) is not None:
        kind = ErrorKind.STORE_READONLY  # "unable to open database file" says nothing of why
    if kind is ErrorKind.STORE_FULL:
        return StoreError(
            f"store {path}: the disk is full ({doing}: {exc}); the write was rolled back and is retried "
            "on the next run: free space or grow the volume",
            kind=kind,
        )
    if kind is ErrorKind.STORE_CORRUPT:
        return StoreError(
            f"store {path} is corrupt ({doing}: {exc}): restore it from a backup, or stop the exporter and "
            "move the file (and its -wal and -shm files) aside: the exporter re-ingests its history from "
            "the sources into a new store",
            kind=kind,
        )
    if kind is ErrorKind.STORE_READONLY:
        return _readonly(path, f"{doing}: {exc}")
    return StoreError(f"store {path}: {doing}: {exc}")


def _translated(exc: sqlite3.Error, path: Path, doing: str) -> StoreError | None:
    """``_fault`` for an error of the environment; ``None`` for a bug, which stays as it is."""
    return None if isinstance(exc, _BUGS) else _fault(exc, path, doing)


def _readonly(path: Path, detail: str) -> StoreError:
    where = _unwritable(path) or path
    return StoreError(
        f"store {path} is read-only: {where} is not writable ({detail}); the exporter writes the store "
        "and its -wal and -shm files beside it, so the file, its directory and the filesystem must be writable",
        kind=ErrorKind.STORE_READONLY,
    )


def _unwritable(path: Path) -> Path | None:
    """The first of the store's files and its directory that exists and cannot be written (a
    read-only filesystem or an immutable file stops even root), or ``None``."""
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), path.parent):
        if p.exists() and not os.access(p, os.W_OK):
            return p
    return None


def _prepare_directory(path: Path) -> None:
    """The store's directory, created if missing; a clear error when it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        blocker = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), path.parent)
        raise StoreError(f"cannot open store {path}: its parent {blocker} is not a directory") from exc
    except OSError as exc:
        if not os.access(next(p for p in path.parents if p.exists()), os.W_OK):
            raise _readonly(path, f"cannot create {path.parent}: {exc.strerror}") from exc
        raise StoreError(f"cannot create the store's directory {path.parent}: {exc.strerror}") from exc
    if _unwritable(path) is not None:
        raise _readonly(path, "checked at open")


def _writer_lock(path: Path) -> WriterLock:
    try:
        return WriterLock(path)
    except OSError as exc:
        if _unwritable(path) is not None:
            raise _readonly(path, f"cannot create its lock file: {exc.strerror}") from exc
        raise StoreError(f"store {path}: cannot create its lock file: {exc.strerror}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _fault(exc, path, "cannot open") from exc
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
    except sqlite3.Error as exc:
        conn.close()
        raise _fault(exc, path, "cannot open") from exc
    return conn


class _Rows:
    """A statement's rows, fetched before its connection went back to the pool."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int = 1, /) -> list[Any]:
        chunk = self._rows[self._next : self._next + size]
        self._next += len(chunk)
        return chunk

    def fetchall(self) -> list[Any]:
        rest = self._rows[self._next :]
        self._next = len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        while (row := self.fetchone()) is not None:
            yield row


class _PooledReads:
    """The ``Connection`` for reads outside a transaction: each statement runs on a connection the
    pool lends for that statement alone, or, inside ``read_snapshot``, on the snapshot's own."""

    IntegrityError = sqlite3.IntegrityError

    def __init__(self, pool: ReaderPool[sqlite3.Connection], path: Path) -> None:
        self._pool = pool
        self._path = path

    def execute(self, sql: str, parameters: Params = (), /) -> Any:
        held = self._pool.held()
        if held is not None:
            return held.execute(sql, parameters)  # inside a snapshot, which maps its errors
        with self._pool.lend() as conn:
            try:
                cur = conn.execute(sql, parameters)
                return _Rows(cur.fetchall(), cur.rowcount)
            except sqlite3.Error as exc:
                fault = _translated(exc, self._path, "read failed")
                if fault is None:
                    raise
                raise fault from exc

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> Any:
        with self._pool.lend() as conn:
            try:
                cur = conn.executemany(sql, parameters)
                return _Rows(cur.fetchall(), cur.rowcount)
            except sqlite3.Error as exc:
                fault = _translated(exc, self._path, "read failed")
                if fault is None:
                    raise
                raise fault from exc


class SQLiteEngine:
    """One database file: its connections, schema and transactions."""

    def __init__(self, path: Path, *, exclusive: bool = False, readers: int = READERS) -> None:
        """``exclusive``: this process is the store's writer (a daemon); refuse to open while
        another process is (``store.lock``)."""
        self.path = path
        _prepare_directory(path)
        self._lock = _writer_lock(path) if exclusive else None
        try:
            self._writer = _connect(path)
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        self._write_lock = threading.RLock()
        self._depth = 0  # nesting of transaction() on the thread holding the write lock
        self._pool: ReaderPool[sqlite3.Connection] = ReaderPool(
            connect=lambda: _connect(path), close=sqlite3.Connection.close, size=readers
        )
        self._reads = _PooledReads(self._pool, path)
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    @property
    def readers(self) -> ReaderPool[sqlite3.Connection]:
        """The pool of reader connections (its size and how many are open, for tests and docs)."""
        return self._pool

    def reader(self) -> Connection:
        """Reads outside a transaction, each statement on a pooled connection (``_PooledReads``)."""
        return self._reads

    def _migrate(self) -> None:
        with self._write_lock:
            try:
                version = int(self._writer.execute("PRAGMA user_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise _fault(exc, self.path, "cannot read the schema version") from exc
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
                    self._rollback()
                    raise _fault(exc, self.path, f"migration {number} failed") from exc

    @property
    def schema_version(self) -> int:
        return int(self._reads.execute("PRAGMA user_version").fetchone()[0])

    def _rollback(self) -> None:
        """Roll back the writer's open transaction, if SQLite has not already (it does on a full
        disk or an I/O error): a failure here is logged, never raised over the error that led here."""
        if not self._writer.in_transaction:
            return
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("store.rollback_failed", path=str(self.path), error=str(exc))

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
                raise _fault(exc, self.path, "cannot begin a write") from exc
            self._depth += 1
            try:
                yield self._writer
            except sqlite3.Error as exc:
                self._rollback()
                fault = _translated(exc, self.path, "write failed")
                if fault is None:
                    raise
                raise fault from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth -= 1
            try:
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()  # a COMMIT that failed (a full disk) may leave the transaction open
                raise _fault(exc, self.path, "commit failed") from exc

    def _savepoint(self) -> Iterator[Connection]:
        self._writer.execute("SAVEPOINT nested")
        self._depth += 1
        try:
            yield self._writer
        except BaseException:
            if self._writer.in_transaction:  # not rolled back whole by SQLite itself (a full disk)
                try:
                    self._writer.execute("ROLLBACK TO nested")
                    self._writer.execute("RELEASE nested")
                except sqlite3.Error as exc:
                    log.warning("store.rollback_failed", path=str(self.path), error=str(exc))
            raise
        finally:
            self._depth -= 1
        self._writer.execute("RELEASE nested")

    @contextmanager
    def read_snapshot(self) -> Iterator[Connection]:
        """Several reads that see one state of the database, on one pooled connection lent for
        the block; ``reader()`` on this thread reads through it meanwhile."""
        with self._pool.lend() as conn:
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise _fault(exc, self.path, "cannot begin a read") from exc
            try:
                yield conn
            except sqlite3.Error as exc:
                fault = _translated(exc, self.path, "read failed")
                if fault is None:
                    raise
                raise fault from exc
            finally:
                if conn.in_transaction:
                    try:
                        conn.execute("COMMIT")
                    except sqlite3.Error as exc:
                        log.warning("store.read_end_failed", path=str(self.path), error=str(exc))

    @contextmanager
    def bulk_writes(self, cache_mb: int = BULK_CACHE_MB) -> Iterator[None]:
        """A larger page cache for the writer while many rows go in (a first ingest inserts into
        three B-trees at random keys, and misses the default 2 MB cache on most of them); given
        back afterwards, so a daemon at steady state does not keep it. Giving it back after a
        failed write only logs its own failure: the write's error is the one that matters."""
        with self._write_lock:
            try:
                self._writer.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
                self._writer.execute(f"PRAGMA wal_autocheckpoint={BULK_CHECKPOINT_PAGES}")
            except sqlite3.Error as exc:
                raise _fault(exc, self.path, "cannot prepare bulk writes") from exc
        try:
            yield
        except BaseException:
            self._end_bulk(quiet=True)
            raise
        self._end_bulk(quiet=False)

    def _end_bulk(self, *, quiet: bool) -> None:
        with self._write_lock:
            try:
                self._writer.execute(f"PRAGMA cache_size={DEFAULT_CACHE_PAGES}")
                self._writer.execute("PRAGMA shrink_memory")
                self._writer.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_CHECKPOINT_PAGES}")
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                if not quiet:
                    raise _fault(exc, self.path, "checkpoint after bulk writes failed") from exc
                log.warning("store.bulk_end_failed", path=str(self.path), error=str(exc))

    def checkpoint(self) -> None:
        """Fold the WAL into the main file so a stopped daemon leaves one self-contained file."""
        with self._write_lock:
            try:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                raise _fault(exc, self.path, "checkpoint failed") from exc

    def close(self) -> None:
        self._pool.close()
        with self._write_lock:
            self._writer.close()
        if self._lock is not None:
            self._lock.release()  # last: the next writer may start once the database is closed
