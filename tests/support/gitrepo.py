# SPDX-License-Identifier: Apache-2.0
"""Real git repositories for tests, with fixed commit dates so every timestamp is known exactly.

Every command runs with its own environment (identity, dates, no user or system config), so a
developer's ``~/.gitconfig`` (signing, hooks, default branch) cannot change what a test sees, and
nothing leaks into ``os.environ`` of the test process.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from exporter.config.loading import parse
from exporter.ingest.gitops import GitOpsIngester, IngestResult
from exporter.ingest.repos import Repos
from exporter.model import PairKey
from exporter.sources.github.client import Client
from exporter.store import Store

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z: an arbitrary fixed epoch for every test repository
MINUTE = 60
HOUR = 3600

_BASE_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.test",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.test",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}


def git(cwd: Path, *args: str, when: int | None = None, author_when: int | None = None) -> str:
    """Run one git command in ``cwd``; ``when`` fixes the committer date (and author date by default)."""
    env = dict(_BASE_ENV)
    if when is not None:
        env["GIT_COMMITTER_DATE"] = f"@{when} +0000"
        env["GIT_AUTHOR_DATE"] = f"@{author_when if author_when is not None else when} +0000"
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def values_yaml(tag: str, repository: str = "registry.example/app") -> str:
    """A Helm-style values file whose ``image.tag`` is ``tag``."""
    return f"replicaCount: 2\nimage:\n  repository: {repository}\n  tag: {tag}\n"


class GitRepo:
    """A work-tree repository: write files, commit at fixed times, branch, merge, tag, push."""

    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        path.mkdir(parents=True, exist_ok=True)
        if not (path / ".git").exists():
            self.git("init", "-q", "-b", branch)

    @property
    def url(self) -> str:
        return str(self.path)

    def git(self, *args: str, when: int | None = None, author_when: int | None = None) -> str:
        return git(self.path, *args, when=when, author_when=author_when)

    # -- files and commits ----------------------------------------------------------------------

    def write(self, files: Mapping[str, str | None]) -> None:
        """Write (or, with ``None``, delete) files in the work tree and stage them."""
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                self.git("rm", "-q", "--", rel)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            self.git("add", "--", rel)

    def commit(
        self,
        message: str,
        when: int,
        files: Mapping[str, str | None] | None = None,
        author_when: int | None = None,
    ) -> str:
        """Stage ``files`` and commit them at ``when``; returns the new commit's full SHA."""
        if files:
            self.write(files)
        self.git("commit", "-q", "--allow-empty", "--no-verify", "-m", message, when=when, author_when=author_when)
        return self.sha()

    def move(self, old: str, new: str, when: int, message: str) -> str:
        (self.path / new).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", old, new)
        return self.commit(message, when)

    def sha(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}").strip()

    def commit_time(self, rev: str) -> int:
        return int(self.git("show", "-s", "--format=%ct", rev).strip())

    # -- branches, merges, tags -------------------------------------------------------------------

    def checkout(self, name: str, create: bool = False, start: str | None = None) -> None:
        args = ["checkout", "-q"]
        if create:
            args.append("-b")
        args.append(name)
        if start:
            args.append(start)
        self.git(*args)

    def merge(self, branch: str, message: str, when: int, author_when: int | None = None) -> str:
        """``git merge --no-ff`` of ``branch`` into the checked-out branch; returns the merge SHA."""
        self.git("merge", "-q", "--no-ff", "--no-edit", "-m", message, branch, when=when, author_when=author_when)
        return self.sha()

    def bump_via_merge(
        self, branch: str, files: Mapping[str, str | None], branch_when: int, merge_when: int, message: str
    ) -> tuple[str, str]:
        """A pull request: one commit on ``branch`` off the current head, merged ``--no-ff``.

        Returns ``(branch_commit, merge_commit)``; the current branch is checked out again.
        """
        home = self.git("symbolic-ref", "--short", "HEAD").strip()
        self.checkout(branch, create=True)
        branch_commit = self.commit(f"{message} (branch)", branch_when, files)
        self.checkout(home)
        merge_commit = self.merge(branch, f"Merge pull request from {branch}: {message}", merge_when)
        return branch_commit, merge_commit

    def tag(self, name: str, rev: str = "HEAD", annotated: bool = False, when: int | None = None) -> None:
        if annotated:
            self.git("tag", "-a", "-m", f"release {name}", name, rev, when=when)
        else:
            self.git("tag", name, rev)

    def reset_hard(self, rev: str) -> None:
        self.git("reset", "-q", "--hard", rev)

    # -- remotes --------------------------------------------------------------------------------

    def add_remote(self, name: str, url: str) -> None:
        self.git("remote", "add", name, url)

    def push(self, remote: str = "origin", force: bool = False, tags: bool = False) -> None:
        args = ["push", "-q"]
        if force:
            args.append("--force")
        args += [remote, f"{self.branch}:{self.branch}"]
        self.git(*args)
        if tags:
            self.git("push", "-q", remote, "--tags")


