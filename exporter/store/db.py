"""SQLite store: WAL, ``synchronous=FULL``, one writer, readers on their own connections.

Writes happen only inside ``Store.transaction()``, which holds the single writer lock and runs
``BEGIN IMMEDIATE``: a batch of source data and the cursor that says how far it got commit together
or not at all, which is what makes ``kill -9`` mid-ingest safe.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

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
    PullRequest,
    Skip,
    gitops_natural_key,
    utc,
)
from exporter.store import changes
from exporter.store.migrations import MIGRATIONS

log = structlog.get_logger(__name__)

_SOURCES = {s.value: s for s in DeploymentSource}  # an enum call per row is slower than a dict
# the random-key indexes a first ingest writes (natural keys, change keys, pairs) are ≈ 38 MB at
# 200k deployments; a cache that holds them, and no more: it is most of an ingest's peak memory
BULK_CACHE_MB = 48
DEFAULT_CACHE_PAGES = -2000  # SQLite's default: 2 MB per connection
BULK_CHECKPOINT_PAGES = 65536  # 256 MiB of WAL between checkpoints while a poll writes
DEFAULT_CHECKPOINT_PAGES = 1000  # SQLite's default

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
        source=_SOURCES[row[5]],
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


def _gh_row(row: sqlite3.Row | tuple[Any, ...]) -> GitHubDeploymentRow:
    repo, gid, service, env, sha, created, state, terminal, dep_id, failed_id = row
    return GitHubDeploymentRow(repo, gid, service, env, sha, created, state, bool(terminal), dep_id, failed_id)


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


def _pair_filter(service: str | None, environment: str | None) -> tuple[str, list[str]]:
    """A ``WHERE`` clause (or nothing) selecting one service and/or environment, and its arguments."""
    parts = [(col, v) for col, v in (("service", service), ("environment", environment)) if v]
    if not parts:
        return "", []
    return " WHERE " + " AND ".join(f"{col} = ?" for col, _ in parts), [v for _, v in parts]


def _start_column(change_start: str, prefix: str) -> str:
    """The SQL expression of a change's start for ``change_start`` (DESIGN §2), columns prefixed."""
    if change_start == "author_time":
        return f"{prefix}author_time"
    if change_start == "pr_first_commit":  # direct pushes fall back to their commit time
        return f"COALESCE({prefix}pr_first_commit_time, {prefix}commit_time)"
    return f"{prefix}commit_time"


def window_leads_sql(change_start: str) -> str:
    """(sha, deployment id, lead seconds) of the changes of one pair's deployments after a time.

    Driven by the pair's deployments in the window (a change is always stored under the pair of
    the deployment that carried it), not by all of the pair's changes, and answered from the
    deployments_pair and changes_deployment_start indexes alone. The leads' order is irrelevant."""
    start_col = _start_column(change_start, "c.")
    return (
        f"SELECT c.sha, c.deployment_id, MAX(0.0, d.deployed_at - {start_col}) FROM deployments d "  # noqa: S608
        "JOIN changes c ON c.deployment_id = d.id "
        "WHERE d.service = ? AND d.environment = ? AND d.deployed_at > ?"
    )


# The rows a manifest commit explains for one pair: the GitOps row, found by its natural key (one per
# configured GitOps repository), and any external row GitOps explained, on the external-rows index.
# Its ``source != 'gitops'`` term is the partial index's own condition, which lets the planner use it;
# the unary ``+`` keeps it off the pair index, which would walk every deployment of the pair.
_BY_MANIFEST_COMMIT = (
    "d.id IN (SELECT id FROM deployments WHERE natural_key IN (SELECT value FROM json_each(:keys)) "
    "UNION ALL SELECT id FROM deployments WHERE source != 'gitops' AND manifest_repo IN "
    "(SELECT value FROM json_each(:repos)) AND manifest_commit = :m AND +service = :s AND +environment = :e)"
)


