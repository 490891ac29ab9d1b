# SPDX-License-Identifier: Apache-2.0
"""The store's connections are bounded: reads from any number of short-lived threads (one per HTTP
request) borrow a pooled reader and give it back, so file descriptors stay flat."""

from __future__ import annotations

import threading
from pathlib import Path

from exporter.store import Store
from exporter.store.pool import READERS
from tests.support.resources import FD_SLACK, open_fds

READS = 1000


def _read_on_a_new_thread(store: Store, errors: list[BaseException]) -> None:
    def read() -> None:
        try:
            store.deployments("shop", "prod")
            store.cursor("gitops:main")
        except BaseException as exc:  # reported by the test, not lost with the thread
            errors.append(exc)

    t = threading.Thread(target=read)
    t.start()
    t.join()


def test_reads_from_a_thousand_short_lived_threads_hold_no_descriptor(tmp_path: Path) -> None:
    store = Store(tmp_path / "dora.db")
    errors: list[BaseException] = []
    try:
        for _ in range(10):  # the pool's first readers are opened here
            _read_on_a_new_thread(store, errors)
        before = open_fds()
        for _ in range(READS):
            _read_on_a_new_thread(store, errors)
        after = open_fds()
        assert not errors
        assert after - before <= FD_SLACK, f"{after - before} descriptors more after {READS} reads"
    finally:
        store.close()


def test_concurrent_readers_are_bounded_by_the_pool(tmp_path: Path) -> None:
    store = Store(tmp_path / "dora.db")
    errors: list[BaseException] = []
    start = threading.Barrier(4 * READERS)

    def read() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(20):
                store.deployments()
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=read) for _ in range(4 * READERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert store.readers.opened <= READERS
    finally:
        store.close()


def test_closing_the_store_closes_every_reader(tmp_path: Path) -> None:
    before = open_fds()
    store = Store(tmp_path / "dora.db")
    for _ in range(5):
        _read_on_a_new_thread(store, [])
    store.close()
    assert open_fds() <= before
