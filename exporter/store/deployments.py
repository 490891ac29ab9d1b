# SPDX-License-Identifier: Apache-2.0
"""The deployments table: one row per real deployment, whichever sources saw it, and the queue
of deployments whose commit and changes a remote source still has to give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from exporter.model import Deployment, DeploymentSource, FailureReason, utc
from exporter.store.base import Queries, pair_filter
from exporter.store.connection import Row

__all__ = [
    "DEPLOYMENT_COLS",
    "SOURCES",
    "DeploymentPage",
    "DeploymentReads",
    "DeploymentWrites",
    "PageKey",
    "deployment_of",
]

SOURCES = {s.value: s for s in DeploymentSource}  # an enum call per row is slower than a dict
DEPLOYMENT_COLS = (
    "id, service, environment, version, deployed_at, source, manifest_commit, commit_sha, message, rework, baseline"
)


# a deployment's place in (deployed_at, id) order, as stored: the time is the stored float, not the
# model's datetime (microseconds), so a page ends exactly where the next begins
PageKey = tuple[float, int]


@dataclass(frozen=True)
class DeploymentPage:
    """One page of deployments in (deployed_at, id) order, and where the next page starts
    (after that key; ``None`` on the last page)."""

    deployments: list[Deployment]
    next_after: PageKey | None


def deployment_of(row: Row) -> Deployment:
    """A ``DEPLOYMENT_COLS`` row as a model object."""
    return Deployment(
        id=row[0],
        service=row[1],
        environment=row[2],
        version=row[3],
        deployed_at=utc(row[4]),
        source=SOURCES[row[5]],
        manifest_commit=row[6],
        commit=row[7],
        message=row[8],
        rework=bool(row[9]),
        baseline=bool(row[10]),
    )


class DeploymentReads(Queries):
    """Deployment lookups for readers and the writer alike."""

    def last_deployment(self, service: str, environment: str, resolved: bool = False) -> Deployment | None:
        where = " AND commit_sha IS NOT NULL" if resolved else ""
        row = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ?{where} "  # noqa: S608
            "ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment),
        ).fetchone()
        return None if row is None else deployment_of(row)

    def deployments(self, service: str | None = None, environment: str | None = None) -> list[Deployment]:
        where, args = pair_filter(service, environment)
        sql = f"SELECT {DEPLOYMENT_COLS} FROM deployments{where} ORDER BY deployed_at, id"  # noqa: S608
        return [deployment_of(r) for r in self.conn.execute(sql, args)]

    def deployments_page(
        self,
        *,
        limit: int,
        service: str | None = None,
        environment: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after: PageKey | None = None,
    ) -> DeploymentPage:
        """At most ``limit`` deployments in (deployed_at, id) order, ``since <= deployed_at <
        until``, strictly after the key ``after``: keyset pagination on the time index (or the
        pair index), so every page costs the same however deep it is."""
        where, args = pair_filter(service, environment)
        terms: list[str] = [where.removeprefix(" WHERE ")] if where else []
        params: list[Any] = list(args)
        if since is not None:
            terms.append("deployed_at >= ?")
            params.append(since)
        if until is not None:
            terms.append("deployed_at < ?")
            params.append(until)
        if after is not None:
            terms.append("deployed_at >= ? AND (deployed_at > ? OR id > ?)")
            params.extend((after[0], after[0], after[1]))
        sql = f"SELECT {DEPLOYMENT_COLS} FROM deployments"  # noqa: S608
        if terms:
            sql += " WHERE " + " AND ".join(terms)
        rows = self.conn.execute(f"{sql} ORDER BY deployed_at, id LIMIT ?", (*params, limit + 1)).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return DeploymentPage(
            [deployment_of(r) for r in rows], (float(rows[-1][4]), int(rows[-1][0])) if more else None
        )

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
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE id = ?",  # noqa: S608
            (deployment_id,),
        ).fetchone()
        return None if row is None else deployment_of(row)

    def deployment_preceding(self, d: Deployment, resolved: bool = False) -> Deployment | None:
        """The pair's deployment just before ``d`` (with a resolved commit, if asked)."""
        where = " AND commit_sha IS NOT NULL" if resolved else ""
        ts = d.deployed_at.timestamp()
        row = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ?{where} "  # noqa: S608
            "AND (deployed_at < ? OR (deployed_at = ? AND id < ?)) ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (d.service, d.environment, ts, ts, d.id),
        ).fetchone()
        return None if row is None else deployment_of(row)


class DeploymentWrites(Queries):
    """Deployment writes, and the lookups only an ingest transaction makes."""

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

    def deployment_before(self, service: str, environment: str, at: float) -> Deployment | None:
        """The latest deployment of the pair at or before ``at``."""
        row = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at <= ? ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment, at),
        ).fetchone()
        return None if row is None else deployment_of(row)

    def deployment_after(self, service: str, environment: str, after: float) -> Deployment | None:
        """The pair's first deployment strictly after ``after`` that is not itself a failed attempt
        (a failed Argo CD sync or a failed GitHub deployment): what restores an attempt's failure."""
        row = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments d WHERE service = ? AND environment = ? "  # noqa: S608
            "AND deployed_at > ? AND NOT EXISTS (SELECT 1 FROM failures f WHERE f.deployment_id = d.id "
            "AND f.reason IN (?, ?)) ORDER BY deployed_at, id LIMIT 1",
            (service, environment, after, FailureReason.SYNC_FAILED.value, FailureReason.DEPLOYMENT_FAILED.value),
        ).fetchone()
        return None if row is None else deployment_of(row)

    def previous_deployment(self, service: str, environment: str, before: float, exclude: int) -> Deployment | None:
        """The latest resolved deployment of a pair strictly before ``before`` (the base for changes)."""
        row = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS} FROM deployments WHERE service = ? AND environment = ? "  # noqa: S608
            "AND commit_sha IS NOT NULL AND deployed_at < ? AND id != ? ORDER BY deployed_at DESC, id DESC LIMIT 1",
            (service, environment, before, exclude),
        ).fetchone()
        return None if row is None else deployment_of(row)

    def gitops_deployments(self, repo: str) -> list[tuple[int, str, str, str, str | None]]:
        """(id, service, environment, version, manifest_commit) of one repo's deployments, oldest first.
        A scan of the table: only a force-push reconcile asks."""
        rows = self.conn.execute(
            "SELECT id, service, environment, version, manifest_commit FROM deployments "
            "WHERE manifest_repo = ? ORDER BY deployed_at, id",
            (repo,),
        )
        return [(int(a), b, c, d, e) for a, b, c, d, e in rows]

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
