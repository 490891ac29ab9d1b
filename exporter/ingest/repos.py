# SPDX-License-Identifier: Apache-2.0
"""The repositories the ingesters read, opened (or mirrored) once and shared, and the commit a tag names."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.settings import GITHUB_REPO_PREFIX, Config, redact_url
from exporter.sources.git.commitgraph import ChangeLister, CommitGraph
from exporter.sources.git.repository import Git, fetch, open_repo

if TYPE_CHECKING:
    from exporter.sources.github.client import Client

__all__ = ["Repos", "paths_missing", "service_key"]

log = structlog.get_logger(__name__)


class Repos:
    """Open repositories (local or mirrored) shared by the ingesters, fetched once per poll.

    ``github:owner/name`` repositories are read through ``github`` (a shared API client).

    The first time a repository is opened, the services read from it whose paths exist nowhere at its
    head are logged (``config.service_without_changes``) and passed to ``notice``: they would count
    no change, ever, and look like a team that never changes anything."""

    def __init__(
        self, cfg: Config, github: Client | None = None, *, notice: Callable[[str, str], None] | None = None
    ) -> None:
        self.cfg = cfg
        self.github = github
        self._notice = notice
        self._checked: set[str] = set()
        self._open: dict[str, tuple[Git, bool]] = {}
        self._graphs: dict[int, CommitGraph] = {}
        self._lock = threading.Lock()

    @staticmethod
    def deferred(repo: str) -> bool:
        """Repositories read through a remote API: their commits and changes are read after the
        GitOps poll by their own job (``ingest.github_changes.ChangeResolver``), so that a slow or
        failing API never holds up a GitOps poll."""
        return repo.startswith(GITHUB_REPO_PREFIX)

    def lister(self, repo: str, gitops_repo: str, gitops_git: Git | None) -> ChangeLister:
        """The change lister of a service repository (the GitOps clone itself when they are the same)."""
        if repo.startswith(GITHUB_REPO_PREFIX):
            if self.github is None:
                raise SourceError("github", ErrorKind.NOT_CONFIGURED, f"{repo} needs the GitHub source")
            from exporter.sources.github.repos import GitHubRepo

            return GitHubRepo(
                self.github, repo.removeprefix(GITHUB_REPO_PREFIX), self.cfg.change_start == "pr_first_commit"
            )
        git = gitops_git if repo == gitops_repo and gitops_git is not None else self.get(repo, service_key(repo), False)
        return self.graph(git)  # the in-memory commit graph, kept across polls

    def get(self, repo: str, key: str, refresh: bool) -> Git:
        with self._lock:
            entry = self._open.get(repo)
            if entry is not None and entry[1] and not (entry[0].path / "HEAD").exists():
                entry[0].close()
                entry = None  # a mirror deleted under us: cloned again
            if entry is None:
                entry = self._open[repo] = open_repo(repo, self.cfg.data_dir / "mirrors", key)
            entry[0].revalidate()  # a repository replaced on disk: read again (a graph of it is stale)
            # also on first open: a mirror left by an earlier run (a restart, `ingest`) is stale
            if refresh and entry[1]:
                fetch(entry[0])
            if repo not in self._checked:
                self._checked.add(repo)
                self._check_paths(repo, entry[0])
            return entry[0]

    def _check_paths(self, repo: str, git: Git) -> None:
        """Warn about each service of ``repo`` none of whose paths exists at the head: the GitOps
        branch when ``repo`` is a GitOps repository, else the default branch (``HEAD``)."""
        branch = next((g.branch for g in self.cfg.gitops if g.repo == repo), None)
        head = (git.resolve(f"refs/heads/{branch}") or git.resolve(branch)) if branch else git.resolve("HEAD")
        if head is None:
            return  # no such branch: the GitOps poll says so itself
        for s in self.cfg.services:
            if s.repo == repo and paths_missing(git, head, s.paths):
                why = f"none of its paths ({', '.join(s.paths)}) exists in {redact_url(repo)} at {branch or 'HEAD'}"
                log.warning("config.service_without_changes", service=s.name, reason=why)
                if self._notice is not None:
                    self._notice(s.name, why)

    def graph(self, git: Git) -> CommitGraph:
        with self._lock:
            graph = self._graphs.get(id(git))
            if graph is None or graph.git is not git or graph.stale:
                graph = self._graphs[id(git)] = CommitGraph(git)
                names = {repo for repo, (g, _) in self._open.items() if g is git}
                graph.prepare(s.paths for s in self.cfg.services if s.repo in names)  # one git pass for all
            return graph

    def close(self) -> None:
        with self._lock:
            for git, _ in self._open.values():
                git.close()
            self._open.clear()
            self._graphs.clear()


def paths_missing(git: Git, rev: str, paths: Sequence[str]) -> bool:
    """True when none of ``paths`` exists at ``rev`` (no paths is the whole repository: never missing)."""
    if not paths:
        return False
    return not git.run("ls-tree", "--name-only", rev, "--", *paths).strip()


def service_key(repo: str) -> str:
    """The mirror directory name of a service repository: readable tail plus a hash of the full URL."""

    tail = repo.rstrip("/").rsplit("/", 1)[-1].replace(":", "_")[:40]
    return f"svc-{tail}-{hashlib.sha256(repo.encode()).hexdigest()[:10]}"
