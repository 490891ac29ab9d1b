# SPDX-License-Identifier: Apache-2.0
"""One writer per store: a second daemon on the same store is refused, naming the first's PID
(issue 13 §8); readers are not; the lock goes with the process that held it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from exporter.errors import StoreError
from exporter.store import Store
from exporter.store.lock import lock_path
from tests.support.argocd import write_config
from tests.support.paths import PROJECT_ROOT
from tests.support.waiting import wait_until


def test_a_second_writer_is_refused_and_a_reader_is_not(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    first = Store(path, exclusive=True)
    try:
        with pytest.raises(StoreError, match=f"in use by another exporter \\(pid {os.getpid()},"):
            Store(path, exclusive=True)
        reader = Store(path)  # report and explain read beside a running daemon
        assert reader.deployments() == []
        reader.close()
    finally:
        first.close()
    Store(path, exclusive=True).close()  # given back on close


def test_a_lock_file_left_by_a_dead_process_does_not_block(tmp_path: Path) -> None:
    path = tmp_path / "dora.db"
    lock_path(path).write_text("999999\n")  # what kill -9 leaves: the file, not the lock
    store = Store(path, exclusive=True)
    try:
        assert lock_path(path).read_text() == f"{os.getpid()}\n"
    finally:
        store.close()


def _cli(config: Path) -> list[str]:
    return [sys.executable, "-m", "exporter.cli", "run", "--config", str(config)]


@pytest.mark.slow
def test_a_second_daemon_on_the_same_store_exits_1_naming_the_first(tmp_path: Path) -> None:
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first_config = write_config(tmp_path / "first", tmp_path / "no-such-kubeconfig", ["argocd"])
    raw = yaml.safe_load(first_config.read_text())
    second_config = write_config(tmp_path / "second", tmp_path / "no-such-kubeconfig", ["argocd"])
    second = yaml.safe_load(second_config.read_text())
    second["store"] = raw["store"]  # its own ports, the first one's store
    second_config.write_text(yaml.safe_dump(second))
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    healthz = f"http://{raw['http']['listen']}/healthz"
    log = (tmp_path / "first.log").open("w")  # a file, not a pipe: a full pipe would stall the daemon
    first = subprocess.Popen(_cli(first_config), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log)
    try:
        wait_until(lambda: urllib.request.urlopen(healthz, timeout=2).status == 200, 30, message="first daemon up")
        refused = subprocess.run(
            _cli(second_config), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode == 1, refused.stderr
        assert f"in use by another exporter (pid {first.pid}," in refused.stderr
        assert "Traceback" not in refused.stderr
        assert first.poll() is None  # the first one runs on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=30)
        log.close()
    assert first.returncode == 0, (tmp_path / "first.log").read_text()
