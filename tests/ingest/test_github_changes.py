# SPDX-License-Identifier: Apache-2.0
"""The changes of ``github:`` services against GitHub's edges: compares GitHub will never answer,
open pull requests, net diffs and renames."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.errors import SourceError
from exporter.ingest.github_changes import ChangeResolver
from exporter.ingest.repos import Repos
from exporter.sources.github.client import MemoryCache
from exporter.sources.github.repos import GitHubRepo
from tests.sources.github.test_client import _deploy, _exporter, _ingest
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, T0


def test_a_compare_without_common_ancestor_is_settled_once_and_the_queue_moves_on(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo = fake.repo("acme/shop")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, c0, T0 + HOUR)  # baseline
    # history rewritten from a new root (a force push of an unrelated history)
    r1 = repo.commit("rewritten root", ["services/shop/main.py"], T0 + 2 * HOUR, parents=[])
    _deploy(gitops, r1, T0 + 3 * HOUR)
    r2 = repo.commit("after the rewrite", ["services/shop/a.py"], T0 + 4 * HOUR)
    _deploy(gitops, r2, T0 + 5 * HOUR)

    result = _ingest(e)
    assert (result.deployments, result.unreadable, result.changes) == (3, 1, 1)
    assert e.change_shas("shop") == [[], [], [r2]]  # settled without changes; the next one is read
    assert e.store.unmatched_counts() == {("github", "compare_no_common_ancestor"): 1}
    resolver = ChangeResolver(e.cfg, e.store, Repos(e.cfg, e.github))
    assert resolver.pending() == 0 and resolver.poll().deployments == 0
    assert e.store.unmatched_counts() == {("github", "compare_no_common_ancestor"): 1}  # counted once
    e.close()


def test_an_unknown_base_and_a_diff_github_will_not_compute_are_settled(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, c0, T0 + HOUR)
    _ingest(e)  # the baseline resolved, its commit known
    del repo.commits[c0]  # garbage collected on GitHub after a force push
    c1 = repo.commit("one", ["services/shop/a.py"], T0 + 2 * HOUR)
    _deploy(gitops, c1, T0 + 3 * HOUR)
    assert _ingest(e).unreadable == 1
    repo.unavailable_diff = True
    c2 = repo.commit("two", ["services/shop/b.py"], T0 + 4 * HOUR)
    _deploy(gitops, c2, T0 + 5 * HOUR)
    assert _ingest(e).unreadable == 1
    assert e.change_shas("shop") == [[], [], []]
    assert e.store.unmatched_counts() == {("github", "compare_unavailable"): 2}
    e.close()


def test_a_range_over_the_compare_commit_cap_is_settled_without_paging(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, c0, T0 + HOUR)
    for i in range(10_001):
        head = repo.commit(f"c{i}", ["services/shop/x.py"], T0 + 2 * HOUR + i)
    _deploy(gitops, head, T0 + 10 * 24 * HOUR)
    result = _ingest(e)
    assert (result.deployments, result.unreadable) == (2, 1)
    assert e.store.unmatched_counts() == {("github", "compare_too_large"): 1}
    assert len([r for r in fake.hits("/compare/") if r.query.get("per_page") != "1"]) == 1
    e.close()


def test_a_compare_404_of_a_missing_repository_stays_an_error_to_retry(fake: FakeGitHub) -> None:
    fake.repo("acme/shop")
    gh = GitHubRepo(client_for(fake, MemoryCache()), "acme/gone", False)
    with pytest.raises(SourceError) as err:
        gh.changes("a" * 40, ["b" * 40], [])
    assert err.value.kind == "not_found" and type(err.value).__name__ != "RangeUnreadable"


def test_no_pull_request_is_not_cached_while_the_commit_waits_in_an_open_one(fake: FakeGitHub) -> None:
    """Deployed from a branch (to staging) before its pull request merged, then again after."""
    repo = fake.repo("acme/shop")
    repo.commit("initial", ["services/shop/main.py"], T0)
    branch = repo.commit("feature", ["services/shop/a.py"], T0 + HOUR, move_head=False)
    repo.open_pr(9, [branch], T0 + 2 * HOUR)
    gh = GitHubRepo(client_for(fake, MemoryCache()), "acme/shop", True)
    assert gh.pull_request_of(branch) is None  # only the open pull request is listed
    repo.merge_pr(9, T0 + 5 * HOUR)
    pr = gh.pull_request_of(branch)
    assert pr is not None and pr.number == 9
    assert gh.pull_request_of(branch) == pr and len(fake.hits(f"/commits/{branch}/pulls")) == 2  # now cached
