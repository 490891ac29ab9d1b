# SPDX-License-Identifier: Apache-2.0
"""An HTTP port already in use ends ``run`` with one line naming the config key and the address."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import cli, demo_config, with_config


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another process-like owner listens on for the whole test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("key", ["listen", "webhook_listen"])
def test_a_port_in_use_names_its_key_and_address(tmp_path: Path, busy_port: int, key: str) -> None:
    cfg = with_config(demo_config(tmp_path), "http", key, f"127.0.0.1:{busy_port}")

    p = cli("run", "--config", str(cfg))

    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("dora-exporter: "), line
    assert f"http.{key}" in line and f"127.0.0.1:{busy_port}" in line and "in use" in line, line
