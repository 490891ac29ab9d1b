# SPDX-License-Identifier: Apache-2.0
"""``report``'s own arguments: each bad value exits 2 naming the flag it came from, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli, demo_config


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return demo_config(tmp_path)


def _usage_error(cfg: Path, *args: str) -> str:
    p = cli("report", "--config", str(cfg), *args)
    assert p.returncode == 2, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    assert "Traceback" not in p.stderr
    return p.stderr.strip().splitlines()[-1]


def test_an_empty_window_names_window(cfg: Path) -> None:
    line = _usage_error(cfg, "--window", "0d")
    assert "--window" in line and "--since" not in line, line


def test_since_after_until_names_since_and_until(cfg: Path) -> None:
    line = _usage_error(cfg, "--since", "2024-02-01", "--until", "2024-01-01")
    assert "--since" in line and "--until" in line and "--window" not in line, line


@pytest.mark.parametrize("window", ["1000000d", "99999999999999999999999d", "inf", "nan"])
def test_a_huge_or_meaningless_window_is_refused(cfg: Path, window: str) -> None:
    line = _usage_error(cfg, "--window", window)
    assert "--window" in line, line


@pytest.mark.parametrize(("flag", "value"), [("--until", "0001-01-02"), ("--since", "0001-01-01")])
def test_a_time_out_of_range_names_its_flag(cfg: Path, flag: str, value: str) -> None:
    line = _usage_error(cfg, flag, value)
    assert flag in line, line


def test_a_sane_window_still_reports(cfg: Path) -> None:
    assert cli("ingest", "--config", str(cfg)).returncode == 0  # a store never ingested says so instead
    p = cli("report", "--config", str(cfg), "--window", "90d", "--format", "json")
    assert p.returncode == 0, p.stderr
    assert '"rows"' in p.stdout
