# SPDX-License-Identifier: Apache-2.0
"""GitHub deployments and their statuses, newest first down to a high-water mark."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.errors import ErrorKind, SourceError
from exporter.sources.github.client import SHA40, SOURCE, Client, parse_time

__all__ = ["FINAL_STATES", "DeploymentStatus", "GitHubDeployment", "deployment_statuses", "deployments"]

FINAL_STATES = frozenset({"success", "failure", "error", "inactive"})


@dataclass(frozen=True)
class DeploymentStatus:
    id: int
    state: str
    created_at: datetime


@dataclass(frozen=True)
class GitHubDeployment:
    """One entry of ``GET /repos/{owner}/{repo}/deployments``."""

    repo: str
    id: int
    sha: str
    ref: str
    environment: str
    created_at: datetime


def _deployment(repo: str, raw: Mapping[str, Any]) -> GitHubDeployment:
    created = parse_time(raw.get("created_at"))
    sha = str(raw.get("sha") or "")
    if created is None or not isinstance(raw.get("id"), int) or not SHA40.match(sha):
        raise SourceError(
            SOURCE, ErrorKind.BAD_RESPONSE, f"deployment {repo}/{raw.get('id')} lacks an id, a sha or a date"
        )
    return GitHubDeployment(
        repo, int(raw["id"]), sha, str(raw.get("ref") or ""), str(raw.get("environment") or ""), created
    )


def deployments(client: Client, repo: str, after_id: int | None, since: datetime) -> Iterator[GitHubDeployment]:
    """A repository's deployments newest first, up to (not including) ``after_id`` (the high-water
    mark: ids grow with creation) or the first one created before ``since``, whichever comes first.

    The first page is asked with its ETag: an unchanged list costs a ``304`` and no rate limit."""
    for page in client.pages(f"/repos/{repo}/deployments"):
        for raw in page:
            d = _deployment(repo, raw)
            if (after_id is not None and d.id <= after_id) or d.created_at < since:
                return
            yield d


def deployment_statuses(client: Client, repo: str, deployment_id: int, conditional: bool) -> list[DeploymentStatus]:
    """Every status of one deployment, oldest first (GitHub lists them newest first).

    ``conditional`` for a deployment read before: its unchanged list is a ``304``."""
    out = []
    for page in client.pages(f"/repos/{repo}/deployments/{deployment_id}/statuses", conditional=conditional):
        for raw in page:
            at = parse_time(raw.get("created_at"))
            if at is None or not isinstance(raw.get("id"), int):
                raise SourceError(
                    SOURCE, ErrorKind.BAD_RESPONSE, f"a status of deployment {repo}/{deployment_id} has no date"
                )
            out.append(DeploymentStatus(int(raw["id"]), str(raw.get("state") or ""), at))
    return sorted(out, key=lambda s: (s.created_at, s.id))
