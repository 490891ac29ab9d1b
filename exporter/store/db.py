"""SQLite store: WAL, ``synchronous=FULL``, one writer, readers on their own connections.

Writes happen only inside ``Store.transaction()``, which holds the single writer lock and runs
``BEGIN IMMEDIATE``: a batch of source data and the cursor that says how far it got commit together
or not at all, which is what makes ``kill -9`` mid-ingest safe.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter.errors import StoreError
from exporter.model import (
    Change,
    ChangeLead,
    Deployment,
    DeploymentSource,
    Failure,
    FailureReason,
    PairHistory,
    PairKey,
    PairTotals,
    Skip,
    utc,
)
from exporter.store.schema import MIGRATIONS

_DEPLOYMENT_COLS = (
    "id, service, environment, version, deployed_at, source, manifest_commit, commit_sha, message, rework, baseline"
)
_FAILURE_COLS = "id, service, environment, reason, started_at, deployment_id, restored_at, restored_by, detail"


def _deployment(row: sqlite3.Row | tuple[Any, ...]) -> Deployment:
    return Deployment(
        id=row[0],
        service=row[1],
        environment=row[2],
        version=row[3],
        deployed_at=utc(row[4]),
        source=DeploymentSource(row[5]),
        manifest_commit=row[6],
        commit=row[7],
        message=row[8],
        rework=bool(row[9]),
        baseline=bool(row[10]),
    )


def _failure(row: sqlite3.Row | tuple[Any, ...]) -> Failure:
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


class _Reads:
    """Queries shared by the writer's transaction (which must see its own rows) and by readers."""

    @property
    def conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def cursor(self, name: str) -> str | None:
        row = self.conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def gitops_state(self, repo: str) -> dict[tuple[str, str], str]:
        rows = self.conn.execute("SELECT service, environment, value FROM gitops_state WHERE repo = ?", (repo,))
        return {(s, e): v for s, e, v in rows}

    def last_deployment(self, service: str, environment: str, resolved: bool = False) -> Deployment | None:
        where = " AND commit_sha IS NOT NULL" if resolved else ""
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ?{where} "  # noqa: S608
            "ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment),
        ).fetchone()
        return None if row is None else _deployment(row)

    def deployments(self, service: str | None = None, environment: str | None = None) -> list[Deployment]:
        sql = f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE 1=1"  # noqa: S608
        args: list[str] = []
        if service:
            sql += " AND service = ?"
            args.append(service)
        if environment:
            sql += " AND environment = ?"
            args.append(environment)
        return [_deployment(r) for r in self.conn.execute(sql + " ORDER BY deployed_at, id", args)]

    def changes_of(self, deployment_id: int) -> list[Change]:
        rows = self.conn.execute(
            "SELECT sha, author_time, commit_time, subject FROM changes WHERE deployment_id = ? "
            "ORDER BY commit_time, sha",
            (deployment_id,),
        )
        return [Change(sha, utc(at), utc(ct), subject) for sha, at, ct, subject in rows]

    def failures(self, service: str | None = None, environment: str | None = None) -> list[Failure]:
        sql = f"SELECT {_FAILURE_COLS} FROM failures WHERE 1=1"  # noqa: S608
        args: list[str] = []
        if service:
            sql += " AND service = ?"
            args.append(service)
        if environment:
            sql += " AND environment = ?"
            args.append(environment)
        return [_failure(r) for r in self.conn.execute(sql + " ORDER BY started_at, id", args)]

    def unmatched_counts(self) -> dict[tuple[str, str], int]:
        rows = self.conn.execute("SELECT source, reason, COUNT(*) FROM unmatched GROUP BY source, reason")
        return {(s, r): n for s, r, n in rows}

    def histories(self, change_start: str, since: float | None = None) -> dict[PairKey, PairHistory]:
        """Every pair's deployments, failures and change lead times, in one pass per table.

        With ``since`` (a timestamp), only deployments after it and the changes they carried are
        loaded (every failure still is): enough for any window that starts at ``since`` or later,
        without holding years of history as objects. ``totals`` gives the all-time numbers.
        """
        out: dict[PairKey, PairHistory] = {}
        by_names: dict[tuple[str, str], PairHistory] = {}  # a tuple hashes faster than a PairKey

        def pair(service: str, environment: str) -> PairHistory:
            h = by_names.get((service, environment))
            if h is None:
                key = PairKey(service, environment)
                h = by_names[(service, environment)] = out[key] = PairHistory(key)
            return h

        when: dict[int, tuple[float, datetime]] = {}
        where, args = ("WHERE deployed_at > ?", (since - 1,)) if since is not None else ("", ())
        for row in self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments {where} ORDER BY deployed_at, id",  # noqa: S608
            args,
        ):
            h = pair(row[1], row[2])
            d = _deployment((row[0], h.key.service, h.key.environment, *row[3:]))  # one str per pair, not per row
            when[d.id] = (row[4], d.deployed_at)
            h.deployments.append(d)
        for row in self.conn.execute(f"SELECT {_FAILURE_COLS} FROM failures ORDER BY started_at, id"):  # noqa: S608
            f = _failure(row)
            h = pair(f.service, f.environment)
            h.failures.append(f)
            if f.deployment_id is not None:
                h.failed_deployment_ids.add(f.deployment_id)
        start_col = "author_time" if change_start == "author_time" else "commit_time"
        changes = f"SELECT service, environment, sha, deployment_id, {start_col} FROM changes"  # noqa: S608
        if since is not None:  # only the changes of the deployments loaded, not a scan of all of them
            changes = (
                f"SELECT c.service, c.environment, c.sha, c.deployment_id, c.{start_col} FROM changes c "  # noqa: S608
                "JOIN deployments d ON d.id = c.deployment_id WHERE d.deployed_at > ? "
                "ORDER BY c.service, c.environment, c.sha"
            )
        for service, env, sha, dep_id, start in self.conn.execute(changes, args):
            found = when.get(dep_id)
            if found is None:
                continue
            deployed, deployed_at = found
            h = pair(service, env)
            h.leads.append(
                ChangeLead(h.key.service, h.key.environment, sha, dep_id, deployed_at, max(0.0, deployed - start))
            )
        return out

    def pair_history(self, key: PairKey, change_start: str, since: float) -> PairHistory:
        """``histories(change_start, since)[key]`` read alone, through the pair indexes (its leads
        in no particular order: only windows are computed from them)."""
        h = PairHistory(key)
        service, env = key.service, key.environment
        when: dict[int, tuple[float, datetime]] = {}
        for row in self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at > ? ORDER BY deployed_at, id",
            (service, env, since - 1),
        ):
            d = Deployment(
                row[0], service, env, row[3], utc(row[4]), DeploymentSource(row[5]), row[6], row[7], row[8],
                bool(row[9]), bool(row[10]),
            )  # fmt: skip
            when[d.id] = (row[4], d.deployed_at)
            h.deployments.append(d)
        for row in self.conn.execute(
            f"SELECT {_FAILURE_COLS} FROM failures WHERE service = ? AND environment = ? "  # noqa: S608
            "ORDER BY started_at, id",
            (service, env),
        ):
            f = _failure(row)
            h.failures.append(f)
            if f.deployment_id is not None:
                h.failed_deployment_ids.add(f.deployment_id)
        start_col = "author_time" if change_start == "author_time" else "commit_time"
        rows = self.conn.execute(
            # driven by the pair's deployments in the window (a change is always stored under the
            # pair of the deployment that carried it), not by all of the pair's changes
            f"SELECT c.sha, c.deployment_id, c.{start_col}, d.deployed_at FROM deployments d "  # noqa: S608
            "JOIN changes c ON c.deployment_id = d.id AND c.service = d.service AND c.environment = d.environment "
            "WHERE d.service = ? AND d.environment = ? AND d.deployed_at > ?",  # leads' order is irrelevant
            (service, env, since - 1),
        )
        dates = {dep_id: found[1] for dep_id, found in when.items()}
        h.leads = [
            ChangeLead(service, env, sha, dep_id, dates[dep_id], max(0.0, deployed - start))
            for sha, dep_id, start, deployed in rows
            if dep_id in dates  # a deployment committed between the two reads waits for the next recompute
        ]
        return h

    def pair_keys(self) -> list[PairKey]:
        """Every pair with a deployment or a failure."""
        rows = self.conn.execute(
            "SELECT service, environment FROM deployments GROUP BY service, environment "
            "UNION SELECT service, environment FROM failures GROUP BY service, environment"
        )
        return [PairKey(s, e) for s, e in rows]

    def totals(self, change_start: str, bounds: Sequence[float]) -> dict[PairKey, PairTotals]:
        """Every pair's all-time deployment count and latest deployment, and its lead times as a
        cumulative histogram over ``bounds`` with their count and sum, aggregated in SQL: no row
        reaches Python. The sum runs over the changes table's own order, as ``histories`` reads it."""
        out = self._deployment_totals()
        for key, lead in self._lead_totals(change_start, bounds, None).items():
            t = out.setdefault(key, PairTotals())
            t.changes, t.lead_seconds_sum, t.lead_le = lead
        return out

    def _deployment_totals(self) -> dict[PairKey, PairTotals]:
        return {
            PairKey(service, env): PairTotals(n, utc(last))
            for service, env, n, last in self.conn.execute(
                "SELECT service, environment, COUNT(*), MAX(deployed_at) FROM deployments GROUP BY service, environment"
            )
        }

    def _lead_totals(
        self, change_start: str, bounds: Sequence[float], after_deployment: int | None
    ) -> dict[PairKey, tuple[int, float, tuple[int, ...]]]:
        """(count, sum, cumulative counts) of lead times per pair, of every change or only of the
        changes of deployments with an id above ``after_deployment``."""
        start_col = "author_time" if change_start == "author_time" else "commit_time"
        le = "".join(f", SUM(lead <= {float(b)!r})" for b in bounds)
        where, args = ("WHERE c.deployment_id > ?", (after_deployment,)) if after_deployment is not None else ("", ())
        return {
            PairKey(service, env): (n, float(total), tuple(cumulative))
            for service, env, n, total, *cumulative in self.conn.execute(
                f"SELECT service, environment, COUNT(*), SUM(lead){le} FROM ("  # noqa: S608
                f"SELECT c.service, c.environment, MAX(0.0, d.deployed_at - c.{start_col}) AS lead FROM changes c "
                f"JOIN deployments d ON d.id = c.deployment_id {where}) GROUP BY service, environment",
                args,
            )
        }


