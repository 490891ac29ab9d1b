# SPDX-License-Identifier: Apache-2.0
"""One deployment seen by several sources is one row.

GitOps (a manifest commit), Argo CD (a sync in an application's history) and GitHub (a
deployment with a successful status) can each see the same real deployment, in any order. The
first to see it records a row; each later one adopts that row instead of adding another. The rule,
which the functions here apply to rows the store finds by plain access (by manifest commit, by pair
and time range):

- **GitOps** (``row_for_gitops``): a manifest commit M that sets a new value for a pair adopts a
  row no GitOps commit explains yet that is either an Argo CD sync of exactly M that succeeded (it
  has a history entry), or (only while the GitHub deployments source is on) a successful GitHub
  deployment of the same source commit (GitOps's SHA, possibly abbreviated, is a prefix of it)
  made within the match window of M's commit time. The earliest such row wins, the older row on a
  tie. GitOps then gives it its version, manifest commit and source commit; its time stays.
- **Argo CD** (``row_for_argocd_sync``): a history entry that synced manifest commit M adopts the
  pair's row M explains (the GitOps row of M in a configured GitOps repository, or an external row
  GitOps adopted with M) that no other Argo CD entry is yet; the oldest row wins. Failing that
  (Argo CD often syncs a later commit that touched other services), ``gitops_in_effect``: the
  pair's newest GitOps row whose manifest commit is an ancestor of M, unless an Argo CD entry
  already is it (its version is still the entry's). The sync time replaces the commit time.
- **GitHub** (``row_for_github``): a successful deployment of commit S at time T adopts the pair's
  row a GitOps commit explains, within the match window of T, that no GitHub deployment is yet and
  whose source commit is S, or, while its commit is unresolved, whose version tag carries a SHA
  that S starts with. The closest in time wins, the older row on a tie. T replaces the time only
  of a row GitOps alone had seen (an Argo CD sync time is when the rollout ran).
- Anything else is a new row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from exporter.core.correlate import tag_commit_candidate
from exporter.model import Deployment, DeploymentSource, ManifestValue
from exporter.settings import Config, ServiceConfig
from exporter.store import Tx

__all__ = [
    "NO_COMMIT_MATCH",
    "Ancestry",
    "CommitMatch",
    "external_match",
    "gitops_in_effect",
    "gitops_version",
    "hex_candidate",
    "row_for_argocd_sync",
    "row_for_github",
    "row_for_gitops",
]

_HEX = re.compile(r"[0-9a-f]{7,40}")


def hex_candidate(tag: str, tag_pattern: str) -> str | None:
    """The (possibly abbreviated) commit SHA a tag carries, or ``None`` (a ref template, no SHA)."""
    candidate = tag_commit_candidate(tag, tag_pattern)
    return candidate if candidate is not None and _HEX.fullmatch(candidate) else None


class CommitMatch(NamedTuple):
    """The source commit (full or abbreviated), time and tolerance under which a GitHub deployment
    is the same as a GitOps one; no commit, no GitHub match."""

    sha: str | None
    at: float
    tolerance: float


NO_COMMIT_MATCH = CommitMatch(None, 0.0, 0.0)


def external_match(cfg: Config, svc: ServiceConfig | None, commit: str | None, value: ManifestValue) -> CommitMatch:
    """How a GitHub deployment matches the GitOps one of ``value``: by its resolved commit, else the
    SHA its tag carries (a ``github:`` service resolves later), around its commit time. No commit,
    and no GitHub lookup, while the GitHub deployments source is off."""
    window = cfg.github.deployments.match_window
    if not cfg.github.deployments.enabled or svc is None:
        return NO_COMMIT_MATCH
    sha = commit or hex_candidate(value.value, svc.tag_pattern)
    return CommitMatch(sha, value.committed_at.timestamp(), window)


def row_for_gitops(tx: Tx, value: ManifestValue, match: CommitMatch = NO_COMMIT_MATCH) -> Deployment | None:
    """The external row the GitOps deployment of ``value`` adopts: an Argo CD sync of exactly its
    manifest commit, or (given ``match.sha``) a successful GitHub deployment of that source commit
    within ``match.tolerance`` seconds of ``match.at``; the earliest, or ``None``."""
    service, environment, sha = value.service, value.environment, match.sha
    found = [
        c
        for c in tx.unexplained_by_manifest_commit(service, environment, value.commit)
        if c.deployment.source is DeploymentSource.ARGOCD and c.synced
    ]
    if sha is not None:
        lo, hi = match.at - match.tolerance, match.at + match.tolerance
        found += [
            c
            for c in tx.in_time_range(service, environment, lo, hi, DeploymentSource.GITHUB)
            if not c.explained and c.github and c.deployment.commit is not None and c.deployment.commit.startswith(sha)
        ]
    if not found:
        return None
    return min(found, key=lambda c: (c.at, c.deployment.id)).deployment


def row_for_argocd_sync(
    tx: Tx, pair: tuple[str, str], manifest_commit: str, *, repo_keys: Sequence[str]
) -> Deployment | None:
    """The row an Argo CD history entry that synced ``manifest_commit`` adopts: the oldest row the
    commit explains for the pair that no Argo CD entry is yet. ``repo_keys``: the configured GitOps
    repositories', whose natural keys find the GitOps rows."""
    for c in tx.by_manifest_commit(*pair, manifest_commit, repo_keys):  # oldest first
        if not c.synced:
            return c.deployment
    return None


