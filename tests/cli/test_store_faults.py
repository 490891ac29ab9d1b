# SPDX-License-Identifier: Apache-2.0
"""A store that cannot be opened ends every command with one line naming ``store.path``, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli, demo_config, with_config
from tests.support.mounts import read_only


def _one_line_error(p_stderr: str) -> str:
    assert "Traceback" not in p_stderr, p_stderr
    lines = p_stderr.strip().splitlines()
    assert lines, "no error message"
    return lines[-1]


@pytest.mark.parametrize("command", ["run", "ingest", "report"])
def test_a_store_whose_parent_is_a_file(tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where the store's directory belongs\n")
    cfg = with_config(demo_config(tmp_path), "store", "path", str(blocker / "dora.db"))

    p = cli(command, "--config", str(cfg))

    assert p.returncode == 1, p.stderr
    line = _one_line_error(p.stderr)
    assert line.startswith("dora-exporter: ") and "store.path" in line and str(blocker) in line, line


def test_a_read_only_store_says_so(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path)
    assert cli("ingest", "--config", str(cfg)).returncode == 0
    with read_only(tmp_path):
        p = cli("report", "--config", str(cfg))
    assert p.returncode == 1, p.stderr
    line = _one_line_error(p.stderr)
    assert "store.path" in line and "not writable" in line, line
