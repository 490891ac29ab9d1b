# SPDX-License-Identifier: Apache-2.0
"""A local repository replaced on disk is read again on the next poll.

The long-lived ``cat-file`` children keep the directory they started in as their working directory:
a repository moved away and replaced by a new clone kept being read from the old copy (new commits
never ingested, ``source_up`` 1), and one deleted and re-cloned in place answered ``branch_missing``
forever. These tests poll with one ``Repos`` across polls, as the daemon does.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config.loading import parse
from exporter.daemon.passes import Passes
from exporter.daemon.wiring import Components, build
from exporter.ingest.gitops import GitOpsIngester
from exporter.ingest.repos import Repos
from exporter.settings import Config
from exporter.store import Store
from tests.support.gitrepo import MINUTE, T0, VALUES_RULE, GitRepo, bare_remote, git, manifest, values_yaml

API = manifest("api")


def _config(tmp_path: Path, repo: Path | str) -> Config:
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "data_dir": str(tmp_path / "data"),
        "gitops": [{"repo": str(repo), "branch": "main", "manifests": [VALUES_RULE]}],
        "services": [{"name": "api", "repo": str(repo), "paths": ["app/"]}],
    }
    return parse(raw, environ={}, base_dir=tmp_path)


class Daemon:
    """One store, one ``Repos`` and one ingester kept across polls."""

    def __init__(self, cfg: Config) -> None:
        self.store = Store(cfg.store_path)
        self.repos = Repos(cfg)
        self.ingester = GitOpsIngester(cfg, cfg.gitops[0], self.store, self.repos)

    def versions(self) -> list[str]:
        return [d.version for d in self.store.deployments("api", "prod")]

    def close(self) -> None:
        self.repos.close()
        self.store.close()


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo(tmp_path / "gitops")
    r.commit("feature", T0 - MINUTE, {"app/main.py": "one\n"})
    r.commit("Deploy api", T0, {API: values_yaml(r.sha()[:12])})
    return r


@pytest.fixture
def daemon(tmp_path: Path, repo: GitRepo) -> Iterator[Daemon]:
    d = Daemon(_config(tmp_path, repo.path))
    yield d
    d.close()


def _bump(clone: GitRepo, n: int) -> str:
    clone.commit(f"feature {n}", T0 + n * MINUTE, {"app/main.py": f"{n}\n"})
    tag = clone.sha()[:12]
    clone.commit(f"Deploy api {n}", T0 + n * MINUTE + 1, {API: values_yaml(tag)})
    return tag


def test_a_repository_moved_away_and_replaced_by_a_clone_is_read_from_the_clone(
    tmp_path: Path, repo: GitRepo, daemon: Daemon
) -> None:
    daemon.ingester.poll()
    first = daemon.versions()
    assert len(first) == 1
    repo.path.rename(tmp_path / "gitops.old")
    git(tmp_path, "clone", "-q", str(tmp_path / "gitops.old"), str(repo.path))
    tag = _bump(GitRepo(repo.path), 2)
    result = daemon.ingester.poll()
    assert daemon.versions() == [*first, tag]
    assert result.deployments == 1
    # its changes come from the new clone's commit graph, not one cached for the old copy
    assert [len(shas) for shas in _changes(daemon)] == [0, 1]


def test_a_repository_deleted_and_recloned_in_place_is_read_again(
    tmp_path: Path, repo: GitRepo, daemon: Daemon
) -> None:
    daemon.ingester.poll()
    upstream = tmp_path / "upstream"
    git(tmp_path, "clone", "-q", str(repo.path), str(upstream))
    tag = _bump(GitRepo(upstream), 2)
    shutil.rmtree(repo.path)
    git(tmp_path, "clone", "-q", str(upstream), str(repo.path))
    daemon.ingester.poll()  # raised branch_missing before: the children read the deleted directory
    assert daemon.versions()[-1] == tag


def test_a_commit_graph_of_the_replaced_repository_is_not_asked_again(
    tmp_path: Path, repo: GitRepo, daemon: Daemon
) -> None:
    """Replaced by a rewritten history: the first deployment's commit is gone. A graph kept from the
    old repository still knew it and attributed changes from it; the new repository's graph does not
    (a deployment whose base commit is gone carries no changes)."""
    daemon.ingester.poll()
    rewritten = GitRepo(tmp_path / "rewritten")
    rewritten.commit("feature, rewritten", T0 - 2 * MINUTE, {"app/main.py": "one, again\n"})
    tag = rewritten.sha()[:12]
    rewritten.commit("Deploy api", T0 + MINUTE, {API: values_yaml(tag)})
    shutil.rmtree(repo.path)
    rewritten.path.rename(repo.path)
    daemon.ingester.poll()
    assert daemon.versions()[-1] == tag
    assert _changes(daemon)[-1] == []


def test_a_deleted_mirror_is_cloned_again(tmp_path: Path, repo: GitRepo) -> None:
    url = bare_remote(tmp_path / "remote.git")
    repo.add_remote("origin", url)
    repo.push()
    d = Daemon(_config(tmp_path, url))
    try:
        d.ingester.poll()
        shutil.rmtree(tmp_path / "data" / "mirrors")
        tag = _bump(repo, 2)
        repo.push()
        d.ingester.poll()
        assert d.versions()[-1] == tag
    finally:
        d.close()


def _changes(daemon: Daemon) -> list[list[str]]:
    return [[c.sha for c in daemon.store.changes_of(d.id)] for d in daemon.store.deployments("api", "prod")]


@pytest.fixture
def components(tmp_path: Path, repo: GitRepo) -> Iterator[Components]:
    c = build(_config(tmp_path, repo.path))
    yield c
    c.repos.close()
    c.store.close()


def test_a_repository_gone_for_good_shows_as_the_source_down(
    tmp_path: Path, repo: GitRepo, components: Components
) -> None:
    """Stuck failing is visible: ``source_up{source="gitops"}`` 0 through the daemon's supervision
    guard, with the kind of the error. ``/healthz`` stays 200 by design (liveness: a restart would
    not bring the repository back); the staleness alert fires on the source's last success."""
    passes = Passes(components)
    up = {"source": "gitops"}
    assert passes.poll_gitops(components.ingesters[0], recompute=False) is not None
    assert components.registry.get_sample_value("dora_exporter_source_up", up) == 1
    shutil.rmtree(repo.path)
    for _ in range(2):  # every poll after it fails the same way
        assert passes.poll_gitops(components.ingesters[0], recompute=False) is None
        assert components.registry.get_sample_value("dora_exporter_source_up", up) == 0
    errors = {"source": "gitops", "kind": "repo_missing"}
    assert components.registry.get_sample_value("dora_exporter_source_errors_total", errors) == 2