class Ancestry(Protocol):
    """What ``gitops_in_effect`` asks of a GitOps repository's clone."""

    def resolve(self, rev: str) -> str | None: ...

    def is_ancestor(self, ancestor: str, descendant: str) -> bool: ...


def gitops_in_effect(
    tx: Tx, pair: tuple[str, str], manifest_commit: str, *, git_of: Callable[[str], Ancestry | None]
) -> tuple[Deployment | None, str | None]:
    """The GitOps deployment in effect at ``manifest_commit`` (the pair's newest one whose commit is
    an ancestor of it, among its 50 newest): returned to adopt when no Argo CD entry is it yet, and
    its version either way. (None, None) when git cannot tell (the commit not fetched yet).
    ``git_of``: the clone of a configured GitOps repository by its key, ``None`` for any other; it
    is asked only for rows that need it, and its errors propagate."""
    for dep, repo_key, claimed in tx.gitops_deployments_of_pair(*pair):
        if dep.manifest_commit is None:
            continue
        git = git_of(repo_key)
        if git is None:
            continue
        if git.resolve(manifest_commit) is None:
            return None, None
        if git.is_ancestor(dep.manifest_commit, manifest_commit):
            return (None if claimed else dep), dep.version
    return None, None


def gitops_version(tx: Tx, pair: tuple[str, str], manifest_commit: str, *, repo_keys: Sequence[str]) -> str | None:
    """The version a GitOps manifest commit set for a pair, if the GitOps source recorded it."""
    rows = tx.by_manifest_commit(*pair, manifest_commit, repo_keys)
    return rows[0].deployment.version if rows else None


def row_for_github(
    tx: Tx, pair: tuple[str, str], *, sha: str, at: float, tolerance: float, tag_pattern: str | None
) -> Deployment | None:
    """The row a successful GitHub deployment of ``sha`` at ``at`` adopts, or ``None``.
    ``tag_pattern``: the service's, to read a SHA from an unresolved row's version (``None``: the
    service is not configured, so only a resolved commit matches)."""
    candidates = sorted(
        (c for c in tx.in_time_range(*pair, at - tolerance, at + tolerance) if c.explained and not c.github),
        key=lambda c: (abs(c.at - at), c.deployment.id),
    )
    for c in candidates:
        d = c.deployment
        if d.commit == sha:
            return d
        candidate = hex_candidate(d.version, tag_pattern) if d.commit is None and tag_pattern is not None else None
        if candidate is not None and sha.startswith(candidate):
            return d
    return None
