# SPDX-License-Identifier: Apache-2.0
"""GitHub's REST API through PyGithub: compares, pull requests, incident issues, deployments."""

from __future__ import annotations

from exporter.sources.github.client import (
    PER_PAGE,
    SOURCE,
    Cache,
    Client,
    MemoryCache,
    Settings,
    parse_time,
)
from exporter.sources.github.deployments import (
    FINAL_STATES,
    DeploymentStatus,
    GitHubDeployment,
    deployment_statuses,
    deployments,
)
from exporter.sources.github.issues import Issue, incident_issues
from exporter.sources.github.repos import COMPARE_FILES_LIMIT, CommitInfo, GitHubRepo
from exporter.sources.github.webhook import GITHUB_EVENTS, PayloadError, delivery_document, valid_signature

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
    "PayloadError",
    "Settings",
    "delivery_document",
    "deployment_statuses",
    "deployments",
    "incident_issues",
    "parse_time",
    "valid_signature",
]
