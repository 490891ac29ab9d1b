# SPDX-License-Identifier: Apache-2.0
"""A signal never deadlocks the daemon.

A signal handler runs on the main thread between two bytecodes, possibly while that thread holds
a lock. The log writer's lock is the one it held most often: a SIGTERM sent as soon as a line
appeared (as an orchestrator or a test does) could land after the line was written and before
the lock was released. A handler that logged then waited for that lock forever.
"""

from __future__ import annotations

import io
import signal
import threading
from pathlib import Path

import structlog

from exporter import config
from exporter.daemon.runtime import Daemon
from exporter.demo.generate import generate, write_config

STOP_TIMEOUT = 15.0


class _SignalMidLine(io.StringIO):
    """A log stream whose first write takes a SIGTERM, as if it arrived while the line was written
    (inside the logger's write lock, on the thread that runs the daemon)."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__()
        self.daemon = daemon
        self.signalled = False

    def write(self, s: str) -> int:
        n = super().write(s)
        if not self.signalled:
            self.signalled = True
            self.daemon._on_signal(signal.SIGTERM, None)
        return n


def test_a_sigterm_inside_a_log_write_stops_the_daemon(tmp_path: Path) -> None:
    generate(tmp_path, days=3)
    daemon = Daemon(config.load(write_config(tmp_path, listen="127.0.0.1:0")))
    stream = _SignalMidLine(daemon)
    saved = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    try:
        runner = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, daemon=True)
        runner.start()
        runner.join(STOP_TIMEOUT)
        assert not runner.is_alive(), "the daemon deadlocked on a signal taken while it logged"
    finally:
        structlog.configure(**saved)
    text = stream.getvalue()
    assert stream.signalled
    assert '"event": "daemon.signal"' in text and '"signal": "SIGTERM"' in text
    assert text.index('"daemon.signal"') < text.index('"daemon.stopped"')
