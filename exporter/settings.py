# SPDX-License-Identifier: Apache-2.0
"""The plain, validated values the rest of the code receives: frozen dataclasses, no parsing.

The config package builds them from YAML and the environment; sources, ingest and serve read them
and never see the raw document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from exporter.core.levels import Thresholds

DEFAULT_TAG_PATTERN = r"(?P<sha>[0-9a-f]{7,40})"
SECRET_ENV = {
    "github_token": "DORA_GITHUB_TOKEN",
    "github_app_id": "DORA_GITHUB_APP_ID",
    "argocd_webhook_token": "DORA_ARGOCD_WEBHOOK_TOKEN",
    "github_webhook_secret": "DORA_GITHUB_WEBHOOK_SECRET",
}
SECRET_FILE_ENV = {
    "github_token": "DORA_GITHUB_TOKEN_FILE",
    "github_app_private_key": "DORA_GITHUB_APP_PRIVATE_KEY_FILE",
}
CHANGE_STARTS = ("commit_time", "author_time", "pr_first_commit")


@dataclass(frozen=True)
class ManifestRule:
    """How to find deployed values in a GitOps repo: a path template plus a YAML key or a regex."""

    path: str
    yaml_key: tuple[str, ...] | None
    regex: re.Pattern[str] | None
    service: str | None
    environment: str | None
    path_regex: re.Pattern[str] = field(compare=False)

    @property
    def pathspec(self) -> str:
        """A git ``:(glob)`` pathspec selecting every file the template can match."""
        return ":(glob)" + re.sub(r"\{(service|environment)\}", "*", self.path)


@dataclass(frozen=True)
class GitOpsRepo:
    repo: str
    branch: str
    poll_interval: float
    manifests: tuple[ManifestRule, ...]
    max_manifest_bytes: int  # a larger manifest blob is skipped unread

    @cached_property  # read once per deployment by the ingester
    def key(self) -> str:
        """A stable, filesystem-safe id for the mirror directory and the store cursor."""
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", self.repo.rstrip("/").rsplit("/", 1)[-1])[:40]
        digest = hashlib.sha256(f"{self.repo}#{self.branch}".encode()).hexdigest()[:10]
        return f"{base}-{digest}"


@dataclass(frozen=True)
class ServiceConfig:
    name: str
    repo: str | None
    paths: tuple[str, ...]
    tag_pattern: str
    labels: tuple[tuple[str, str], ...]  # static labels on the service's series, e.g. team

    @property
    def ref_template(self) -> str | None:
        """``refs/tags/{tag}``-style patterns resolve through a ref, not a SHA in the tag."""
        return self.tag_pattern if "{tag}" in self.tag_pattern else None


@dataclass(frozen=True)
class Names:
    """Normalization of names seen in manifests: lower-case and ``_`` to ``-``, then a map."""

    normalize: bool
    services: Mapping[str, str]
    environments: Mapping[str, str]

    def _apply(self, raw: str, mapping: Mapping[str, str]) -> str:
        if raw in mapping:
            return mapping[raw]
        name = raw.lower().replace("_", "-") if self.normalize else raw
        return mapping.get(name, name)

    def service(self, raw: str) -> str:
        return self._apply(raw, self.services)

    def environment(self, raw: str) -> str:
        return self._apply(raw, self.environments)


@dataclass(frozen=True)
class AppMapping:
    """How an Argo CD Application becomes a (service, environment): first match wins per part.

    Order: the explicit ``apps`` map, then ``labels``, then ``name_templates``, then the
    ``destination_namespace`` template. A part found by an earlier method is kept."""

    apps: Mapping[str, tuple[str, str]]
    service_label: str | None
    environment_label: str | None
    name_templates: tuple[re.Pattern[str], ...]
    destination_namespace: re.Pattern[str] | None


@dataclass(frozen=True)
class ArgoCDConfig:
    """The Argo CD source: which Applications to watch and how to read them."""

    enabled: bool
    namespaces: tuple[str, ...]  # empty: all namespaces
    label_selector: str | None
    kubeconfig: str | None
    context: str | None
    mapping: AppMapping
    source_repo: str | None
    image_pattern: re.Pattern[str] | None
    connect_timeout: float
    read_timeout: float
    watch_timeout: float
    backoff: tuple[float, ...]
    name_template_sources: tuple[str, ...]


@dataclass(frozen=True)
class Window:
    label: str
    seconds: float


CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
TLS_VERSIONS = ("TLS12", "TLS13")


@dataclass(frozen=True, kw_only=True)
class TlsConfig:
    """A listener's ``tls`` (the Prometheus exporter-toolkit's ``tls_server_config``); absolute paths."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"