class LazyHistories(Mapping[PairKey, PairHistory]):
    """``histories(change_start, since)`` read one pair at a time, when asked for, and not kept.

    ``snapshot.build`` visits each pair once; a recompute then never holds more than one pair's
    window as objects, so it neither peaks nor fragments the heap with the whole window's.
    Differs from ``histories(since=...)`` only in listing pairs whose deployments all precede
    ``since`` (with an empty history), which ``build`` lists anyway from its totals.
    """

    def __init__(self, reads: _Reads, change_start: str, since: float) -> None:
        self._reads = reads
        self._change_start = change_start
        self._since = since
        self._keys = reads.pair_keys()
        self._known = set(self._keys)

    def __getitem__(self, key: PairKey) -> PairHistory:
        if key not in self._known:
            raise KeyError(key)
        return self._reads.pair_history(key, self._change_start, self._since)

    def __iter__(self) -> Iterator[PairKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class Tx(_Reads):
    """One write transaction. Every write is an idempotent insert or upsert on a natural key."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

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

    def add_deployment(
        self,
        *,
        natural_key: str,
        service: str,
        environment: str,
        version: str,
        deployed_at: float,
        source: DeploymentSource,
        manifest_repo: str | None,
        manifest_commit: str | None,
        commit: str | None,
        message: str,
        baseline: bool,
    ) -> tuple[int, bool]:
        """Insert a deployment unless its natural key exists; returns (id, inserted)."""
        row = self.conn.execute("SELECT id FROM deployments WHERE natural_key = ?", (natural_key,)).fetchone()
        if row is not None:
            return int(row[0]), False
        cur = self.conn.execute(
            "INSERT INTO deployments (service, environment, version, deployed_at, source, natural_key, "
            "manifest_repo, manifest_commit, commit_sha, message, baseline) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                service,
                environment,
                version,
                deployed_at,
                source.value,
                natural_key,
                manifest_repo,
                manifest_commit,
                commit,
                message,
                int(baseline),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid, True

    def relink_deployment(self, deployment_id: int, natural_key: str, manifest_commit: str) -> None:
        """Point a deployment whose manifest commit was force-pushed away at its rewritten commit."""
        self.conn.execute(
            "UPDATE deployments SET natural_key = ?, manifest_commit = ? WHERE id = ?",
            (natural_key, manifest_commit, deployment_id),
        )

    def mark_rework(self, deployment_id: int) -> None:
        self.conn.execute("UPDATE deployments SET rework = 1 WHERE id = ?", (deployment_id,))

    def add_changes(self, deployment_id: int, service: str, environment: str, changes: Iterable[Change]) -> int:
        """Attribute changes not yet delivered to this pair; returns how many were new."""
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO changes (service, environment, sha, deployment_id, author_time, commit_time, "
            "subject) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    service,
                    environment,
                    c.sha,
                    deployment_id,
                    c.author_time.timestamp(),
                    c.commit_time.timestamp(),
                    c.subject,
                )
                for c in changes
            ],
        )
        return self.conn.total_changes - before

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

    def record_skip(self, skip: Skip) -> bool:
        """Count an unusable input once per natural key, however often it is re-read."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO unmatched (source, reason, key, detail, first_seen) VALUES (?,?,?,?,?)",
            (skip.source, skip.reason, skip.key, skip.detail, time.time()),
        )
        return cur.rowcount > 0

    def gitops_deployments(self, repo: str) -> list[tuple[int, str, str, str, str | None]]:
        """(id, service, environment, version, manifest_commit) of one repo's deployments, oldest first."""
        rows = self.conn.execute(
            "SELECT id, service, environment, version, manifest_commit FROM deployments "
            "WHERE manifest_repo = ? ORDER BY deployed_at, id",
            (repo,),
        )
        return [(int(a), b, c, d, e) for a, b, c, d, e in rows]


