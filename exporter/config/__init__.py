"""The configuration: one typed model loaded from YAML and the environment, and its redaction."""

from __future__ import annotations

from exporter.config.loading import RESERVED_LABELS, load, parse, resolve_path
from exporter.settings import (
    CHANGE_STARTS,
    DEFAULT_TAG_PATTERN,
    GITHUB_REPO_PREFIX,
    SECRET_ENV,
    SECRET_FILE_ENV,
    AppMapping,
    ArgoCDConfig,
    Config,
    DeploymentRepo,
    GitHubConfig,
    GitHubDeployments,
    GitHubIncidents,
    GitOpsRepo,
    IncidentService,
    ManifestRule,
    Names,
    Secrets,
    ServiceConfig,
    Window,
)

__all__ = [
    "CHANGE_STARTS",
    "DEFAULT_TAG_PATTERN",
    "GITHUB_REPO_PREFIX",
    "RESERVED_LABELS",
    "SECRET_ENV",
    "SECRET_FILE_ENV",
    "AppMapping",
    "ArgoCDConfig",
    "Config",
    "DeploymentRepo",
    "GitHubConfig",
    "GitHubDeployments",
    "GitHubIncidents",
    "GitOpsRepo",
    "IncidentService",
    "ManifestRule",
    "Names",
    "Secrets",
    "ServiceConfig",
    "Window",
    "load",
    "parse",
    "resolve_path",
]
