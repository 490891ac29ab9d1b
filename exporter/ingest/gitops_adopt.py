# SPDX-License-Identifier: Apache-2.0
"""A GitOps value whose deployment an external source recorded first: adopt that row.

Split from ``ingest.gitops`` as the multi-source case of recording a value: Argo CD (or GitHub)
already recorded this deployment (it synced this manifest commit, or deployed this source commit,
before the GitOps poll): one real deployment, one row. GitOps adds the version and changes; the
external time stays. Which row is adopted is ``ingest.unify``'s rule.
"""

from __future__ import annotations

from exporter.ingest.gitops_links import Latest, Link, Links
from exporter.model import Deployment, ManifestValue
from exporter.settings import ServiceConfig
from exporter.sources.git.commitgraph import ChangeLister
from exporter.store import Tx

__all__ = ["adopt"]


def adopt(
    tx: Tx,
    external: Deployment,
    value: ManifestValue,
    *,
    repo_key: str,
    svc: ServiceConfig | None,
    key: str,
    commit: str | None,
    source_git: ChangeLister | None,
    deferred: bool,
    latest: Latest,
    links: Links,
) -> None:
    """Make ``external`` the GitOps deployment of ``value`` (manifest repository ``repo_key``, natural
    key ``key``, source ``commit``), its changes listed after the deployment before it: queued on
    ``links``, or left to GitHub when the service's repository is ``deferred`` to it."""
    base = tx.previous_deployment(value.service, value.environment, external.deployed_at.timestamp(), external.id)
    tx.adopt_deployment(external.id, value.value, repo_key, commit, value.message, value.commit)
    latest.forget(value.service, value.environment)
    if deferred and svc is not None and svc.repo:
        tx.add_pending_changes(external.id, svc.repo, key)  # its commit and changes come from GitHub
    if svc is not None:
        adopted = Deployment(
            external.id, value.service, value.environment, value.value, value.committed_at, external.source,
            value.commit, commit, value.message,
        )  # fmt: skip
        links.add(Link(adopted, source_git, svc.paths, base, None))
