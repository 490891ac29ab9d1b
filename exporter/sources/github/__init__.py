"""GitHub's REST API through PyGithub: compares, pull requests, incident issues, deployments."""

from __future__ import annotations

from exporter.sources.github.client import (
    COMPARE_FILES_LIMIT,
    FINAL_STATES,
    PER_PAGE,
    SOURCE,
    Cache,
    Client,
    CommitInfo,
    DeploymentStatus,
    GitHubDeployment,
    GitHubRepo,
    Issue,
    MemoryCache,
    Settings,
    deployment_statuses,
    deployments,
    incident_issues,
    parse_time,
)
from exporter.sources.github.webhook import GITHUB_EVENTS, valid_signature

__all__ = [
    "COMPARE_FILES_LIMIT",
    "FINAL_STATES",
    "GITHUB_EVENTS",
    "PER_PAGE",
    "SOURCE",
    "Cache",
    "Client",
    "CommitInfo",
    "DeploymentStatus",
    "GitHubDeployment",
    "GitHubRepo",
    "Issue",
    "MemoryCache",
    "Settings",
    "deployment_statuses",
    "deployments",
    "incident_issues",
    "parse_time",
    "valid_signature",
]
