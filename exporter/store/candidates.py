# SPDX-License-Identifier: Apache-2.0
"""Plain access to the rows a new observation may turn out to be: by manifest commit, by pair
and time range, by source. Which of them it *is* is decided in ``exporter.ingest.unify``; these
queries only find rows and say what already points at them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

from exporter.keys import gitops_natural_key
from exporter.model import Deployment, DeploymentSource
from exporter.store.base import Queries
from exporter.store.connection import Row
from exporter.store.deployments import DEPLOYMENT_COLS, deployment_of

__all__ = [
    "BY_MANIFEST_COMMIT",
    "IN_TIME_RANGE",
    "IN_TIME_RANGE_OF_SOURCE",
    "UNEXPLAINED_BY_MANIFEST_COMMIT",
    "Candidate",
    "CandidateReads",
    "by_manifest_commit_args",
]

# what the store knows of each candidate beside the row: explained by a GitOps commit (it has a
# manifest repository), an Argo CD history entry is it, a GitHub deployment is it
_CANDIDATE_COLS = (
    f"{DEPLOYMENT_COLS}, manifest_repo IS NOT NULL, "  # noqa: S608
    "EXISTS (SELECT 1 FROM argocd_history h WHERE h.deployment_id = d.id), "
    "EXISTS (SELECT 1 FROM github_deployments g WHERE g.deployment_id = d.id)"
)

# The rows a manifest commit explains for one pair: the GitOps row, found by its natural key (one per
# configured GitOps repository), and any external row GitOps explained, on the external-rows index.
# Its ``source != 'gitops'`` term is the partial index's own condition, which lets the planner use it;
# the unary ``+`` keeps it off the pair index, which would walk every deployment of the pair.
BY_MANIFEST_COMMIT = (
    "d.id IN (SELECT id FROM deployments WHERE natural_key IN (SELECT value FROM json_each(:keys)) "
    "UNION ALL SELECT id FROM deployments WHERE source != 'gitops' AND manifest_repo IN "
    "(SELECT value FROM json_each(:repos)) AND manifest_commit = :m AND +service = :s AND +environment = :e)"
)

UNEXPLAINED_BY_MANIFEST_COMMIT = (
    f"SELECT {_CANDIDATE_COLS} FROM deployments d WHERE source != 'gitops' "  # noqa: S608
    "AND manifest_repo IS NULL AND manifest_commit = ? AND +service = ? AND +environment = ?"
)
IN_TIME_RANGE = (
    f"SELECT {_CANDIDATE_COLS} FROM deployments d WHERE service = ? AND environment = ? "  # noqa: S608
    "AND deployed_at BETWEEN ? AND ?"
)
IN_TIME_RANGE_OF_SOURCE = IN_TIME_RANGE + " AND source = ?"


def by_manifest_commit_args(
    service: str, environment: str, manifest_commit: str, repo_keys: Sequence[str]
) -> dict[str, str]:
    """The named arguments of ``BY_MANIFEST_COMMIT``."""
    keys = [gitops_natural_key(r, manifest_commit, service, environment) for r in repo_keys]
    repos = json.dumps(list(repo_keys))
    return {"keys": json.dumps(keys), "repos": repos, "m": manifest_commit, "s": service, "e": environment}


class Candidate(NamedTuple):
    """A stored deployment, with what already claims it."""

    deployment: Deployment
    at: float  # deployed_at as stored, in seconds
    explained: bool  # a GitOps manifest commit explains it (its row, or one GitOps adopted)
    synced: bool  # an Argo CD history entry is it
    github: bool  # a GitHub deployment (a successful one) is it


def _candidate(row: Row) -> Candidate:
    return Candidate(deployment_of(row), row[4], bool(row[11]), bool(row[12]), bool(row[13]))


class CandidateReads(Queries):
    """The access queries behind the multi-source rule."""

    def by_manifest_commit(
        self, service: str, environment: str, manifest_commit: str, repo_keys: Sequence[str]
    ) -> list[Candidate]:
        """The pair's rows a GitOps manifest commit explains (the GitOps rows of ``repo_keys``, the
        configured GitOps repositories, and the external rows GitOps adopted), oldest row first."""
        rows = self.conn.execute(
            f"SELECT {_CANDIDATE_COLS} FROM deployments d WHERE {BY_MANIFEST_COMMIT} ORDER BY id",  # noqa: S608
            by_manifest_commit_args(service, environment, manifest_commit, repo_keys),
        )
        return [_candidate(r) for r in rows]

    def unexplained_by_manifest_commit(self, service: str, environment: str, manifest_commit: str) -> list[Candidate]:
        """The pair's rows an external source recorded with ``manifest_commit`` and no GitOps
        commit explains yet. On the external-rows index (its own ``source != 'gitops'`` term); the
        unary ``+`` keeps the planner off the pair index, which walks every deployment of the pair
        (this runs once per GitOps deployment)."""
        rows = self.conn.execute(UNEXPLAINED_BY_MANIFEST_COMMIT, (manifest_commit, service, environment))
        return [_candidate(r) for r in rows]

    def in_time_range(
        self, service: str, environment: str, lo: float, hi: float, source: DeploymentSource | None = None
    ) -> list[Candidate]:
        """The pair's rows deployed between ``lo`` and ``hi`` (inclusive), a range of the pair index;
        only those ``source`` recorded first, if given (checked before a row is built, which matters
        on a busy pair: a GitOps deployment looks for the one GitHub row among a window of its own)."""
        if source is None:
            rows = self.conn.execute(IN_TIME_RANGE, (service, environment, lo, hi))
        else:
            rows = self.conn.execute(IN_TIME_RANGE_OF_SOURCE, (service, environment, lo, hi, source.value))
        return [_candidate(r) for r in rows]

    def has_unexplained_external(self) -> bool:
        """Whether any Argo CD or GitHub deployment has no GitOps explanation yet (one index probe)."""
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM deployments WHERE source != 'gitops' AND manifest_repo IS NULL)"
        ).fetchone()
        return bool(row[0])

    def gitops_deployments_of_pair(
        self, service: str, environment: str, limit: int = 50
    ) -> list[tuple[Deployment, str, bool]]:
        """(deployment, manifest repo key, claimed by an Argo CD entry) of a pair's GitOps rows, newest first."""
        rows: Any = self.conn.execute(
            f"SELECT {DEPLOYMENT_COLS}, manifest_repo, "  # noqa: S608
            "EXISTS (SELECT 1 FROM argocd_history h WHERE h.deployment_id = d.id) FROM deployments d "
            "WHERE service = ? AND environment = ? AND manifest_repo IS NOT NULL AND manifest_commit IS NOT NULL "
            "ORDER BY deployed_at DESC, id DESC LIMIT ?",
            (service, environment, limit),
        )
        return [(deployment_of(r), str(r[11]), bool(r[12])) for r in rows]
