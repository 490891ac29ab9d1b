# SPDX-License-Identifier: Apache-2.0
"""SIGHUP stops ``run`` as SIGTERM does: logged, the store checkpointed and closed, exit 0.

A reload would need the whole wiring rebuilt (listeners, watches, jobs, clients); a clean stop
lets the supervisor (Kubernetes, systemd) start the daemon again on the new config.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from exporter.demo.generate import generate, write_config
from tests.support.paths import PROJECT_ROOT
from tests.support.waiting import wait_until

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def _started(log: Path, proc: subprocess.Popen[bytes]) -> dict[str, object] | None:
    assert proc.poll() is None, f"the daemon exited {proc.returncode}:\n{log.read_text()}"
    return next((e for e in _events(log) if e["event"] == "daemon.started"), None)


def _ready(listen: str) -> bool:
    """``/readyz`` answers 200 once every source was polled once (the store has been written)."""
    try:
        with urllib.request.urlopen(f"http://{listen}/readyz", timeout=5) as r:
            return bool(r.status == 200)
    except urllib.error.HTTPError:
        return False


def test_sighup_stops_the_daemon_cleanly(tmp_path: Path) -> None:
    generate(tmp_path, days=3)
    cfg = write_config(tmp_path, listen="127.0.0.1:0")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DORA_")} | {"PYTHONPATH": str(PROJECT_ROOT)}
    log = tmp_path / "run.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.cli", "run", "--config", str(cfg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            started = wait_until(lambda: _started(log, proc), START_TIMEOUT, message="daemon.started")
            wait_until(lambda: _ready(str(started["listen"])), START_TIMEOUT, message="/readyz == 200")
            proc.send_signal(signal.SIGHUP)
            code = proc.wait(timeout=STOP_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    events = [e["event"] for e in _events(log)]
    assert code == 0, log.read_text()
    assert {"event": "daemon.signal", "signal": "SIGHUP"}.items() <= next(
        e for e in _events(log) if e["event"] == "daemon.signal"
    ).items()
    assert events.index("daemon.signal") < events.index("daemon.stopped")
    wal = tmp_path / "dora.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not folded into the store"