def bare_remote(path: Path, branch: str = "main") -> str:
    """Create a bare repository to push to; returns its ``file://`` URL (so the exporter mirrors it)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "--bare", "-b", branch)
    return path.resolve().as_uri()


# -- driving the exporter on such repositories ----------------------------------------------------

VALUES_RULE: dict[str, str] = {"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}


def manifest(service: str, environment: str = "prod") -> str:
    """Where ``VALUES_RULE`` finds ``service`` in ``environment``."""
    return f"apps/{service}/{environment}/values.yaml"


DeploymentRow = tuple[str, int, str | None, str | None, bool, bool]


class Exporter:
    """A config, a store and ``GitOpsIngester.poll()`` with fresh ``Repos``, as one run of the daemon does."""

    def __init__(
        self,
        tmp: Path,
        repo: str,
        manifests: list[dict[str, str]] | None = None,
        services: list[dict[str, object]] | None = None,
        **extra: object,
    ) -> None:
        raw: dict[str, object] = {
            "store": {"path": str(tmp / "dora.db")},
            "data_dir": str(tmp / "data"),
            "gitops": [{"repo": repo, "branch": "main", "manifests": manifests or [VALUES_RULE]}],
            "services": services or [],
            **extra,
        }
        self.raw = raw
        self.cfg = parse(raw, environ={}, base_dir=tmp)
        self.store = Store(self.cfg.store_path)
        self.github: Client | None = None  # a GitHub API client for github: service repositories
        self._repos: list[Repos] = []

    def poll(self) -> IngestResult:
        repos = Repos(self.cfg, self.github)
        try:
            return GitOpsIngester(self.cfg, self.cfg.gitops[0], self.store, repos).poll()
        finally:
            repos.close()

    def restart(self) -> None:
        """Close the store and open it again, as a restarted daemon does."""
        self.store.close()
        self.store = Store(self.cfg.store_path)

    def repos(self, github: Client | None = None) -> Repos:
        """``Repos`` for an ingester under test, closed (with their ``git`` processes) by ``close``."""
        repos = Repos(self.cfg, github)
        self._repos.append(repos)
        return repos

    def close(self) -> None:
        for repos in self._repos:
            repos.close()
        self.store.close()

    def deployments(self, service: str | None = None, environment: str | None = None) -> list[DeploymentRow]:
        """``(version, deployed_at, manifest_commit, commit, baseline, rework)`` oldest first."""
        return [
            (d.version, int(d.deployed_at.timestamp()), d.manifest_commit, d.commit, d.baseline, d.rework)
            for d in self.store.deployments(service, environment)
        ]

    def change_shas(self, service: str, environment: str = "prod") -> list[list[str]]:
        """Per deployment of the pair, oldest first, the SHAs of the changes it carried."""
        return [[c.sha for c in self.store.changes_of(d.id)] for d in self.store.deployments(service, environment)]

    def leads(self, service: str, environment: str = "prod") -> dict[str, float]:
        """Lead time in seconds per change SHA (commit-time start)."""
        history = self.store.histories("commit_time").get(PairKey(service, environment))
        return {} if history is None else {lead.sha: lead.lead_seconds for lead in history.leads}
