# SPDX-License-Identifier: Apache-2.0
"""Versioned migrations, applied in order and recorded in ``PRAGMA user_version``.

Every table has a natural key so that every write is an idempotent upsert: a re-run, a restart
or an interrupted ingest converges on the same rows.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.store import changes
from exporter.store.connection import Connection

__all__ = ["CHANGES_TABLE", "MIGRATIONS", "Migration"]

Migration = str | Callable[[Connection], None]

CHANGES_TABLE = """
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY,
        key INTEGER NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        sha TEXT NOT NULL,
        deployment_id INTEGER NOT NULL REFERENCES deployments (id),
        author_time REAL NOT NULL,
        commit_time REAL NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        pr_checked INTEGER NOT NULL DEFAULT 0,
        pr_number INTEGER,
        pr_first_commit_time REAL,
        pr_opened_at REAL,
        pr_merged_at REAL
    )
"""
_COPY_CHUNK = 20_000


def _changes_in_arrival_order(conn: Connection) -> None:
    """Migration 6: the changes table becomes a rowid table in arrival order, unique on a narrow
    integer key (``store.changes``) instead of a primary key on (service, environment, sha).

    The rows are copied through the same insert as new changes take, in deployment order. The
    deployment index now carries the SHA too: it no longer comes with the primary key, and a
    window's lead times are still read from indexes alone."""
    conn.execute("ALTER TABLE changes RENAME TO changes_v5")
    conn.execute(CHANGES_TABLE)
    conn.execute("CREATE UNIQUE INDEX changes_key ON changes (key)")
    rows = conn.execute(
        "SELECT service, environment, sha, deployment_id, author_time, commit_time, subject, pr_checked, pr_number, "
        "pr_first_commit_time, pr_opened_at, pr_merged_at FROM changes_v5 ORDER BY deployment_id, commit_time, sha"
    )
    while chunk := rows.fetchmany(_COPY_CHUNK):
        changes.insert(conn, chunk)
    conn.execute("DROP TABLE changes_v5")
    conn.execute(
        "CREATE INDEX changes_deployment_start "
        "ON changes (deployment_id, commit_time, author_time, pr_first_commit_time, sha)"
    )


