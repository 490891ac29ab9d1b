# SPDX-License-Identifier: Apache-2.0
"""The store's two faces: ``Store``, the database (reads on the calling thread's connection, and
``transaction()`` for writes), and ``Tx``, one write transaction. Both only compose the aggregate
query classes; the engine behind them holds the connections."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from exporter.model import PairKey, PairTotals
from exporter.store.argocd import ArgoApp, ArgoReads, ArgoWrites
from exporter.store.bookkeeping import BookkeepingReads, BookkeepingWrites
from exporter.store.candidates import CandidateReads
from exporter.store.changes import ChangeReads, ChangeWrites
from exporter.store.connection import Connection
from exporter.store.deployments import DeploymentReads, DeploymentWrites
from exporter.store.engine import BULK_CACHE_MB, SQLiteEngine
from exporter.store.failures import FailureReads, FailureWrites
from exporter.store.github import GitHubDeploymentRow, GitHubReads, GitHubWrites
from exporter.store.history import HistoryReads, KeptLeadTotals, LazyHistories
from exporter.store.pool import ReaderPool

__all__ = ["ArgoApp", "GitHubDeploymentRow", "LazyHistories", "Reads", "Store", "Tx"]


class Reads(
    DeploymentReads, ChangeReads, FailureReads, HistoryReads, ArgoReads, GitHubReads, BookkeepingReads
):  # fmt: skip
    """Queries shared by the writer's transaction (which must see its own rows) and by readers."""


class Tx(
    Reads, DeploymentWrites, ChangeWrites, FailureWrites, ArgoWrites, GitHubWrites, BookkeepingWrites, CandidateReads
):  # fmt: skip
    """One write transaction. Every write is an idempotent insert or upsert on a natural key."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> Connection:
        return self._conn


class Store(Reads):
    """The database file. ``transaction()`` for writes; plain methods read on a pooled connection,
    lent for one statement (any thread may read, and none keeps a connection)."""

    def __init__(self, path: Path, *, exclusive: bool = False) -> None:
        """``exclusive``: open as the store's one writer (a daemon), refused while another process
        is; readers (``report``, ``explain``, tests) leave it off."""
        self.path = path
        self._engine = SQLiteEngine(path, exclusive=exclusive)
        self._kept_totals = KeptLeadTotals()

    @property
    def conn(self) -> Connection:
        return self._engine.reader()

    @property
    def readers(self) -> ReaderPool[Any]:
        """The pool of reader connections: its size, and how many are open."""
        return self._engine.readers

    @property
    def schema_version(self) -> int:
        return self._engine.schema_version

    def totals(self, change_start: str, bounds: Sequence[float]) -> dict[PairKey, PairTotals]:
        """``Reads.totals``, kept up to date incrementally between calls (``KeptLeadTotals``)."""
        return self._kept_totals.totals(self, self._engine.read_snapshot(), change_start, bounds)

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction; nested on the same thread, a savepoint inside the outer one
        (a source's cache write during an ingest batch commits or rolls back with that batch)."""
        with self._engine.transaction() as conn:
            yield Tx(conn)

    def bulk_writes(self, cache_mb: int = BULK_CACHE_MB) -> AbstractContextManager[None]:
        """A larger page cache for the writer while many rows go in (``SQLiteEngine.bulk_writes``)."""
        return self._engine.bulk_writes(cache_mb)

    def checkpoint(self) -> None:
        """Fold the WAL into the main file so a stopped daemon leaves one self-contained file."""
        self._engine.checkpoint()

    def close(self) -> None:
        self._engine.close()
