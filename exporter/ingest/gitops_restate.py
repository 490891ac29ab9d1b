# SPDX-License-Identifier: Apache-2.0
"""After a force-push: which recorded GitOps deployments survive, and what the new head restates.

Split from ``ingest.gitops`` because a force-push is the rare path: the ingester replays the
rewritten history through its ordinary per-commit code, and this module holds what only that
replay needs, the deployments the rewrite dropped (``Reconcile``) and the values the new head
declares without a commit setting them (``restated``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from exporter.ingest.gitops_links import Latest
from exporter.keys import gitops_restated_key
from exporter.model import ManifestValue
from exporter.sources import gitops
from exporter.sources.git.repository import Git
from exporter.store import Tx

__all__ = ["Reconcile", "restated", "survivors"]

log = structlog.get_logger(__name__)


@dataclass
class Reconcile:
    """Deployments recorded from commits a force-push dropped, per pair, oldest first.

    They happened (Argo CD synced them), so they stay. When the rewritten history sets the same
    value again, the old deployment is re-linked to the new commit instead of counted twice.
    """

    orphans: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)
    fresh: set[tuple[str, str]] = field(default_factory=set)  # pairs whose last replayed value is a new row

    def claim(self, pair: tuple[str, str], version: str) -> int | None:
        queue = self.orphans.get(pair, [])
        for i, (dep_id, v) in enumerate(queue):
            if v == version:
                del queue[: i + 1]
                return dep_id
        return None


def survivors(tx: Tx, repo_key: str, keep: set[str]) -> tuple[gitops.PairState, Reconcile]:
    """Split the repository's recorded deployments by whether their manifest commit is still on
    the new head's first-parent line (``keep``): the survivors' values start the replay's state,
    the others wait in ``Reconcile`` to be re-linked or to stay as they are."""
    rc = Reconcile()
    state: gitops.PairState = {}
    for dep_id, service, env, version, manifest_commit in tx.gitops_deployments(repo_key):
        if manifest_commit in keep:
            state[(service, env)] = version
        else:
            rc.orphans.setdefault((service, env), []).append((dep_id, version))
    return state, rc


def restated(
    tx: Tx,
    latest: Latest,
    git: Git,
    state: gitops.PairState,
    *,
    rc: Reconcile,
    repo_key: str,
    old_head: str,
    head: str,
    clock: Callable[[], datetime],
) -> Iterator[tuple[ManifestValue, str]]:
    """After a force-push replay: what the new head declares for each pair whose latest recorded
    value differs, with its natural key, for the caller to deploy (one at a time: each is read
    after the previous one is recorded). A reset back to an earlier bump sets nothing new, and a
    rewritten commit re-applying an earlier value re-links that value's old deployment; either way
    the pair now runs the head's value, not the dropped one. Git does not record when a branch was
    force-updated: the deployment is timed when this poll sees it (``clock``)."""
    recorded: dict[tuple[str, str], str] = {}
    for _, service, environment, version, _ in tx.gitops_deployments(repo_key):  # oldest first
        recorded[(service, environment)] = version
    moved = sorted(
        (pair, value) for pair, value in state.items() if pair not in rc.fresh and recorded.get(pair) != value
    )
    if not moved:
        return
    subject = git.run("show", "-s", "--format=%s", head).strip()
    seen = clock()
    for (service, environment), value in moved:
        prev, _ = latest.get(service, environment)
        at = seen if prev is None else max(seen, prev.deployed_at)
        log.info(
            "gitops.force_push_moved_back",
            repo=repo_key,
            service=service,
            environment=environment,
            version=value,
            replaced=recorded.get((service, environment)),
        )
        declared = ManifestValue(service, environment, value, "", head, at, subject)
        yield declared, gitops_restated_key(repo_key, old_head, head, service, environment)