@dataclass(frozen=True, kw_only=True)
class ListenerSecurity:
    """TLS and basic-auth users (name, bcrypt hash) of one listener; neither by default."""

    tls: TlsConfig | None = None
    basic_auth_users: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Secrets:
    github_token: str | None
    github_app_id: str | None
    github_app_private_key: str | None
    argocd_webhook_token: str | None
    github_webhook_secret: str | None


@dataclass(frozen=True)
class IncidentService:
    """How an incident issue names its service: a label, or a title pattern."""

    service: str
    label: str | None
    title_pattern: re.Pattern[str] | None


@dataclass(frozen=True)
class GitHubIncidents:
    repos: tuple[str, ...]
    label: str
    failure_window: float
    environment: str | None
    services: tuple[IncidentService, ...]


@dataclass(frozen=True)
class DeploymentRepo:
    """A repository whose GitHub deployments are deployments of ``service``."""

    repo: str  # owner/name
    service: str


@dataclass(frozen=True)
class GitHubDeployments:
    """The optional Deployments API source (``github.deployments``), off by default."""

    enabled: bool
    poll_interval: float
    repos: tuple[DeploymentRepo, ...]  # effective: the explicit list plus every github: service repo
    environments: Mapping[str, str]  # GitHub environment -> exporter environment
    match_window: float  # the same commit deployed this close in time by two sources is one deployment
    backfill: float  # how far back the first read of a repository goes
    pending_max_age: float  # a deployment not final this long after its creation is given up


@dataclass(frozen=True)
class GitHubConfig:
    """The ``github:`` section; secrets (token, App key, webhook secret) come from ``Secrets``."""

    enabled: bool
    base_url: str
    poll_interval: float
    budget: float
    timeout: float
    max_rate_limit_wait: float
    retries: int
    app_installation_id: int | None
    lead_time_phases: bool
    incidents: GitHubIncidents
    deployments: GitHubDeployments


GITHUB_REPO_PREFIX = "github:"


@dataclass(frozen=True)
class Config:
    store_path: Path
    data_dir: Path
    listen: tuple[str, int]
    webhook_listen: tuple[str, int] | None
    log_level: str
    log_format: str
    production_environment: str
    windows: tuple[Window, ...]
    levels_name: str
    thresholds: Thresholds
    failure_window: float
    revert_pattern: re.Pattern[str]
    rollback_min_age: float
    change_start: str
    gitops: tuple[GitOpsRepo, ...]
    services: tuple[ServiceConfig, ...]
    names: Names
    environments: tuple[str, ...]
    secrets: Secrets
    argocd: ArgoCDConfig
    source_path: Path | None
    github: GitHubConfig
    http_security: ListenerSecurity = ListenerSecurity()
    webhook_security: ListenerSecurity = ListenerSecurity()

    def service(self, name: str) -> ServiceConfig | None:
        return self._services_by_name.get(name)

    @property
    def static_labels(self) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        """The static label names every DORA series carries (those of any service, sorted), and
        each configured service's values for them ("" where it has none: no label, to Prometheus)."""
        names = tuple(sorted({k for s in self.services for k, _ in s.labels}))
        values: dict[str, tuple[str, ...]] = {}
        for s in self.services:
            own = dict(s.labels)
            values.setdefault(s.name, tuple(own.get(n, "") for n in names))
        return names, values

    @cached_property  # the ingester looks a service up per deployment
    def _services_by_name(self) -> dict[str, ServiceConfig]:
        out: dict[str, ServiceConfig] = {}
        for s in self.services:
            out.setdefault(s.name, s)  # the first of duplicate names, as a linear search would
        return out


def redact_url(url: str) -> str:
    """Hide credentials embedded in a clone URL (``https://user:token@host/...``)."""
    return re.sub(r"(?<=://)[^/@]+@", "<redacted>@", url)