class Store(_Reads):
    """The database file. ``transaction()`` for writes; plain methods read on a per-thread connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._leads_cache: tuple[tuple[str, tuple[float, ...]], int, int, dict[PairKey, Any]] | None = None
        self._leads_lock = threading.Lock()
        self._migrate()

    def totals(self, change_start: str, bounds: Sequence[float]) -> dict[PairKey, PairTotals]:
        """``_Reads.totals``, kept up to date incrementally between calls.

        Changes and deployments are only ever added, and a change is attributed with its new
        deployment, so the lead histograms of the last call plus those of the changes of newer
        deployments are the new ones; when the changes table holds any other row count (a change
        attributed to an older deployment), everything is recounted. Integer-second lead times (git
        commit times) sum exactly either way; fractional ones may differ from a recount in the last
        bit of a double.
        """
        key = (change_start, tuple(float(b) for b in bounds))
        with self._leads_lock, self._read_snapshot():
            n_changes = int(self.conn.execute("SELECT COUNT(*) FROM changes").fetchone()[0])
            max_dep = int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM deployments").fetchone()[0])
            cache = self._leads_cache
            leads: dict[PairKey, tuple[int, float, tuple[int, ...]]]
            if cache is not None and cache[0] == key and cache[2] <= max_dep:
                leads = dict(cache[3])
                fresh = self._lead_totals(change_start, bounds, cache[2]) if cache[2] < max_dep else {}
                for pair, (n, total, le) in fresh.items():
                    old = leads.get(pair)
                    if old is None:
                        leads[pair] = (n, total, le)
                    else:
                        leads[pair] = (
                            old[0] + n,
                            old[1] + total,
                            tuple(a + b for a, b in zip(old[2], le, strict=True)),
                        )
                if sum(v[0] for v in leads.values()) != n_changes:
                    leads = self._lead_totals(change_start, bounds, None)
            else:
                leads = self._lead_totals(change_start, bounds, None)
            self._leads_cache = (key, n_changes, max_dep, leads)
            out = self._deployment_totals()
        for pair, (n, total, le) in leads.items():
            t = out.setdefault(pair, PairTotals())
            t.changes, t.lead_seconds_sum, t.lead_le = n, total, le
        return out

    @contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        """Several reads on this thread's connection that see one state of the database."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    @property
    def conn(self) -> sqlite3.Connection:
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
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                try:
                    # executescript commits first; the version bump rides in the same script
                    self._writer.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
                except sqlite3.Error as exc:
                    self._writer.execute("ROLLBACK") if self._writer.in_transaction else None
                    raise StoreError(f"migration {number} failed on {self.path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self._write_lock:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot begin a write: {exc}") from exc
            try:
                yield Tx(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            try:
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"commit failed: {exc}") from exc

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
