# SPDX-License-Identifier: Apache-2.0
"""The SQLite store: migrations, WAL, restart idempotence, and convergence after ``kill -9`` mid-ingest."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from exporter.demo import generate
from exporter.errors import StoreError
from exporter.ingest import gitops as ingesting
from exporter.ingest import unify
from exporter.keys import gitops_natural_key
from exporter.model import DeploymentSource
from exporter.store import GitHubDeploymentRow, Store
from exporter.store.candidates import (
    BY_MANIFEST_COMMIT,
    IN_TIME_RANGE,
    IN_TIME_RANGE_OF_SOURCE,
    UNEXPLAINED_BY_MANIFEST_COMMIT,
    by_manifest_commit_args,
)
from exporter.store.history import window_leads_sql
from exporter.store.migrations import MIGRATIONS
from tests.support.gitrepo import HOUR, MINUTE, T0, Exporter, GitRepo, manifest, values_yaml
from tests.support.paths import PROJECT_ROOT
from tests.support.store_rows import Rows, natural_rows

TABLES = {"deployments", "changes", "failures", "unmatched", "gitops_state", "cursors"} | {
    "argocd_apps", "argocd_history", "argocd_operations", "argocd_health", "argocd_gaps", "webhook_events",
    "github_cache", "pending_changes", "github_deployments",
}  # fmt: skip


def raw_rows(db: Path) -> Rows:
    """Every table exactly as stored, ids included (for the same database before and after a restart)."""
    conn = sqlite3.connect(db)
    try:
        out = {}
        for table in sorted(TABLES):
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            if table == "cursors":
                columns.remove("updated_at")
            if table == "unmatched":
                columns.remove("first_seen")
            out[table] = sorted(conn.execute(f"SELECT {', '.join(columns)} FROM {table}"))
        return out
    finally:
        conn.close()


# -- schema --------------------------------------------------------------------------------------


def test_migrations_set_user_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dora.db"
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS) == 8
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == TABLES
        with store.transaction() as tx:
            tx.set_cursor("probe", "abc")
    finally:
        store.close()

    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    finally:
        conn.close()

    reopened = Store(path)  # a second open migrates nothing and keeps the data
    try:
        assert reopened.schema_version == len(MIGRATIONS)
        assert reopened.cursor("probe") == "abc"
    finally:
        reopened.close()


def test_a_version_1_store_migrates_to_github_columns_keeping_its_changes(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO deployments (id, service, environment, version, deployed_at, source, natural_key) "
        "VALUES (1, 's', 'prod', 'v1', 100, 'gitops', 'k')"
    )
    conn.execute("INSERT INTO changes VALUES ('s', 'prod', 'abc', 1, 10, 20, 'msg')")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        [change] = store.changes_of(1)
        assert (change.sha, change.pr_checked, change.pull_request) == ("abc", False, None)
        assert store.changes_without_pull_request() == 0
    finally:
        store.close()


@pytest.mark.parametrize("change_start", ["commit_time", "author_time", "pr_first_commit"])
def test_a_windows_lead_times_are_read_from_indexes_alone(tmp_path: Path, change_start: str) -> None:
    """Every recompute reads the longest window's lead times; visiting the changes table row by
    row for them was most of a recompute on a large store."""
    store = Store(tmp_path / "dora.db")
    try:
        plan = [r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + window_leads_sql(change_start), ("s", "e", 0))]
    finally:
        store.close()
    assert len(plan) == 2, plan
    assert "COVERING INDEX deployments_pair" in plan[0]
    assert "COVERING INDEX changes_deployment_start" in plan[1]


def test_a_version_3_store_migrates_to_github_deployments_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    conn = sqlite3.connect(path)
    conn.executescript("\n".join(MIGRATIONS[:3]) + "\nPRAGMA user_version = 3;")
    conn.execute(
        "INSERT INTO deployments (id, service, environment, version, deployed_at, source, natural_key, commit_sha) "
        "VALUES (1, 's', 'prod', 'v1', 100, 'gitops', 'k', 'abc')"
    )
    conn.execute("INSERT INTO cursors VALUES ('gitops:x', 'head', 1)")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS) == 8  # through 4 (an index), 5, 6, 7 and 8
        assert [d.commit for d in store.deployments()] == ["abc"] and store.cursor("gitops:x") == "head"
        assert store.open_github_deployments("acme/shop") == []
        row = GitHubDeploymentRow("acme/shop", 7, "s", "prod", "f" * 40, 50.0, "in_progress", False)
        with store.transaction() as tx:
            tx.upsert_github_deployment(row)
            tx.upsert_github_deployment(dataclasses.replace(row, state="success", terminal=True, deployment_id=1))
            tx.upsert_github_deployment(dataclasses.replace(row, state="inactive", terminal=True))  # keeps the link
        assert store.github_deployment("acme/shop", 7) == dataclasses.replace(
            row, state="inactive", terminal=True, deployment_id=1
        )
        assert store.open_github_deployments("acme/shop") == []
    finally:
        store.close()


def _manifest_rows(store: Store) -> dict[str, int]:
    """A GitOps row, an Argo CD row no GitOps commit explained, and a GitHub row GitOps explained."""
    ids = {}
    with store.transaction() as tx:
        for name, key, source, repo, commit in [
            ("gitops", gitops_natural_key("r1", "m1", "s", "prod"), DeploymentSource.GITOPS, "r1", "m1"),
            ("argocd", "argocd:uid:1", DeploymentSource.ARGOCD, None, "m2"),
            ("github", "github:acme/shop:7", DeploymentSource.GITHUB, "r1", "m3"),
        ]:
            ids[name], _ = tx.add_deployment(
                natural_key=key, service="s", environment="prod", version=f"v-{name}", deployed_at=100.0,
                source=source, manifest_repo=repo, manifest_commit=commit, commit=None, message="", baseline=False,
            )  # fmt: skip
    return ids


def _check_manifest_lookups(store: Store, ids: dict[str, int]) -> None:
    with store.transaction() as tx:
        found = unify.row_for_argocd_sync(tx, ("s", "prod"), "m1", repo_keys=["r1"])
        assert found is not None and found.id == ids["gitops"]
        assert unify.row_for_argocd_sync(tx, ("s", "prod"), "m1", repo_keys=["another-repo"]) is None
        assert unify.row_for_argocd_sync(tx, ("s", "staging"), "m1", repo_keys=["r1"]) is None
        explained = unify.row_for_argocd_sync(tx, ("s", "prod"), "m3", repo_keys=["r1"])
        assert explained is not None and explained.id == ids["github"]
        assert unify.row_for_argocd_sync(tx, ("s", "prod"), "m2", repo_keys=["r1"]) is None  # not explained by GitOps
        assert unify.gitops_version(tx, ("s", "prod"), "m1", repo_keys=["r1"]) == "v-gitops"
        assert unify.gitops_version(tx, ("s", "prod"), "m2", repo_keys=["r1"]) is None
        assert tx.has_unexplained_external()
    plan = " | ".join(
        r[3]
        for r in store.conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM deployments d WHERE {BY_MANIFEST_COMMIT}",
            by_manifest_commit_args("s", "prod", "m1", ["r1"]),
        )
    )
    assert "sqlite_autoindex_deployments_1 (natural_key=?)" in plan
    assert "deployments_external_manifest (manifest_repo=? AND manifest_commit=?)" in plan
    assert "deployments_pair" not in plan  # never a walk of the pair's deployments


def test_unification_candidates_are_read_on_the_external_and_pair_indexes(tmp_path: Path) -> None:
    """A GitOps deployment looks for the external rows of its manifest commit on the external-rows
    index (never a walk of the pair's deployments) and for rows near its time on a range of the
    pair index; what claims each candidate is one probe of an index."""
    store = Store(tmp_path / "dora.db")
    try:
        plans = {
            name: " | ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql, args))
            for name, sql, args in (
                ("manifest", UNEXPLAINED_BY_MANIFEST_COMMIT, ("m1", "s", "prod")),
                ("range", IN_TIME_RANGE, ("s", "prod", 0.0, 1.0)),
                ("range of a source", IN_TIME_RANGE_OF_SOURCE, ("s", "prod", 0.0, 1.0, "github")),
            )
        }
    finally:
        store.close()
    assert "deployments_external_manifest (manifest_repo=? AND manifest_commit=?)" in plans["manifest"]
    assert "deployments_pair" not in plans["manifest"]
    for name in ("range", "range of a source"):
        assert "deployments_pair (service=? AND environment=? AND deployed_at>? AND deployed_at<?)" in plans[name]
    for plan in plans.values():
        assert "COVERING INDEX argocd_history_deployment (deployment_id=?)" in plan
        assert "COVERING INDEX github_deployments_deployment (deployment_id=?)" in plan


def test_manifest_commits_find_gitops_rows_by_natural_key_and_external_rows_by_index(tmp_path: Path) -> None:
    """Only external rows are in the manifest-commit index (a GitOps insert pays one random-key
    index fewer); a GitOps row is found by its natural key, which carries its manifest commit."""
    store = Store(tmp_path / "dora.db")
    try:
        ids = _manifest_rows(store)
        indexed = store.conn.execute(
            "SELECT COUNT(*) FROM deployments INDEXED BY deployments_external_manifest WHERE source != 'gitops'"
        ).fetchone()[0]
        assert indexed == 2
        _check_manifest_lookups(store, ids)
    finally:
        store.close()


def test_a_version_6_store_migrates_to_the_external_manifest_index(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    store = Store(path)
    ids = _manifest_rows(store)
    store.close()
    conn = sqlite3.connect(path)  # back to schema 6: the manifest index over every row
    conn.executescript(
        "DROP INDEX deployments_external_manifest;"
        "CREATE INDEX deployments_manifest ON deployments (manifest_repo, manifest_commit);"
        "PRAGMA user_version = 6;"
    )
    conn.close()
    store = Store(path)
    try:
        assert store.schema_version == len(MIGRATIONS)
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "deployments_external_manifest" in names and "deployments_manifest" not in names
        _check_manifest_lookups(store, ids)
    finally:
        store.close()


def test_nested_transactions_are_savepoints_of_the_outer_one(tmp_path: Path) -> None:
    store = Store(tmp_path / "dora.db")
    try:
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set_cursor("outer", "1")
            with store.transaction() as inner:
                inner.cache_put("k", None, "v")
            with pytest.raises(KeyError), store.transaction() as inner:
                inner.cache_put("gone", None, "v")
                raise KeyError("inner fails alone")
            assert tx.cache_get("k") == (None, "v") and tx.cache_get("gone") is None
            raise RuntimeError("the outer one fails: everything goes")
        assert store.cache_get("k") is None and store.cursor("outer") is None
        with store.transaction() as tx, store.transaction() as inner:
            inner.cache_put("k", "e", "v")
        assert store.cache_get("k") == ("e", "v")
    finally:
        store.close()


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer than this version knows"):
        Store(path)


def test_a_failed_write_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "dora.db")
    try:
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.set_cursor("gitops:x", "abc")
            raise RuntimeError("crash mid-batch")
        assert store.cursor("gitops:x") is None
        with store.transaction() as tx:  # the writer is usable again
            tx.set_cursor("gitops:x", "def")
        assert store.cursor("gitops:x") == "def"
    finally:
        store.close()


# -- restart idempotence -------------------------------------------------------------------------


@dataclass
class Busy:
    """A GitOps repo with changes, a rollback, an unresolved tag and a malformed manifest."""

    source: GitRepo
    gitops: GitRepo
    s: list[str]  # source commits s1, s2, s3
    c: list[str]  # gitops commits


@pytest.fixture
def busy(tmp_path: Path) -> Busy:
    src = GitRepo(tmp_path / "source")
    s = [src.commit(f"change {i}", T0 - (4 - i) * HOUR, {"app/a.py": f"{i}\n"}) for i in (1, 2, 3)]
    ops = GitRepo(tmp_path / "gitops")
    api, web = manifest("api"), manifest("web")
    c = [
        ops.commit("Bootstrap", T0, {api: values_yaml(s[0][:7]), web: values_yaml("w1")}),
        ops.commit("Release api", T0 + HOUR, {api: values_yaml(s[2][:7])}),
        ops.commit("Hold api at s2", T0 + 3 * HOUR, {api: values_yaml(s[1][:7])}),
        ops.commit("Broken web", T0 + 4 * HOUR, {web: "image: [\n"}),
        ops.commit("Local api build", T0 + 5 * HOUR, {api: values_yaml("0badc0de")}),
        ops.commit("Release", T0 + 6 * HOUR, {api: values_yaml(s[2][:7]), web: values_yaml("w2")}),
    ]
    return Busy(src, ops, s, c)


def _exporter(tmp_path: Path, busy: Busy) -> Exporter:
    return Exporter(tmp_path, busy.gitops.url, services=[{"name": "api", "repo": busy.source.url, "paths": ["app/"]}])


def _assert_busy(e: Exporter, busy: Busy) -> None:
    s, c = busy.s, busy.c
    assert e.deployments("api") == [
        (s[0][:7], T0, c[0], s[0], True, False),
        (s[2][:7], T0 + HOUR, c[1], s[2], False, False),
        (s[1][:7], T0 + 3 * HOUR, c[2], s[1], False, True),
        ("0badc0de", T0 + 5 * HOUR, c[4], None, False, False),
        (s[2][:7], T0 + 6 * HOUR, c[5], s[2], False, False),
    ]
    assert e.deployments("web") == [
        ("w1", T0, c[0], None, True, False),
        ("w2", T0 + 6 * HOUR, c[5], None, False, False),
    ]
    assert e.change_shas("api") == [[], [s[1], s[2]], [], [], []]  # s3 is not counted again at "Release"
    api = e.store.deployments("api")
    assert [(f.deployment_id, f.restored_by, f.detail) for f in e.store.failures()] == [
        (api[1].id, api[2].id, "ancestor")
    ]
    assert e.store.unmatched_counts() == {("gitops", "malformed_manifest"): 1, ("gitops", "unresolved_tag"): 1}


def test_restart_is_idempotent(tmp_path: Path, busy: Busy) -> None:
    e = _exporter(tmp_path, busy)
    first = e.poll()
    assert (first.commits, first.deployments, first.skips) == (6, 7, 2)
    _assert_busy(e, busy)
    e.close()
    before = raw_rows(e.cfg.store_path)

    e2 = _exporter(tmp_path, busy)
    try:
        again = e2.poll()
        assert (again.commits, again.deployments, again.skips) == (0, 0, 0)
        _assert_busy(e2, busy)
    finally:
        e2.close()

    assert raw_rows(e.cfg.store_path) == before


def test_replaying_the_whole_history_over_existing_rows_changes_nothing(tmp_path: Path, busy: Busy) -> None:
    e = _exporter(tmp_path, busy)
    try:
        e.poll()
        before = raw_rows(e.cfg.store_path)
        with e.store.transaction() as tx:  # forget how far we got, as if every batch had to be redone
            tx.conn.execute("DELETE FROM cursors")
            tx.conn.execute("DELETE FROM gitops_state")

        replay = e.poll()

        assert (replay.commits, replay.deployments, replay.skips) == (6, 0, 0)
        _assert_busy(e, busy)
    finally:
        e.close()
    assert raw_rows(e.cfg.store_path) == before


# -- kill -9 mid-ingest --------------------------------------------------------------------------

DEMO_DAYS = 80  # 689 manifest commits: several batches (100, 200, 400, ...)
DEMO_END = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _config(out: Path, name: str) -> Path:
    """The demo's config with its own store; two of its five services resolve tags (the rest keep it fast)."""
    raw = yaml.safe_load((out / "dora.yaml").read_text())
    raw["services"] = raw["services"][:2]
    raw["store"] = {"path": str(out / name / "dora.db")}
    raw["data_dir"] = str(out / name)
    raw["log"] = {"level": "warning", "format": "json"}
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _ingest(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "exporter.cli", "ingest", "--config", str(config)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _committed_cursor(db: Path, proc: subprocess.Popen[bytes], deadline: float) -> str:
    """Wait (bounded) until the ingest has committed at least one batch; returns that cursor."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ingest ended (rc {proc.returncode}) before it could be killed mid-way")
        if db.exists():
            try:
                conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=0.05)
                try:
                    row = conn.execute("SELECT value FROM cursors").fetchone()
                finally:
                    conn.close()
            except sqlite3.OperationalError:
                row = None  # not migrated yet, or busy
            if row is not None:
                return str(row[0])
        time.sleep(0.01)  # a short poll interval of the bounded wait, not a wait for an event
    raise AssertionError("no batch committed before the deadline")


@pytest.mark.slow  # the daemon as a process, killed and restarted on an 80-day demo
def test_kill_9_mid_ingest_then_resume_equals_an_uninterrupted_ingest(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    generate.generate(out, seed=3, days=DEMO_DAYS, end=DEMO_END)
    generate.write_config(out, "127.0.0.1:0")
    head = GitRepo(out / "minishop").sha()
    killed_cfg, fresh_cfg = _config(out, "killed"), _config(out, "fresh")
    killed_db, fresh_db = out / "killed" / "dora.db", out / "fresh" / "dora.db"

    fresh = _ingest(fresh_cfg)  # the reference, in parallel
    victim = _ingest(killed_cfg)
    try:
        cursor = _committed_cursor(killed_db, victim, time.monotonic() + 60)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.kill()
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert cursor != head, "the first batch was already the whole history"

    conn = sqlite3.connect(killed_db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        (partial,) = conn.execute("SELECT COUNT(*) FROM deployments").fetchone()
        (stored_cursor,) = conn.execute("SELECT value FROM cursors").fetchone()
    finally:
        conn.close()
    assert stored_cursor != head
    assert partial > 0

    resumed = _ingest(killed_cfg)
    _, resumed_err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, resumed_err.decode()
    _, fresh_err = fresh.communicate(timeout=120)
    assert fresh.returncode == 0, fresh_err.decode()

    killed_rows, fresh_rows = natural_rows(killed_db), natural_rows(fresh_db)
    assert killed_rows == fresh_rows
    assert killed_rows["cursors"] == [(killed_rows["cursors"][0][0], head)]
    assert partial < len(fresh_rows["deployments"])
    # the history is rich enough for the comparison to mean something (seed 3, fixed end)
    assert {table: len(rows) for table, rows in fresh_rows.items()} == {
        "deployments": 2184,
        "changes": 430,
        "failures": 7,
        "unmatched": 0,
        "gitops_state": 15,
        "cursors": 1,
    }


@pytest.mark.slow  # the CLI as a process, twice
def test_cli_ingest_twice_converges(tmp_path: Path) -> None:
    """``dora-exporter ingest`` run twice: the second run finds nothing new and leaves every row as it is."""
    repo = GitRepo(tmp_path / "gitops")
    for i in range(5):
        repo.commit(f"Release {i}", T0 + i * 10 * MINUTE, {manifest("api"): values_yaml(f"v{i + 1}")})
    cfg = tmp_path / "dora.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "store": {"path": str(tmp_path / "dora.db")},
                "log": {"level": "warning", "format": "json"},
                "gitops": [
                    {
                        "repo": repo.url,
                        "manifests": [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}],
                    }
                ],
            }
        )
    )
    for _ in range(2):
        proc = _ingest(cfg)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        rows = natural_rows(tmp_path / "dora.db")
        assert [(r[2], r[3]) for r in rows["deployments"]] == [
            (f"v{i + 1}", float(T0 + i * 10 * MINUTE)) for i in range(5)
        ]


@pytest.mark.slow  # builds the 80-day demo (689 manifest commits) and ingests it twice
def test_deployments_recorded_while_the_graph_loads_equal_those_recorded_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first poll queues changes and rollback checks while the source commit graph loads on its
    thread; done before the batch commits, they must give exactly the rows of a poll that waited."""
    from exporter import config as cfgmod
    from exporter.daemon.runtime import Daemon
    from exporter.sources.git.commitgraph import CommitGraph

    out = tmp_path / "demo"
    generate.generate(out, seed=3, days=DEMO_DAYS, end=DEMO_END)
    generate.write_config(out, "127.0.0.1:0")
    waited_cfg, queued_cfg = _config(out, "waited"), _config(out, "queued")

    def ingest(path: Path) -> None:
        daemon = Daemon(cfgmod.load(path))
        try:
            daemon.ingest_once()
        finally:
            daemon.close()

    with monkeypatch.context() as m:  # no background load: the first deployment loads the graph and waits
        m.setattr(ingesting.GitOpsIngester, "_warm_graphs", lambda self, git: None)
        ingest(waited_cfg)
    release = threading.Event()
    queued_max = 0
    original_warm, original_add = CommitGraph.warm, ingesting._Links.add

    def slow_warm(self: CommitGraph) -> None:
        assert release.wait(30), "the ingest never queued enough to release the graph"
        original_warm(self)

    def counting_add(self: ingesting._Links, link: ingesting._Link) -> None:
        nonlocal queued_max
        original_add(self, link)
        queued_max = max(queued_max, len(self.waiting))
        if len(self.waiting) >= 300:
            release.set()  # enough waited: let the graph load and the queue drain

    monkeypatch.setattr(CommitGraph, "warm", slow_warm)
    monkeypatch.setattr(ingesting._Links, "add", counting_add)
    ingest(queued_cfg)

    assert queued_max >= 300
    assert natural_rows(out / "queued" / "dora.db") == natural_rows(out / "waited" / "dora.db")


@pytest.mark.slow  # builds the 80-day demo (689 manifest commits) and ingests it twice
def test_a_stop_while_the_graph_loads_abandons_the_batch_and_the_next_poll_converges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown must not wait for a source graph to load: the batch whose graph work is queued
    is rolled back (the cursor stays), and the next poll stores exactly the uninterrupted rows."""
    from exporter import config as cfgmod
    from exporter.daemon.runtime import Daemon
    from exporter.sources.git.commitgraph import CommitGraph

    out = tmp_path / "demo"
    generate.generate(out, seed=3, days=DEMO_DAYS, end=DEMO_END)
    generate.write_config(out, "127.0.0.1:0")
    reference_cfg, stopped_cfg = _config(out, "reference"), _config(out, "stopped")
    reference = Daemon(cfgmod.load(reference_cfg))
    try:
        reference.ingest_once()
    finally:
        reference.close()

    release, stop = threading.Event(), threading.Event()
    original_warm, original_add = CommitGraph.warm, ingesting._Links.add

    def slow_warm(self: CommitGraph) -> None:
        release.wait(30)
        original_warm(self)

    armed = True

    def stopping_add(self: ingesting._Links, link: ingesting._Link) -> None:
        original_add(self, link)
        if armed and len(self.waiting) >= 50:
            stop.set()  # a shutdown, while the graph is still loading

    monkeypatch.setattr(CommitGraph, "warm", slow_warm)
    monkeypatch.setattr(ingesting._Links, "add", stopping_add)
    daemon = Daemon(cfgmod.load(stopped_cfg))
    try:
        (ingester,) = daemon.ingesters
        first = ingester.poll(stop)
        assert not release.is_set(), "the stopped poll waited for the graph"
        assert first.stopped and (first.commits, first.deployments) == (0, 0)
        assert daemon.store.cursor(ingester.cursor_name) is None
        armed = False  # the next poll is not interrupted
        release.set()
        stop.clear()
        second = ingester.poll(stop)
        assert not second.stopped and second.commits > 600
    finally:
        release.set()
        daemon.close()
    assert natural_rows(out / "stopped" / "dora.db") == natural_rows(out / "reference" / "dora.db")


def test_webhook_events_past_the_retention_are_pruned_a_bounded_number_per_insert(tmp_path: Path) -> None:
    from exporter.store.bookkeeping import WEBHOOK_EVENT_RETENTION_SECONDS, WEBHOOK_EVENTS_PRUNED_PER_INSERT

    def count() -> int:
        return int(store.conn.execute("SELECT COUNT(*) FROM webhook_events").fetchone()[0])

    store = Store(tmp_path / "dora.db")
    t0 = 1_767_225_600.0  # 2026-01-01
    horizon = t0 + WEBHOOK_EVENT_RETENTION_SECONDS
    try:
        with store.transaction() as tx:
            for n in range(250):
                assert tx.add_webhook_event("argocd", f"old-{n}", "{}", now=t0)
        with store.transaction() as tx:
            assert tx.add_webhook_event("argocd", "recent", "{}", now=horizon - 60)
            assert not tx.add_webhook_event("argocd", "old-0", "{}", now=horizon - 60)  # within it: a replay
        assert count() == 251
        with store.transaction() as tx:
            assert tx.add_webhook_event("argocd", "new-1", "{}", now=horizon + 1)
        assert count() == 252 - WEBHOOK_EVENTS_PRUNED_PER_INSERT  # bounded: the oldest 100 only
        with store.transaction() as tx:
            for n in range(2, 5):
                tx.add_webhook_event("argocd", f"new-{n}", "{}", now=horizon + n)
        keys = {k for (k,) in store.conn.execute("SELECT key FROM webhook_events")}
        assert keys == {"recent", "new-1", "new-2", "new-3", "new-4"}
    finally:
        store.close()
