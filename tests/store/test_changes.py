# SPDX-License-Identifier: Apache-2.0
"""The changes table: once per pair, to the first deployment that delivered it, whatever the keys.

The dedup key is a 60-bit hash; these tests force it to collide (every change on a handful of
keys) and check that attribution stays exact, and that a store of schema 5 migrates its rows.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog.testing

from exporter.model import Change, PullRequest
from exporter.store import Store, changes
from exporter.store.migrations import MIGRATIONS


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _store_with_deployments(path: Path, pairs: list[tuple[str, str]], per_pair: int) -> tuple[Store, dict]:
    store = Store(path)
    ids: dict[tuple[str, str], list[int]] = {}
    with store.transaction() as tx:
        for service, env in pairs:
            for i in range(per_pair):
                dep_id, _ = tx.add_deployment(
                    natural_key=f"k:{service}:{env}:{i}", service=service, environment=env, version=f"v{i}",
                    deployed_at=1000.0 + i, source=_gitops(), manifest_repo="r", manifest_commit=f"m{i}",
                    commit=None, message="", baseline=i == 0,
                )  # fmt: skip
                ids.setdefault((service, env), []).append(dep_id)
    return store, ids


def _gitops():  # type: ignore[no-untyped-def]
    from exporter.model import DeploymentSource

    return DeploymentSource.GITOPS


def _stored(store: Store) -> dict[tuple[str, str, str], int]:
    rows = store.conn.execute("SELECT service, environment, sha, deployment_id FROM changes").fetchall()
    out = {(s, e, sha): dep for s, e, sha, dep in rows}
    assert len(out) == len(rows), "a change stored twice for one pair"
    return out


def _replay(store: Store, ids: dict, seed: int) -> dict[tuple[str, str, str], int]:
    """Random change lists with many repeats; returns the attribution a dict gives (first wins)."""
    rnd = random.Random(seed)
    shas = [f"{rnd.getrandbits(160):040x}" for _ in range(60)]
    expected: dict[tuple[str, str, str], int] = {}
    for step in range(1, 12):
        with store.transaction() as tx:
            for (service, env), deps in ids.items():
                batch = rnd.sample(shas, rnd.randint(0, 12))
                new = sum((service, env, s) not in expected for s in batch)
                for s in batch:
                    expected.setdefault((service, env, s), deps[step])
                rows = [(s, 10.0, 20.0, "subject") for s in batch]
                assert tx.add_change_rows(deps[step], service, env, rows) == new
    return expected


PAIRS = [("svc-a", "dev"), ("svc-a", "prod"), ("svc-b", "prod")]


def test_each_change_is_attributed_once_per_pair_to_the_first_deployment(tmp_path: Path) -> None:
    store, ids = _store_with_deployments(tmp_path / "dora.db", PAIRS, 12)
    try:
        expected = _replay(store, ids, seed=7)
        assert _stored(store) == expected
    finally:
        store.close()


@pytest.mark.parametrize("distinct_keys", [1, 3])
def test_colliding_keys_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distinct_keys: int) -> None:
    """With every change on one of a few keys, the probe sequence still stores each exactly once."""
    real = changes.change_key
    monkeypatch.setattr(changes, "change_key", lambda s, e, sha: real(s, e, sha) % distinct_keys)
    monkeypatch.setattr(changes, "MAX_PROBES", 1000)  # 180 changes on one key: a chain of 180
    store, ids = _store_with_deployments(tmp_path / "dora.db", PAIRS, 12)
    try:
        expected = _replay(store, ids, seed=11)
        assert _stored(store) == expected
        keys = [k for (k,) in store.conn.execute("SELECT key FROM changes")]
        assert len(set(keys)) == len(keys) > distinct_keys  # rows moved along their probe sequences
    finally:
        store.close()


def test_a_full_probe_sequence_is_an_error_not_a_lost_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "change_key", lambda s, e, sha: 5)
    monkeypatch.setattr(changes, "MAX_PROBES", 2)
    store, ids = _store_with_deployments(tmp_path / "dora.db", PAIRS[:1], 2)
    try:
        rows = [(c * 40, 1.0, 2.0, "x") for c in "abc"]
        with pytest.raises(sqlite3.IntegrityError, match="no free change key"), store.transaction() as tx:
            tx.add_change_rows(ids[PAIRS[0]][1], *PAIRS[0], rows)
        assert _stored(store) == {}  # the transaction rolled back whole
    finally:
        store.close()


def test_a_change_with_pull_request_facts_keeps_them_and_is_not_replaced(tmp_path: Path) -> None:
    store, ids = _store_with_deployments(tmp_path / "dora.db", PAIRS[:1], 3)
    pr = PullRequest(42, _utc(100), _utc(200), _utc(300))
    first = Change("a" * 40, _utc(50), _utc(60), "with pr", True, pr)
    try:
        with store.transaction() as tx:
            assert tx.add_changes(ids[PAIRS[0]][1], *PAIRS[0], [first]) == 1
            assert tx.add_changes(ids[PAIRS[0]][2], *PAIRS[0], [first._replace(subject="again")]) == 0
        assert store.changes_of(ids[PAIRS[0]][1]) == [first]
        assert store.changes_of(ids[PAIRS[0]][2]) == []
    finally:
        store.close()


def test_shas_that_are_not_hex_are_keyed_by_a_hash(tmp_path: Path) -> None:
    assert changes.change_key("s", "e", "not-a-sha") != changes.change_key("s", "e", "not-a-shb")
    assert changes.change_key("s", "e", "c1") != changes.change_key("s", "e", "c2")
    assert 0 <= changes.change_key("s", "e", "z" * 40) < 2**changes.KEY_BITS
    assert changes.change_key("s", "dev", "f" * 40) != changes.change_key("s", "prod", "f" * 40)


def test_a_schema_5_store_migrates_its_changes_into_arrival_order(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    conn = sqlite3.connect(path)
    conn.executescript("\n".join(m for m in MIGRATIONS[:5] if isinstance(m, str)) + "\nPRAGMA user_version = 5;")
    for dep_id, (service, env) in enumerate([("s", "dev"), ("s", "prod"), ("s", "prod")], start=1):
        conn.execute(
            "INSERT INTO deployments (id, service, environment, version, deployed_at, source, natural_key) "
            "VALUES (?, ?, ?, 'v', ?, 'gitops', ?)",
            (dep_id, service, env, 100.0 * dep_id, f"k{dep_id}"),
        )
    old = [
        ("s", "dev", "a" * 40, 1, 10.0, 20.0, "one", 1, 7, 5.0, 6.0, 8.0),
        ("s", "prod", "a" * 40, 2, 10.0, 20.0, "one", 0, None, None, None, None),
        ("s", "prod", "b" * 40, 3, 11.0, 21.0, "two", 1, None, None, None, None),
    ]
    conn.executemany(
        "INSERT INTO changes (service, environment, sha, deployment_id, author_time, commit_time, subject, "
        "pr_checked, pr_number, pr_first_commit_time, pr_opened_at, pr_merged_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        old,
    )
    conn.commit()
    conn.close()
    with structlog.testing.capture_logs() as logs:
        store = Store(path)
    assert [(e["event"], e["schema"], e["to"]) for e in logs] == [
        ("store.migrating", 5, len(MIGRATIONS))
    ]  # an upgrade says so
    try:
        assert store.schema_version == len(MIGRATIONS) == 8
        rows = store.conn.execute(
            "SELECT service, environment, sha, deployment_id, author_time, commit_time, subject, pr_checked, "
            "pr_number, pr_first_commit_time, pr_opened_at, pr_merged_at FROM changes ORDER BY id"
        ).fetchall()
        assert rows == old
        assert store.changes_without_pull_request() == 1
        indexes = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE tbl_name = 'changes'")}
        assert {"changes_key", "changes_deployment_start"} <= indexes
        with store.transaction() as tx:  # the migrated keys dedup as new ones do
            assert tx.add_change_rows(3, "s", "prod", [("a" * 40, 1.0, 2.0, "x"), ("c" * 40, 1.0, 2.0, "y")]) == 1
    finally:
        store.close()
