# SPDX-License-Identifier: Apache-2.0
"""The rules that span sections, checked once every section is valid on its own.

They are collected, not raised one by one, so a config with several mistakes names them all at once.
"""

from __future__ import annotations

import re

from exporter.config.github_model import OWNER_NAME
from exporter.config.model import ConfigModel
from exporter.settings import GITHUB_REPO_PREFIX, Secrets

__all__ = ["cross_checks", "deployment_repos"]

Issue = tuple[str, str]


def deployment_repos(cfg: ConfigModel) -> tuple[list[tuple[str, str]], list[Issue]]:
    """``github.deployments``' effective (repo, service) pairs: the explicit ones first, then every
    ``github:`` service repository; and the issues, if a repository shared by services is not listed."""
    dep = cfg.github.deployments
    explicit = {item.repo: item.service for item in dep.repos}
    by_repo: dict[str, list[str]] = {}
    for s in cfg.services:
        if s.repo and s.repo.startswith(GITHUB_REPO_PREFIX):
            by_repo.setdefault(s.repo.removeprefix(GITHUB_REPO_PREFIX), []).append(s.name)
    repos = list(explicit.items())
    problems: list[Issue] = []
    for repo, owners in by_repo.items():
        if repo in explicit or not dep.enabled:
            continue
        if len(owners) > 1:
            why = f"{repo} is the repository of {', '.join(owners)}: list it with the one service its deployments are"
            problems.append(("github.deployments.repos", why))
            continue
        repos.append((repo, owners[0]))
    return repos, problems


def _unique(cfg: ConfigModel) -> list[Issue]:
    out: list[Issue] = []
    if len({(g.repo, g.branch) for g in cfg.gitops}) != len(cfg.gitops):
        out.append(("gitops", "the same repo and branch is listed twice"))
    if len({s.name for s in cfg.services}) != len(cfg.services):
        out.append(("services", "service names must be unique"))
    return out


def _github(cfg: ConfigModel) -> list[Issue]:
    names = {s.name for s in cfg.services}
    out: list[Issue] = []
    for i, m in enumerate(cfg.github.incidents.services):
        if m.service not in names:
            out.append(
                (f"github.incidents.services[{i}].service", f"must name a configured service, got {m.service!r}")
            )
    dep = cfg.github.deployments
    for i, item in enumerate(dep.repos):
        if item.service not in names:
            out.append(
                (f"github.deployments.repos[{i}].service", f"must name a configured service, got {item.service!r}")
            )
    repos, ambiguous = deployment_repos(cfg)
    out += ambiguous
    if dep.enabled and not cfg.github.enabled:
        out.append(("github.deployments.enabled", "needs github.enabled: true"))
    if dep.enabled and not repos and not ambiguous:
        why = "no repository to read: list {repo, service} or use a github: service repo"
        out.append(("github.deployments.repos", why))
    for i, svc in enumerate(cfg.services):
        if svc.repo and svc.repo.startswith(GITHUB_REPO_PREFIX):
            if not re.match(OWNER_NAME, svc.repo.removeprefix(GITHUB_REPO_PREFIX)):
                out.append((f"services[{i}].repo", "must be github:owner/name"))
            elif not cfg.github.enabled:
                out.append((f"services[{i}].repo", "a github: repository needs github.enabled: true"))
    return out


def cross_checks(cfg: ConfigModel, secrets: Secrets) -> list[Issue]:
    """Every rule broken across sections, in the order the document reads."""
    out = _unique(cfg) + _github(cfg)
    gh = cfg.github
    if gh.enabled and secrets.github_app_id and not secrets.github_token and gh.app_installation_id is None:
        out.append(("github.app_installation_id", "is required to authenticate as a GitHub App"))
    if cfg.change_start == "pr_first_commit" and not gh.enabled:
        out.append(("change_start", "pr_first_commit needs the GitHub source (github.enabled: true)"))
    environments = {*cfg.environments, cfg.production_environment}
    for gh_env, env in gh.deployments.environments.items():
        if env not in environments:
            out.append(
                (f"github.deployments.environments.{gh_env}", f"{env!r} is not in environments (nor production)")
            )
    return out
