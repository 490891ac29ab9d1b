# SPDX-License-Identifier: Apache-2.0
"""The GitOps history read in a child process gives what the in-process reader gives.

A first ingest of a long history reads its manifests in ``python -m exporter.sources.gitops.child``;
these tests lower the threshold so that small histories take that path too.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from exporter import config as cfgmod
from exporter.daemon.runtime import Daemon
from exporter.demo import generate
from exporter.errors import SourceError
from exporter.sources import gitops
from exporter.sources.git.repository import Git
from exporter.sources.gitops import child as gitops_child
from tests.support.store_rows import natural_rows

END = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("child") / "demo"
    generate.generate(out, seed=5, days=40, end=END)
    generate.write_config(out, "127.0.0.1:0")
    return out


def _config(demo: Path, name: str) -> cfgmod.Config:
    raw = yaml.safe_load((demo / "dora.yaml").read_text())
    raw["store"] = {"path": str(demo / name / "dora.db")}
    raw["data_dir"] = str(demo / name)
    path = demo / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return cfgmod.load(path)


def _reader_children() -> list[int]:
    """Live child processes of this one running the reader module (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"exporter.sources.gitops.child" in cmdline:
            out.append(int(entry.name))
    return out


def test_the_child_yields_what_the_in_process_reader_yields(demo: Path) -> None:
    cfg = _config(demo, "reader")
    repo = cfg.gitops[0]
    with Git(Path(repo.repo)) as git:
        here = list(gitops.read_commits(git, repo, gitops.Extractor(repo, cfg.names, git), repo.branch))
    there = list(gitops_child.read_commits(Path(repo.repo), repo, cfg.names, repo.branch))
    assert len(here) > 200
    assert sum(len(c.values) for c in here) > 200
    assert there == here
    assert _reader_children() == []


def test_an_ingest_through_the_child_stores_the_same_rows(demo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("in-process", "child"):
        if name == "child":
            monkeypatch.setattr(gitops_child, "CHILD_MIN_COMMITS", 10)
        cfg = _config(demo, name)
        with Git(Path(cfg.gitops[0].repo)) as git:
            assert gitops_child.worth_a_child(git, cfg.gitops[0].branch) is (name == "child")
        daemon = Daemon(cfg)
        try:
            daemon.ingest_once()
        finally:
            daemon.close()
    child_rows = natural_rows(demo / "child" / "dora.db")
    assert len(child_rows["deployments"]) > 200 and child_rows["changes"]
    assert child_rows == natural_rows(demo / "in-process" / "dora.db")


def test_a_failure_in_the_child_is_the_source_error_it_was(demo: Path) -> None:
    cfg = _config(demo, "failing")
    repo = cfg.gitops[0]
    with pytest.raises(SourceError) as info:
        list(gitops_child.read_commits(Path(repo.repo), repo, cfg.names, "no-such-branch"))
    assert info.value.kind == "git_command"
    assert "no-such-branch" in str(info.value)
    assert _reader_children() == []


def test_closing_the_reader_early_stops_the_child(demo: Path) -> None:
    cfg = _config(demo, "closed")
    repo = cfg.gitops[0]
    commits = gitops_child.read_commits(Path(repo.repo), repo, cfg.names, repo.branch)
    assert next(commits).commit
    assert len(_reader_children()) == 1
    commits.close()
    assert _reader_children() == []
