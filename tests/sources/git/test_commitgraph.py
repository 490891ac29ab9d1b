# SPDX-License-Identifier: Apache-2.0
"""The in-memory commit graph answers exactly what git answers, on real repositories.

Random DAGs (branches, merges, merges that change files themselves, empty commits, clock skew)
are written with ``git fast-import``; every answer of ``CommitGraph`` is compared with the
``git log`` / ``git merge-base`` answer of ``Git`` on the same repository.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from exporter.demo.fastimport import FastImport
from exporter.sources.git.commitgraph import CommitGraph
from exporter.sources.git.repository import Git

T0 = 1_700_000_000
DIRS = ("svc/a", "svc/ab", "svc/b", "lib", "docs", 'odd"dir\tname', "ünï")
FILTERS: tuple[tuple[str, ...], ...] = (
    (),
    ("svc/a",),  # must not match svc/ab
    ("svc/a/",),
    ("svc/b", "lib"),
    ("docs/",),
    ("svc/a/f1.txt",),  # a single file
    ("svc/a/f1.txt/",),  # "directory only": a file of that name does not match
    ('odd"dir\tname',),  # git quotes this name in its output
    ("ünï/",),
    (":(glob)svc/*/f0.txt",),  # not a plain prefix: git interprets it
    ("svc/?b",),
    ("nothing/here",),
)


def _random_repo(path: Path, seed: int, commits: int) -> list[str]:
    """A random DAG on three branches with merges; returns every commit SHA, in creation order."""
    rng = random.Random(seed)
    shas: list[str] = []
    marks: list[str] = []
    tips: dict[str, str] = {}  # branch -> mark
    with FastImport(path) as fi:
        for n in range(commits):
            branch = rng.choice(("main", "main", "feature", "hotfix"))
            ref = f"refs/heads/{branch}"
            parents: list[str] = []
            if branch in tips:
                parents.append(tips[branch])
            elif shas:
                parents.append(rng.choice(marks))
            others = [t for b, t in tips.items() if b != branch and t not in parents]
            if parents and others and rng.random() < 0.25:
                parents.append(rng.choice(others))
            files: dict[str, str | None] = {}
            if rng.random() < 0.85:  # some commits (and some merges) change nothing
                for _ in range(rng.randint(1, 2)):
                    files[f"{rng.choice(DIRS)}/f{rng.randint(0, 2)}.txt"] = f"{n}\n"
            when = T0 + n * 60 + rng.randint(-600, 600)  # clock skew: dates do not follow the graph
            mark = fi.commit(f"commit {n}", when, files, ref=ref, parents=parents or None)
            sha = fi.sha(mark)
            shas.append(sha)
            marks.append(mark)
            tips[branch] = mark
    return shas


def _pairs(rng: random.Random, shas: list[str], n: int) -> list[tuple[str, str]]:
    return [(rng.choice(shas), rng.choice(shas)) for _ in range(n)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_changes_and_ancestry_match_git(tmp_path: Path, seed: int) -> None:
    shas = _random_repo(tmp_path / "repo", seed, 120)
    rng = random.Random(seed)
    with Git(tmp_path / "repo") as git:
        graph = CommitGraph(git)
        for head, base in _pairs(rng, shas, 40):
            paths = rng.choice(FILTERS)
            mine = graph.changes(head, [base], paths)
            theirs = git.changes(head, [base], paths)
            assert sorted(c.sha for c in mine) == sorted(c.sha for c in theirs), (head, base, paths)
            assert {c.sha: c for c in mine} == {c.sha: c for c in theirs}  # times and subjects too
        for a, d in _pairs(rng, shas, 80) + [(s, s) for s in shas[:5]]:
            assert graph.is_ancestor(a, d) == git.is_ancestor(a, d), (a, d)


@pytest.mark.parametrize("prepared", [False, True])
def test_filters_prepared_together_give_the_same_answers(tmp_path: Path, prepared: bool) -> None:
    shas = _random_repo(tmp_path / "repo", 9, 90)
    rng = random.Random(9)
    with Git(tmp_path / "repo") as git:
        graph = CommitGraph(git)
        if prepared:
            graph.prepare(FILTERS)
        for head, base in _pairs(rng, shas, 30):
            for paths in FILTERS:
                assert sorted(c.sha for c in graph.changes(head, [base], paths)) == sorted(
                    c.sha for c in git.changes(head, [base], paths)
                ), (head, base, paths)


def test_several_excludes_and_a_full_walk(tmp_path: Path) -> None:
    shas = _random_repo(tmp_path / "repo", 7, 80)
    with Git(tmp_path / "repo") as git:
        graph = CommitGraph(git)
        head = shas[-1]
        for paths in FILTERS:
            assert sorted(c.sha for c in graph.changes(head, [], paths)) == sorted(
                c.sha for c in git.changes(head, [], paths)
            )
            excl = [shas[10], shas[40], shas[55]]
            assert sorted(c.sha for c in graph.changes(head, excl, paths)) == sorted(
                c.sha for c in git.changes(head, excl, paths)
            )


def test_changes_are_oldest_first(tmp_path: Path) -> None:
    shas = _random_repo(tmp_path / "repo", 5, 60)
    with Git(tmp_path / "repo") as git:
        out = CommitGraph(git).changes(shas[-1], [], ())
        keys = [(c.commit_time, c.author_time, c.sha) for c in out]
        assert keys == sorted(keys)


def test_commits_added_later_are_loaded_incrementally(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shas = _random_repo(repo, 11, 40)
    with Git(repo) as git:
        graph = CommitGraph(git)
        first = graph.changes(shas[-1], [shas[0]], ("svc/a",))
        loaded = len(graph)
        with FastImport(repo) as fi:  # new commits after the first load, as a fetch would bring
            new = []
            parent = shas[-1]
            for n in range(5):
                mark = fi.commit(
                    f"later {n}",
                    T0 + 10_000 + n,
                    {f"svc/a/new{n}.txt": "x\n"},
                    ref="refs/heads/later",
                    parents=[parent],
                )
                parent = mark
                new.append(fi.sha(mark))
        assert len(graph) == loaded  # nothing is read until a new commit is asked for
        later = graph.changes(new[-1], [shas[0]], ("svc/a",))
        assert len(graph) == loaded + 5
        assert sorted(c.sha for c in later) == sorted(c.sha for c in git.changes(new[-1], [shas[0]], ("svc/a",)))
        assert {c.sha for c in first} < {c.sha for c in later}
        assert graph.is_ancestor(shas[-1], new[-1]) and not graph.is_ancestor(new[-1], shas[-1])


def test_a_commit_git_does_not_know_falls_back_to_git(tmp_path: Path) -> None:
    from exporter.errors import SourceError

    shas = _random_repo(tmp_path / "repo", 3, 10)
    with Git(tmp_path / "repo") as git:
        graph = CommitGraph(git)
        with pytest.raises(SourceError):  # exactly what git itself says about an unknown commit
            graph.changes("0" * 40, [shas[0]], ())
        assert graph.is_ancestor(shas[0], "main") == git.is_ancestor(shas[0], "main")


def test_shallow_clone_boundary_is_a_root(tmp_path: Path) -> None:
    shas = _random_repo(tmp_path / "repo", 4, 30)
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "5", f"file://{tmp_path / 'repo'}", str(clone)], check=True)
    with Git(clone) as git:
        head = git.resolve("HEAD")
        assert head is not None
        graph = CommitGraph(git)
        assert sorted(c.sha for c in graph.changes(head, [], ())) == sorted(c.sha for c in git.changes(head, [], ()))
        assert len(shas) > len(graph)


@pytest.mark.slow  # hundreds of git processes to compare against
def test_linear_ranges_in_both_directions(tmp_path: Path) -> None:
    """A linear history is one chain: ranges are slices, ancestry a comparison; both must be git's."""
    rng = random.Random(5)
    shas = []
    with FastImport(tmp_path / "repo") as fi:
        for n in range(40):
            files: dict[str, str | None] = {f"{rng.choice(DIRS)}/f.txt": f"{n}\n"} if n % 5 else {}
            shas.append(fi.sha(fi.commit(f"c{n}", T0 + n, files)))
    with Git(tmp_path / "repo") as git:
        graph = CommitGraph(git)
        graph.prepare(FILTERS)
        for head in shas[::3]:
            for base in shas[::4]:
                for paths in FILTERS[:6]:
                    assert sorted(c.sha for c in graph.changes(head, [base], paths)) == sorted(
                        c.sha for c in git.changes(head, [base], paths)
                    ), (head, base, paths)
                assert graph.is_ancestor(base, head) == git.is_ancestor(base, head)