def _by_manifest_commit(
    service: str, environment: str, manifest_commit: str, repo_keys: Sequence[str]
) -> dict[str, str]:
    keys = [gitops_natural_key(r, manifest_commit, service, environment) for r in repo_keys]
    repos = json.dumps(list(repo_keys))
    return {"keys": json.dumps(keys), "repos": repos, "m": manifest_commit, "s": service, "e": environment}


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
        where, args = _pair_filter(service, environment)
        sql = f"SELECT {_DEPLOYMENT_COLS} FROM deployments{where} ORDER BY deployed_at, id"  # noqa: S608
        return [_deployment(r) for r in self.conn.execute(sql, args)]

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

    def lead_time_phases(self) -> dict[PairKey, dict[str, list[float]]]:
        """Per pair, the coding (first commit to PR opened), review (opened to merged) and deploy
        (merged to deployed) seconds of every change that came through a pull request."""
        out: dict[PairKey, dict[str, list[float]]] = {}
        rows = self.conn.execute(
            "SELECT c.service, c.environment, c.pr_first_commit_time, c.pr_opened_at, c.pr_merged_at, d.deployed_at "
            "FROM changes c JOIN deployments d ON d.id = c.deployment_id "
            "WHERE c.pr_number IS NOT NULL AND c.pr_merged_at IS NOT NULL"
        )
        for service, env, first, opened, merged, deployed in rows:
            opened = opened if opened is not None else first
            phases = out.setdefault(PairKey(service, env), {"coding": [], "review": [], "deploy": []})
            phases["coding"].append(max(0.0, opened - first))
            phases["review"].append(max(0.0, merged - max(opened, first)))
            phases["deploy"].append(max(0.0, deployed - merged))
        return out

    def changes_without_pull_request(self) -> int:
        """Changes whose pull request was looked up and not found (direct pushes)."""
        row = self.conn.execute("SELECT COUNT(*) FROM changes WHERE pr_checked = 1 AND pr_number IS NULL").fetchone()
        return int(row[0])

    def pending_changes(self) -> list[tuple[int, str, str]]:
        """(deployment id, repo, natural key) of deployments whose commit and changes are still to be
        read from a remote source, oldest deployment first."""
        rows = self.conn.execute(
            "SELECT p.deployment_id, p.repo, p.natural_key FROM pending_changes p "
            "JOIN deployments d ON d.id = p.deployment_id ORDER BY d.deployed_at, d.id"
        )
        return [(int(a), str(b), str(c)) for a, b, c in rows]

    def deployment(self, deployment_id: int) -> Deployment | None:
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE id = ?",  # noqa: S608
            (deployment_id,),
        ).fetchone()
        return None if row is None else _deployment(row)

    def deployment_preceding(self, d: Deployment, resolved: bool = False) -> Deployment | None:
        """The pair's deployment just before ``d`` (with a resolved commit, if asked)."""
        where = " AND commit_sha IS NOT NULL" if resolved else ""
        ts = d.deployed_at.timestamp()
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ?{where} "  # noqa: S608
            "AND (deployed_at < ? OR (deployed_at = ? AND id < ?)) ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (d.service, d.environment, ts, ts, d.id),
        ).fetchone()
        return None if row is None else _deployment(row)

    def cache_get(self, key: str) -> tuple[str | None, str] | None:
        """A cached GitHub answer: (etag, body), or ``None``."""
        row = self.conn.execute("SELECT etag, body FROM github_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], str(row[1]))

    def github_deployment(self, repo: str, deployment_id: int) -> GitHubDeploymentRow | None:
        row = self.conn.execute(
            f"SELECT {_GH_COLS} FROM github_deployments WHERE repo = ? AND id = ?",  # noqa: S608
            (repo, deployment_id),
        ).fetchone()
        return None if row is None else _gh_row(row)

    def open_github_deployments(self, repo: str) -> list[GitHubDeploymentRow]:
        """A repository's GitHub deployments without a final state yet, oldest first."""
        rows = self.conn.execute(
            f"SELECT {_GH_COLS} FROM github_deployments WHERE terminal = 0 AND repo = ? ORDER BY id",  # noqa: S608
            (repo,),
        )
        return [_gh_row(r) for r in rows]

    def failures(self, service: str | None = None, environment: str | None = None) -> list[Failure]:
        where, args = _pair_filter(service, environment)
        sql = f"SELECT {_FAILURE_COLS} FROM failures{where} ORDER BY started_at, id"  # noqa: S608
        return [_failure(r) for r in self.conn.execute(sql, args)]

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
        # read from the change index alone (the SHA is in it)
        changes = (
            f"SELECT d.service, d.environment, c.sha, c.deployment_id, {_start_column(change_start, 'c.')} "  # noqa: S608
            "FROM deployments d JOIN changes c ON c.deployment_id = d.id"
            + (" WHERE d.deployed_at > ?" if since is not None else "")
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
                row[0], service, env, row[3], utc(row[4]), _SOURCES[row[5]], row[6], row[7], row[8],
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
        rows = self.conn.execute(window_leads_sql(change_start), (service, env, since - 1))
        dates = {dep_id: found[1] for dep_id, found in when.items()}
        h.leads = [
            ChangeLead(service, env, sha, dep_id, dates[dep_id], lead)
            for sha, dep_id, lead in rows
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
        reaches Python, and read from the pair and change indexes alone. Integer-second lead times
        (git commit times) sum exactly in any order; fractional ones may differ from a sum over
        ``histories`` in the last bit of a double."""
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
        start_col = _start_column(change_start, "c.")
        le = "".join(f", SUM(lead <= {float(b)!r})" for b in bounds)
        where, args = ("WHERE d.id > ?", (after_deployment,)) if after_deployment is not None else ("", ())
        return {
            PairKey(service, env): (n, float(total), tuple(cumulative))
            for service, env, n, total, *cumulative in self.conn.execute(
                f"SELECT service, environment, COUNT(*), SUM(lead){le} FROM ("  # noqa: S608
                f"SELECT d.service, d.environment, MAX(0.0, d.deployed_at - {start_col}) AS lead "
                f"FROM deployments d JOIN changes c ON c.deployment_id = d.id {where}) GROUP BY service, environment",
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


_GH_COLS = "repo, id, service, environment, sha, created_at, state, terminal, deployment_id, failed_deployment_id"


@dataclass(frozen=True, slots=True)
class GitHubDeploymentRow:
    """What the store keeps of one GitHub deployment (``github_deployments``)."""

    repo: str
    id: int
    service: str
    environment: str
    sha: str
    created_at: float
    state: str
    terminal: bool
    deployment_id: int | None = None
    failed_deployment_id: int | None = None


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
        rows = self.conn.execute(
            "INSERT INTO deployments (service, environment, version, deployed_at, source, natural_key, "
            "manifest_repo, manifest_commit, commit_sha, message, baseline) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (natural_key) DO NOTHING RETURNING id",
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
        ).fetchall()  # drained, so the statement is finished before the transaction commits
        if rows:
            return int(rows[0][0]), True
        row = self.conn.execute("SELECT id FROM deployments WHERE natural_key = ?", (natural_key,)).fetchone()
        return int(row[0]), False

    def relink_deployment(self, deployment_id: int, natural_key: str, manifest_commit: str) -> None:
        """Point a deployment whose manifest commit was force-pushed away at its rewritten commit."""
        self.conn.execute(
            "UPDATE deployments SET natural_key = ?, manifest_commit = ? WHERE id = ?",
            (natural_key, manifest_commit, deployment_id),
        )

    def mark_rework(self, deployment_id: int) -> None:
        self.conn.execute("UPDATE deployments SET rework = 1 WHERE id = ?", (deployment_id,))

    def add_change_rows(
        self, deployment_id: int, service: str, environment: str, rows: Iterable[tuple[str, float, float, str]]
    ) -> int:
        """``add_changes`` for ``(sha, author time, commit time, subject)`` rows of a local commit
        graph (no pull request looked for): the bulk path of an ingest."""
        return changes.insert(
            self.conn,
            [
                (service, environment, sha, deployment_id, at, ct, subject, 0, None, None, None, None)
                for sha, at, ct, subject in rows
            ],
        )

    def add_changes(self, deployment_id: int, service: str, environment: str, items: Iterable[Change]) -> int:
        """Attribute changes not yet delivered to this pair (to the first deployment that delivers
        them); returns how many were new."""
        return changes.insert(
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

    def deployment_before(self, service: str, environment: str, at: float) -> Deployment | None:
        """The latest deployment of the pair at or before ``at``."""
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at <= ? ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment, at),
        ).fetchone()
        return None if row is None else _deployment(row)

    def add_pending_changes(self, deployment_id: int, repo: str, natural_key: str) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO pending_changes (deployment_id, repo, natural_key) VALUES (?, ?, ?)",
            (deployment_id, repo, natural_key),
        )

    def resolve_pending(self, deployment_id: int, commit: str | None) -> None:
        """Record the commit read for a pending deployment and drop it from the queue."""
        if commit is not None:
            self.conn.execute("UPDATE deployments SET commit_sha = ? WHERE id = ?", (commit, deployment_id))
        self.conn.execute("DELETE FROM pending_changes WHERE deployment_id = ?", (deployment_id,))

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

    # -- GitHub deployments -------------------------------------------------------------------

    def upsert_github_deployment(self, g: GitHubDeploymentRow) -> None:
        """Record what is known of one GitHub deployment; the rows it became are never unset."""
        self.conn.execute(
            f"INSERT INTO github_deployments ({_GH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?) "  # noqa: S608
            "ON CONFLICT (repo, id) DO UPDATE SET state = excluded.state, terminal = excluded.terminal, "
            "deployment_id = COALESCE(github_deployments.deployment_id, excluded.deployment_id), "
            "failed_deployment_id = COALESCE(github_deployments.failed_deployment_id, excluded.failed_deployment_id)",
            dataclasses.astuple(g),
        )

    def deployment_after(self, service: str, environment: str, after: float) -> Deployment | None:
        """The pair's first deployment strictly after ``after`` that is not itself a failed attempt
        (a failed Argo CD sync or a failed GitHub deployment): what restores an attempt's failure."""
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments d WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at > ? AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.deployment_id = d.id "
            "AND f.reason IN (?, ?)) ORDER BY deployed_at, id LIMIT 1",
            (service, environment, after, FailureReason.SYNC_FAILED.value, FailureReason.DEPLOYMENT_FAILED.value),
        ).fetchone()
        return None if row is None else _deployment(row)

    # -- Argo CD ------------------------------------------------------------------------------

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

    def unclaimed_gitops_deployment(
        self, service: str, environment: str, manifest_commit: str, repo_keys: Sequence[str]
    ) -> Deployment | None:
        """The deployment a GitOps manifest commit made for a pair, unless an Argo CD entry already is it
        (the GitOps row itself, or an external one that GitOps explained: a GitHub deployment).
        ``repo_keys``: the configured GitOps repositories', whose natural keys find the GitOps rows."""
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments d WHERE {_BY_MANIFEST_COMMIT} "  # noqa: S608
            "AND NOT EXISTS (SELECT 1 FROM argocd_history h WHERE h.deployment_id = d.id) ORDER BY id LIMIT 1",
            _by_manifest_commit(service, environment, manifest_commit, repo_keys),
        ).fetchone()
        return None if row is None else _deployment(row)

    def has_unexplained_external(self) -> bool:
        """Whether any Argo CD or GitHub deployment has no GitOps explanation yet (one index probe)."""
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE source != 'gitops' AND manifest_repo IS NULL)"
        ).fetchone()
        return bool(row[0])

    def unclaimed_external_deployment(
        self,
        service: str,
        environment: str,
        manifest_commit: str,
        sha: str | None = None,
        at: float = 0.0,
        tolerance: float = 0.0,
    ) -> Deployment | None:
        """A deployment an external source recorded that no GitOps commit has explained yet, and that
        is the one ``manifest_commit`` made: an Argo CD sync of exactly that commit, or (given ``sha``,
        the full or abbreviated source commit it deployed) a successful GitHub deployment of that
        commit within ``tolerance`` seconds of ``at``. The earliest wins.

        One statement on two indexes (manifest commit; pair and time); the GitHub half costs nothing
        without a ``sha``, which the caller passes only when that source is configured."""
        cols = ", ".join(f"d.{c.strip()}" for c in _DEPLOYMENT_COLS.split(","))
        row = self.conn.execute(
            # unary + keeps the planner off the pair index for the Argo CD half: that walks every
            # deployment of the pair (this runs once per GitOps deployment), the manifest index finds
            # the few candidates; the GitHub half is a range of the pair index bounded by the window
            f"SELECT {cols} FROM deployments d WHERE +service = :s AND +environment = :e "  # noqa: S608
            "AND source = 'argocd' AND source != 'gitops' AND manifest_commit = :m AND manifest_repo IS NULL "
            "AND EXISTS (SELECT 1 FROM argocd_history h WHERE h.deployment_id = d.id) "  # a sync that succeeded
            f"UNION ALL SELECT {cols} FROM deployments d WHERE :sha IS NOT NULL AND service = :s AND environment = :e "
            "AND deployed_at BETWEEN :lo AND :hi AND source = 'github' AND manifest_repo IS NULL "
            "AND substr(commit_sha, 1, length(:sha)) = :sha "
            "AND EXISTS (SELECT 1 FROM github_deployments g WHERE g.deployment_id = d.id) "  # a success
            "ORDER BY 5, 1 LIMIT 1",
            {
                "m": manifest_commit,
                "s": service,
                "e": environment,
                "sha": sha,
                "lo": at - tolerance,
                "hi": at + tolerance,
            },
        ).fetchone()
        return None if row is None else _deployment(row)

    def unclaimed_by_github(self, service: str, environment: str, at: float, tolerance: float) -> list[Deployment]:
        """The pair's GitOps-explained deployments within ``tolerance`` of ``at`` that no GitHub
        deployment is yet, closest in time first: the candidates for one GitHub deployment."""
        rows = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments d WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at BETWEEN ? AND ? AND manifest_repo IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM github_deployments g WHERE g.deployment_id = d.id) "
            "ORDER BY abs(deployed_at - ?), id",
            (service, environment, at - tolerance, at + tolerance, at),
        )
        return [_deployment(r) for r in rows]

    def previous_deployment(self, service: str, environment: str, before: float, exclude: int) -> Deployment | None:
        """The latest resolved deployment of a pair strictly before ``before`` (the base for changes)."""
        row = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND commit_sha IS NOT NULL AND deployed_at < ? AND id != ? ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment, before, exclude),
        ).fetchone()
        return None if row is None else _deployment(row)

    def gitops_version(
        self, service: str, environment: str, manifest_commit: str, repo_keys: Sequence[str]
    ) -> str | None:
        """The version a GitOps manifest commit set for a pair, if the GitOps source recorded it."""
        row = self.conn.execute(
            f"SELECT version FROM deployments d WHERE {_BY_MANIFEST_COMMIT} ORDER BY id LIMIT 1",  # noqa: S608
            _by_manifest_commit(service, environment, manifest_commit, repo_keys),
        ).fetchone()
        return None if row is None else str(row[0])

    def gitops_deployments_of_pair(
        self, service: str, environment: str, limit: int = 50
    ) -> list[tuple[Deployment, str, bool]]:
        """(deployment, manifest repo key, claimed by an Argo CD entry) of a pair's GitOps rows, newest first."""
        rows = self.conn.execute(
            f"SELECT {_DEPLOYMENT_COLS}, manifest_repo, "  # noqa: S608
            "EXISTS (SELECT 1 FROM argocd_history h WHERE h.deployment_id = d.id) FROM deployments d "
            "WHERE service = ? AND environment = ? AND manifest_repo IS NOT NULL AND manifest_commit IS NOT NULL "
            "ORDER BY deployed_at DESC, id DESC LIMIT ?",
            (service, environment, limit),
        )
        return [(_deployment(r), str(r[11]), bool(r[12])) for r in rows]

    def adopt_deployment(
        self,
        deployment_id: int,
        version: str,
        manifest_repo: str,
        commit: str | None,
        message: str,
        manifest_commit: str | None = None,
    ) -> None:
        """GitOps explains an external deployment: its version, manifest commit and source commit (a
        commit the external source already knew stays when GitOps has none yet); the external time stays."""
        self.conn.execute(
            "UPDATE deployments SET version = ?, manifest_repo = ?, commit_sha = COALESCE(?, commit_sha), "
            "message = ?, manifest_commit = COALESCE(?, manifest_commit) WHERE id = ?",
            (version, manifest_repo, commit, message, manifest_commit, deployment_id),
        )

    def set_deployed_at(
        self, deployment_id: int, deployed_at: float, source: DeploymentSource = DeploymentSource.ARGOCD
    ) -> None:
        """An external source saw a GitOps deployment happen: its time wins over the commit time."""
        self.conn.execute(
            "UPDATE deployments SET deployed_at = ?, source = ? WHERE id = ?",
            (deployed_at, source.value, deployment_id),
        )

    def open_failures(self, service: str, environment: str, reason: FailureReason) -> list[Failure]:
        rows = self.conn.execute(
            f"SELECT {_FAILURE_COLS} FROM failures WHERE service = ? AND environment = ? AND reason = ? "  # noqa: S608
            "AND restored_at IS NULL ORDER BY started_at, id",
            (service, environment, reason.value),
        )
        return [_failure(r) for r in rows]

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

    def add_webhook_event(self, source: str, key: str, body: str) -> bool:
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO webhook_events (source, key, received_at, body) VALUES (?,?,?,?)",
            (source, key, time.time(), body),
        )
        return cur.rowcount > 0

    def gitops_deployments(self, repo: str) -> list[tuple[int, str, str, str, str | None]]:
        """(id, service, environment, version, manifest_commit) of one repo's deployments, oldest first.
        A scan of the table: only a force-push reconcile asks."""
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
        self._depth = 0  # nesting of transaction() on the thread holding the write lock
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
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One write transaction; nested on the same thread, a savepoint inside the outer one
        (a source's cache write during an ingest batch commits or rolls back with that batch)."""
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
                yield Tx(self._writer)
            except BaseException:
                self._writer.execute("ROLLBACK")
                raise
            finally:
                self._depth -= 1
            try:
                self._writer.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"commit failed: {exc}") from exc

    def _savepoint(self) -> Iterator[Tx]:
        self._writer.execute("SAVEPOINT nested")
        self._depth += 1
        try:
            yield Tx(self._writer)
        except BaseException:
            self._writer.execute("ROLLBACK TO nested")
            self._writer.execute("RELEASE nested")
            raise
        finally:
            self._depth -= 1
        self._writer.execute("RELEASE nested")

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
