# SPDX-License-Identifier: Apache-2.0
"""Every natural key the exporter stores, built in one place.

A natural key is how a row is found again when its input is read again (an ingest re-run, a
restart, a webhook after a watch event): every write is an idempotent insert or upsert on one, so
a key's format is part of the stored data and must never change for existing rows. Pure functions.
"""

from __future__ import annotations

__all__ = [
    "argocd_deployment_key",
    "argocd_failed_sync_deployment_key",
    "argocd_failure_prefixes",
    "degraded_key",
    "github_commit_cache_key",
    "github_deployment_failed_key",
    "github_deployment_failure_key",
    "github_deployment_key",
    "github_environment_key",
    "github_pulls_cache_key",
    "gitops_natural_key",
    "gitops_restated_key",
    "incident_key",
    "rollback_key",
    "sync_failed_key",
]


# -- deployments ------------------------------------------------------------------------------


def gitops_natural_key(repo_key: str, manifest_commit: str, service: str, environment: str) -> str:
    """The natural key of the deployment a GitOps manifest commit made for a pair: how the store
    finds it again (an ingest re-run, an Argo CD sync of that commit)."""
    return f"gitops:{repo_key}:{manifest_commit}:{service}:{environment}"


def gitops_restated_key(repo_key: str, old_head: str, new_head: str, service: str, environment: str) -> str:
    """The deployment of the value a force-pushed head declares for a pair whose latest recorded
    value differs (a reset back to an earlier bump): the rewritten commit that set the value may
    already key the value's first deployment, so the branch's move from ``old_head`` keys this one."""
    return f"gitops-restated:{repo_key}:{old_head}:{new_head}:{service}:{environment}"


def argocd_deployment_key(uid: str, history_id: int) -> str:
    """The deployment of one Argo CD history entry of an application (by its uid)."""
    return f"argocd:{uid}:{history_id}"


def argocd_failed_sync_deployment_key(uid: str, started_at: float) -> str:
    """The deployment attempted by a sync operation that ended Failed or Error (by its start)."""
    return f"argocd-op:{uid}:{started_at:.3f}"


def github_deployment_key(repo: str, deployment_id: int) -> str:
    """The deployment of a successful GitHub deployment; also the key its unusable inputs count under."""
    return f"github-deployment:{repo}:{deployment_id}"


def github_deployment_failed_key(repo: str, deployment_id: int) -> str:
    """The deployment attempted by a GitHub deployment whose final state is a failure."""
    return f"github-deployment-failed:{repo}:{deployment_id}"


# -- failures ---------------------------------------------------------------------------------


def rollback_key(deployment_id: int) -> str:
    """The rollback failure of a deployment that a later one went back from."""
    return f"rollback:{deployment_id}"


def sync_failed_key(uid: str, started_at: float) -> str:
    """The failure of an Argo CD sync operation that ended Failed or Error."""
    return f"sync_failed:{uid}:{started_at:.3f}"


def degraded_key(uid: str, at: float) -> str:
    """The failure of an Argo CD application turning Degraded at ``at``."""
    return f"degraded:{uid}:{at:.3f}"


def argocd_failure_prefixes(uid: str) -> tuple[str, ...]:
    """The prefixes of every failure one Argo CD application raised itself (its failed syncs and
    degradations): what its deletion restores."""
    return (f"sync_failed:{uid}:", f"degraded:{uid}:")


def github_deployment_failure_key(repo: str, deployment_id: int) -> str:
    """The failure of a GitHub deployment whose final state is a failure."""
    return f"deployment_failed:{repo}:{deployment_id}"


def incident_key(repo: str, number: int) -> str:
    """An incident, from a GitHub issue."""
    return f"incident:{repo}#{number}"


# -- skips and caches -------------------------------------------------------------------------


def github_environment_key(repo: str, environment: str) -> str:
    """An unknown GitHub environment name of a repository, counted once as unusable."""
    return f"{repo}:{environment}"


def github_commit_cache_key(repo: str, sha: str) -> str:
    """The cached answer of a commit's changed files."""
    return f"commit:{repo}:{sha}"


def github_pulls_cache_key(repo: str, sha: str) -> str:
    """The cached answer of the pull request that brought a commit in."""
    return f"pulls-of:{repo}:{sha}"
