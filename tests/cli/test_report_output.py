# SPDX-License-Identifier: Apache-2.0
"""What ``report`` says when there is nothing to report, when its reader goes away, and ``--help``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cli import clean_env, cli, demo_config

ARGS = ("--since", "2020-01-01T00:00:00Z", "--until", "2030-01-01T00:00:00Z")


def test_a_store_never_ingested_says_so_instead_of_printing_zeros(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path)
    p = cli("report", "--config", str(cfg), *ARGS)
    assert p.returncode == 1, p.stdout
    assert p.stdout == ""
    assert p.stderr.strip() == "no data yet: run `dora-exporter ingest` (or start `dora-exporter run`)"


def test_a_reader_that_stops_early_ends_the_report_quietly(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, days=20)
    assert cli("ingest", "--config", str(cfg)).returncode == 0
    # `head -c 1` reads one byte and goes away; the JSON document is far longer than a pipe buffer
    # holds only when large, so the report runs with many pairs' rows: at least one write fails
    p = subprocess.run(
        [
            "bash",
            "-c",
            f'set -o pipefail; "{sys.executable}" -m exporter.cli report --config "{cfg}" '
            f"--since 2020-01-01T00:00:00Z --until 2030-01-01T00:00:00Z --format json | head -c 1",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.stdout == "{"
    assert "Traceback" not in p.stderr and "Broken pipe" not in p.stderr and "Exception ignored" not in p.stderr, (
        p.stderr
    )
    assert p.returncode == 0, p.stderr


def test_help_is_written_for_a_terminal() -> None:
    for args in ((), ("report",), ("run",), ("demo",), ("explain",)):
        p = cli(*args, "--help")
        assert p.returncode == 0, p.stderr
        assert "``" not in p.stdout, p.stdout
