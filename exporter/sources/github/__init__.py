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

__all__ = [
    "COMPARE_FILES_LIMIT",
    "FINAL_STATES",
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
]
