# SPDX-License-Identifier: Apache-2.0
"""What the store keeps of GitHub deployments: each one's last state and the rows it became."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from exporter.store.base import Queries
from exporter.store.connection import Row

__all__ = ["GitHubDeploymentRow", "GitHubReads", "GitHubWrites"]

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


def _gh_row(row: Row) -> GitHubDeploymentRow:
    repo, gid, service, env, sha, created, state, terminal, dep_id, failed_id = row
    return GitHubDeploymentRow(repo, gid, service, env, sha, created, state, bool(terminal), dep_id, failed_id)


class GitHubReads(Queries):
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

    def open_incidents(self, repo: str) -> list[tuple[int, int]]:
        """(failure id, issue number) of the incidents from ``repo``'s issues not restored yet.

        The natural key is ``keys.incident_key``: ``incident:<owner/name>#<number>``."""
        prefix = f"incident:{repo}#"
        rows = self.conn.execute(
            "SELECT id, natural_key FROM failures WHERE reason = 'incident' AND restored_at IS NULL "
            "AND substr(natural_key, 1, ?) = ? ORDER BY id",
            (len(prefix), prefix),
        )
        return [(int(fid), int(str(key)[len(prefix) :])) for fid, key in rows if str(key)[len(prefix) :].isdigit()]


class GitHubWrites(Queries):
    def upsert_github_deployment(self, g: GitHubDeploymentRow) -> None:
        """Record what is known of one GitHub deployment; the rows it became are never unset."""
        self.conn.execute(
            f"INSERT INTO github_deployments ({_GH_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?) "  # noqa: S608
            "ON CONFLICT (repo, id) DO UPDATE SET state = excluded.state, terminal = excluded.terminal, "
            "deployment_id = COALESCE(github_deployments.deployment_id, excluded.deployment_id), "
            "failed_deployment_id = COALESCE(github_deployments.failed_deployment_id, excluded.failed_deployment_id)",
            dataclasses.astuple(g),
        )
