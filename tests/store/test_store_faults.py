# SPDX-License-Identifier: Apache-2.0
"""Store faults end in a ``StoreError`` that says what is wrong and what to do, with a kind of its
own where an operator acts differently: a parent that is a file, damaged pages, a read-only file
or filesystem, a full disk (issue 13 §7). Real files and real filesystems throughout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.daemon.supervision import Outcome, Task, guard
from exporter.errors import ErrorKind, StoreError
from exporter.model import DeploymentSource
from exporter.serve.health import Health
from exporter.store import Store
from tests.support.argocd import write_config
from tests.support.mounts import remount, tmpfs
from tests.support.paths import PROJECT_ROOT

PAGE = 4096
TASK = Task(source="gitops", part="main", failed="t.failed", crashed="t.crashed", store_failed="t.store_failed")


def _add(store: Store, first: int, n: int, *, message: str = "") -> None:
    with store.transaction() as tx:
        for i in range(first, first + n):
            tx.add_deployment(
                natural_key=f"k{i}",
                service="shop",
                environment="prod",
                version=f"v{i}",
                deployed_at=1_700_000_000.0 + i,
                source=DeploymentSource.GITOPS,
                manifest_repo="gitops",
                manifest_commit=None,
                commit=None,
                message=message,
                baseline=False,
            )


def test_a_parent_that_is_a_regular_file_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a directory\n")
    for path in (blocker / "dora.db", blocker / "deeper" / "dora.db"):
        with pytest.raises(StoreError, match=f"its parent {blocker} is not a directory") as err:
            Store(path)
        assert err.value.kind is ErrorKind.STORE


def test_a_file_that_is_not_a_database_is_corrupt_and_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    path.write_bytes(os.urandom(8 * PAGE))
    with pytest.raises(StoreError) as err:
        Store(path)
    assert err.value.kind is ErrorKind.STORE_CORRUPT
    assert "is corrupt" in str(err.value) and "backup" in str(err.value) and "re-ingests" in str(err.value)


def _damage_pages(path: Path) -> None:
    """Every page but the first (the header and the schema's root) overwritten with garbage."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(PAGE)
        f.write(os.urandom(size - PAGE))


def _store_with_damaged_pages(path: Path) -> None:
    store = Store(path)
    _add(store, 0, 2000, message="x" * 200)
    store.checkpoint()
    store.close()
    _damage_pages(path)


def test_damaged_pages_are_a_corrupt_store_on_read(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    _store_with_damaged_pages(path)
    with pytest.raises(StoreError) as err:
        store = Store(path)  # the header is intact: the damage shows on the first read
        try:
            store.deployments()
        finally:
            store.close()
    assert err.value.kind is ErrorKind.STORE_CORRUPT
    assert "is corrupt" in str(err.value)


@pytest.mark.slow
def test_the_daemon_on_a_corrupt_store_exits_1_with_what_to_do(tmp_path: Path) -> None:
    config = write_config(tmp_path, tmp_path / "no-such-kubeconfig", ["argocd"])
    _store_with_damaged_pages(tmp_path / "dora.db")
    done = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "is corrupt" in done.stderr and "backup" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_immutable_store_file_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    Store(path).close()
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        with pytest.raises(StoreError) as err:
            Store(path)
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert err.value.kind is ErrorKind.STORE_READONLY
    assert "is read-only" in str(err.value) and "unable to open" not in str(err.value).split("(")[0]


def test_a_store_on_a_read_only_filesystem_says_so(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", size="4m") as mount:
        path = mount / "dora.db"
        store = Store(path)
        _add(store, 0, 10)
        store.checkpoint()
        store.close()
        remount(mount, readonly=True)
        try:
            with pytest.raises(StoreError) as err:
                Store(path)
            with pytest.raises(StoreError) as fresh:
                Store(mount / "new" / "dora.db")  # a store to create, on the same filesystem
        finally:
            remount(mount, readonly=False)
    assert err.value.kind is ErrorKind.STORE_READONLY and fresh.value.kind is ErrorKind.STORE_READONLY
    assert f"store {path} is read-only" in str(err.value)


def test_a_full_disk_is_its_own_kind_and_no_cleanup_hides_it(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", size="1m") as mount:
        store = Store(mount / "dora.db")
        try:
            _add(store, 0, 10)
            health = Health({"gitops": ["main"]})

            def ingest() -> None:  # what a poll does: bulk writes, one transaction per batch
                with store.bulk_writes():
                    _add(store, 10, 2000, message="y" * 1000)

            attempt = guard(ingest, task=TASK, health=health)
            assert attempt.outcome is Outcome.STORE_FAILED, attempt.error
            assert isinstance(attempt.error, StoreError) and attempt.error.kind is ErrorKind.STORE_FULL
            assert "the disk is full" in str(attempt.error)
            _, errors = health.copy()
            assert errors == {("gitops", "store_full"): 1}
            assert len(store.deployments()) == 10  # the batch rolled back whole; the store still reads
            try:
                store.checkpoint()  # folding the WAL may need space too: a StoreError, never the driver's
            except StoreError as exc:
                assert exc.kind is ErrorKind.STORE_FULL
        finally:
            store.close()
