# SPDX-License-Identifier: Apache-2.0
"""``demo --dir``: a directory the demo did not make is not overwritten unless ``--force``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli


def _demo(out: Path, *extra: str) -> tuple[int, str]:
    p = cli("demo", "--dir", str(out), "--days", "3", "--no-run", *extra)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stderr


def _operator_dir(root: Path) -> Path:
    """A directory holding an operator's own config and store, as a deployment has them."""
    out = root / "prod"
    out.mkdir()
    (out / "dora.yaml").write_text("store: {path: ./dora.db}\n")
    (out / "dora.db").write_bytes(b"precious history")
    return out


def test_a_foreign_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = _operator_dir(tmp_path)

    code, err = _demo(out)

    assert code == 2, err
    assert "--dir" in err and "--force" in err, err
    assert (out / "dora.yaml").read_text() == "store: {path: ./dora.db}\n"
    assert (out / "dora.db").read_bytes() == b"precious history"
    assert not (out / "minishop").exists()


def test_force_takes_a_foreign_directory(tmp_path: Path) -> None:
    out = _operator_dir(tmp_path)

    code, err = _demo(out, "--force")

    assert code == 0, err
    assert not (out / "dora.db").exists()
    assert "minishop" in (out / "dora.yaml").read_text()


def test_a_new_directory_and_a_rerun_on_it_work(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert _demo(out)[0] == 0
    (out / "dora.db").write_bytes(b"an earlier demo's store")

    code, err = _demo(out)

    assert code == 0, err
    assert not (out / "dora.db").exists()


def test_the_default_dir_works_on_a_fresh_checkout(tmp_path: Path) -> None:
    p = cli("demo", "--days", "3", "--no-run", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "demo" / "dora.yaml").is_file()
    assert cli("demo", "--days", "3", "--no-run", cwd=tmp_path).returncode == 0


def test_a_file_as_dir_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("not a directory\n")
    code, err = _demo(out)
    assert code == 2, err
    assert "--dir" in err and out.read_text() == "not a directory\n"


@pytest.mark.parametrize("days", ["0", "-3", "10000000"])
def test_days_out_of_range_names_days(tmp_path: Path, days: str) -> None:
    p = cli("demo", "--dir", str(tmp_path / "d"), "--days", days, "--no-run")
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert "--days" in p.stderr.strip().splitlines()[-1], p.stderr


def test_a_dir_that_cannot_be_created_is_one_line() -> None:
    """An ``OSError`` nothing names more precisely still ends as one line naming the path, exit 1."""
    out = "/proc/no-such-dir/demo"  # /proc takes no new directories, even from root
    p = cli("demo", "--dir", out, "--days", "3", "--no-run")
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("dora-exporter: ") and "/proc/no-such-dir" in line, line
