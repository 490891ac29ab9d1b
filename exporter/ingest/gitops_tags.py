# SPDX-License-Identifier: Apache-2.0
"""Which source commit a GitOps value's tag names, in its service's source repository.

Split from ``ingest.gitops``: the tag pattern (``v{tag}``, a bare sha, ...) says where the commit
is; a value whose tag names nothing there is still a deployment, recorded without a commit, and
the miss is kept as a skip so that it shows on the landing page once, not on every poll.
"""

from __future__ import annotations

import structlog

from exporter.core.correlate import tag_commit_candidate
from exporter.model import ManifestValue, Skip
from exporter.sources.git.commitgraph import ChangeLister
from exporter.store import Tx

__all__ = ["resolve_tag"]

log = structlog.get_logger(__name__)


def resolve_tag(
    tx: Tx, lister: ChangeLister, value: ManifestValue, *, tag_pattern: str, key: str
) -> tuple[str | None, bool]:
    """(the commit ``value``'s tag names through ``lister``, or ``None``; whether an unresolved tag
    was newly recorded as a skip, keyed by the deployment's natural ``key``)."""
    candidate = tag_commit_candidate(value.value, tag_pattern)
    commit = lister.resolve(candidate) if candidate else None
    if commit is None and tx.record_skip(
        Skip("gitops", "unresolved_tag", key, f"{value.service} {value.environment} tag {value.value}")
    ):
        log.warning("gitops.unresolved_tag", service=value.service, environment=value.environment, tag=value.value)
        return None, True
    return commit, False
