# SPDX-License-Identifier: Apache-2.0
"""A store's rows compared by their natural data, for tests that ingest the same history two ways."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["Rows", "natural_rows"]

Rows = dict[str, list[tuple[Any, ...]]]


def natural_rows(db: Path) -> Rows:
    """Every table as sorted tuples of natural data: no row ids, no wall-clock bookkeeping."""
    conn = sqlite3.connect(db)
    try:
        q = conn.execute
        return {
            "deployments": sorted(
                q(
                    "SELECT service, environment, version, deployed_at, source, natural_key, manifest_repo, "
                    "manifest_commit, commit_sha, message, rework, baseline FROM deployments"
                )
            ),
            "changes": sorted(
                q(
                    "SELECT c.service, c.environment, c.sha, d.natural_key, c.author_time, c.commit_time, c.subject "
                    "FROM changes c JOIN deployments d ON d.id = c.deployment_id"
                )
            ),
            "failures": sorted(
                q(
                    "SELECT f.service, f.environment, f.reason, f.started_at, f.restored_at, f.detail, "
                    "failed.natural_key, restorer.natural_key FROM failures f "
                    "LEFT JOIN deployments failed ON failed.id = f.deployment_id "
                    "LEFT JOIN deployments restorer ON restorer.id = f.restored_by"
                )
            ),
            "unmatched": sorted(q("SELECT source, reason, key, detail FROM unmatched")),
            "gitops_state": sorted(q("SELECT repo, service, environment, value FROM gitops_state")),
            "cursors": sorted(q("SELECT name, value FROM cursors")),
        }
    finally:
        conn.close()
