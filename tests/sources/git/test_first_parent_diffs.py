# SPDX-License-Identifier: Apache-2.0
"""``Git.first_parent_diffs`` prints what ``git log --first-parent --reverse --raw`` prints.

The GitOps reader relies on the two being the same lines: commits in first-parent order, oldest
first, merges diffed against their first parent, commits that touch no path left out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.errors import SourceError
from exporter.sources.git.repository import Git
from tests.support.gitrepo import GitRepo

FORMAT = "%x1e%H%x1f%ct%x1f%s"
T0 = 1_700_000_000


def _log(git: Git, rev_range: str, paths: list[str]) -> list[str]:
    args = ["log", "--first-parent", "--diff-merges=first-parent", "--reverse", "--raw", "--no-abbrev"]
    return list(git.stream(*args, "--no-renames", f"--format={FORMAT}", rev_range, "--", *paths))


def _significant(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("\x1e", ":"))]


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo(tmp_path / "gitops")
    r.commit("root", T0, {"deploy/prod/a.yaml": "tag: 1\n", "README": "x\n"})
    r.commit("docs only", T0 + 10, {"README": "y\n"})
    r.commit("bump a and b", T0 + 20, {"deploy/prod/a.yaml": "tag: 2\n", "deploy/dev/b.yaml": "tag: 1\n"})
    r.bump_via_merge("pr-1", {"deploy/dev/b.yaml": "tag: 2\n"}, T0 + 30, T0 + 40, "bump b")
    r.checkout("side", create=True)
    r.commit("side work", T0 + 50, {"deploy/prod/c.yaml": "tag: 9\n"})
    r.checkout("main")
    r.commit("main work", T0 + 60, {"deploy/prod/a.yaml": "tag: 3\n"})
    r.merge("side", "merge side", T0 + 70)
    r.commit("delete b", T0 + 80, {"deploy/dev/b.yaml": None})
    r.move("deploy/prod/c.yaml", "deploy/prod/ç d.yaml", T0 + 90, "rename c")
    return r


@pytest.mark.parametrize("piped", [False, True], ids=["fed", "piped"])
@pytest.mark.parametrize("paths", [["deploy"], ["deploy/prod"], ["deploy/dev", "README"], ["nothing/here"]])
def test_same_lines_as_git_log(repo: GitRepo, paths: list[str], piped: bool) -> None:
    with Git(repo.path) as git:
        got = list(git.first_parent_diffs("main", FORMAT, paths, piped=piped))
        want = _log(git, "main", paths)
    assert _significant(got) == _significant(want)
    if paths != ["nothing/here"]:
        assert any(line.startswith(":") for line in got)


def test_a_range_starts_after_its_base(repo: GitRepo) -> None:
    base = repo.sha("main~3")
    with Git(repo.path) as git:
        got = _significant(list(git.first_parent_diffs(f"{base}..main", FORMAT, ["deploy"])))
        assert got == _significant(_log(git, f"{base}..main", ["deploy"]))
        assert got and base not in "".join(got)
        assert list(git.first_parent_diffs("main..main", FORMAT, ["deploy"])) == []


@pytest.mark.parametrize("piped", [False, True], ids=["fed", "piped"])
def test_an_unknown_range_is_a_source_error(repo: GitRepo, piped: bool) -> None:
    with Git(repo.path) as git, pytest.raises(SourceError):
        list(git.first_parent_diffs("no-such-branch", FORMAT, ["deploy"], piped=piped))