MIGRATIONS: tuple[Migration, ...] = (
    # 1: the core model
    """
    CREATE TABLE deployments (
        id INTEGER PRIMARY KEY,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        version TEXT NOT NULL,
        deployed_at REAL NOT NULL,
        source TEXT NOT NULL,
        natural_key TEXT NOT NULL UNIQUE,
        manifest_repo TEXT,
        manifest_commit TEXT,
        commit_sha TEXT,
        message TEXT NOT NULL DEFAULT '',
        rework INTEGER NOT NULL DEFAULT 0,
        baseline INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX deployments_pair ON deployments (service, environment, deployed_at);
    CREATE INDEX deployments_manifest ON deployments (manifest_repo, manifest_commit);

    CREATE TABLE changes (
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        sha TEXT NOT NULL,
        deployment_id INTEGER NOT NULL REFERENCES deployments (id),
        author_time REAL NOT NULL,
        commit_time REAL NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (service, environment, sha)
    ) WITHOUT ROWID;
    CREATE INDEX changes_deployment ON changes (deployment_id);

    CREATE TABLE failures (
        id INTEGER PRIMARY KEY,
        natural_key TEXT NOT NULL UNIQUE,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        reason TEXT NOT NULL,
        deployment_id INTEGER REFERENCES deployments (id),
        started_at REAL NOT NULL,
        restored_at REAL,
        restored_by INTEGER REFERENCES deployments (id),
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX failures_pair ON failures (service, environment);

    CREATE TABLE unmatched (
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        key TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        first_seen REAL NOT NULL,
        PRIMARY KEY (source, reason, key)
    ) WITHOUT ROWID;

    CREATE TABLE gitops_state (
        repo TEXT NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (repo, service, environment)
    ) WITHOUT ROWID;

    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 2: Argo CD: history entries, sync operations, health transitions, per-app state, webhook hints
    """
    CREATE TABLE argocd_apps (
        uid TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        namespace TEXT NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        max_history_id INTEGER,
        health TEXT,
        healthy_since REAL,
        sync_failing INTEGER NOT NULL DEFAULT 0,
        deleted INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;

    CREATE TABLE argocd_history (
        uid TEXT NOT NULL,
        history_id INTEGER NOT NULL,
        app_name TEXT NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        revision TEXT,
        started_at REAL,
        deployed_at REAL NOT NULL,
        deployment_id INTEGER REFERENCES deployments (id),
        PRIMARY KEY (uid, history_id)
    ) WITHOUT ROWID;
    CREATE INDEX argocd_history_deployment ON argocd_history (deployment_id);

    CREATE TABLE argocd_operations (
        uid TEXT NOT NULL,
        started_at REAL NOT NULL,
        app_name TEXT NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        phase TEXT NOT NULL,
        finished_at REAL,
        retry_count INTEGER NOT NULL DEFAULT 0,
        revision TEXT,
        message TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (uid, started_at)
    ) WITHOUT ROWID;

    CREATE TABLE argocd_health (
        uid TEXT NOT NULL,
        at REAL NOT NULL,
        status TEXT NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        PRIMARY KEY (uid, at)
    ) WITHOUT ROWID;

    CREATE TABLE argocd_gaps (
        uid TEXT NOT NULL,
        from_id INTEGER NOT NULL,
        to_id INTEGER NOT NULL,
        PRIMARY KEY (uid, from_id)
    ) WITHOUT ROWID;

    CREATE TABLE webhook_events (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        received_at REAL NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;
    """,
    # 3: GitHub source: pull request facts of a change, deployments whose commit and changes are still to
    # be read through the API, and a cache of immutable or ETag-validated answers
    """
    ALTER TABLE changes ADD COLUMN pr_checked INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE changes ADD COLUMN pr_number INTEGER;
    ALTER TABLE changes ADD COLUMN pr_first_commit_time REAL;
    ALTER TABLE changes ADD COLUMN pr_opened_at REAL;
    ALTER TABLE changes ADD COLUMN pr_merged_at REAL;

    CREATE TABLE pending_changes (
        deployment_id INTEGER PRIMARY KEY REFERENCES deployments (id),
        repo TEXT NOT NULL,
        natural_key TEXT NOT NULL
    );

    CREATE TABLE github_cache (
        key TEXT PRIMARY KEY,
        etag TEXT,
        body TEXT NOT NULL,
        updated_at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 4: the index that finds a deployment's changes also carries their start times, so reading a
    # window's lead times (every recompute) never visits the changes table itself
    """
    CREATE INDEX changes_deployment_start ON changes (deployment_id, commit_time, author_time, pr_first_commit_time);
    DROP INDEX changes_deployment;
    """,
    # 5: GitHub Deployments API: every deployment read (per repository, by id), its latest state, whether
    # it is final, and the rows its success and its failure became. The per-repository high-water mark
    # is a cursor; the rows not final yet are the ones revisited.
    """
    CREATE TABLE github_deployments (
        repo TEXT NOT NULL,
        id INTEGER NOT NULL,
        service TEXT NOT NULL,
        environment TEXT NOT NULL,
        sha TEXT NOT NULL,
        created_at REAL NOT NULL,
        state TEXT NOT NULL,
        terminal INTEGER NOT NULL DEFAULT 0,
        deployment_id INTEGER REFERENCES deployments (id),
        failed_deployment_id INTEGER REFERENCES deployments (id),
        PRIMARY KEY (repo, id)
    ) WITHOUT ROWID;
    CREATE INDEX github_deployments_deployment ON github_deployments (deployment_id);
    CREATE INDEX github_deployments_open ON github_deployments (terminal, repo);
    """,
    # 6: changes in arrival order, unique on a narrow key (see _changes_in_arrival_order)
    _changes_in_arrival_order,
    # 7: the manifest-commit index holds only the rows external sources (Argo CD, GitHub) recorded.
    # A GitOps row is found by its natural key, which carries its manifest commit; every GitOps
    # insert no longer pays a second random-key index.
    """
    DROP INDEX deployments_manifest;
    CREATE INDEX deployments_external_manifest ON deployments (manifest_repo, manifest_commit)
        WHERE source != 'gitops';
    """,
    # 8: bounded reads. /api/deployments pages through every deployment in (deployed_at, id) order
    # and reads only the failures of a page's deployments; webhook events past the dedupe horizon
    # are pruned oldest first. Deployments arrive mostly in time order, so the time index is
    # appended to, not written at random keys.
    """
    CREATE INDEX IF NOT EXISTS deployments_time ON deployments (deployed_at);
    CREATE INDEX IF NOT EXISTS failures_deployment ON failures (deployment_id) WHERE deployment_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS failures_restored_by ON failures (restored_by) WHERE restored_by IS NOT NULL;
    CREATE INDEX IF NOT EXISTS webhook_events_received ON webhook_events (received_at);
    """,
)
