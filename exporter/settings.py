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
from typing import Any

from exporter.core.dora import Thresholds

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
    service: str | None = None
    environment: str | None = None
    path_regex: re.Pattern[str] = field(default=re.compile(""), compare=False)

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
    labels: tuple[tuple[str, str], ...] = ()  # static labels on the service's series, e.g. team

    @property
    def ref_template(self) -> str | None:
        """``refs/tags/{tag}``-style patterns resolve through a ref, not a SHA in the tag."""
        return self.tag_pattern if "{tag}" in self.tag_pattern else None


@dataclass(frozen=True)
class Names:
    """Normalization of names seen in manifests: lower-case and ``_`` to ``-``, then a map."""

    normalize: bool = True
    services: Mapping[str, str] = field(default_factory=dict)
    environments: Mapping[str, str] = field(default_factory=dict)

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

    apps: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    service_label: str | None = None
    environment_label: str | None = None
    name_templates: tuple[re.Pattern[str], ...] = ()
    destination_namespace: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ArgoCDConfig:
    """The Argo CD source: which Applications to watch and how to read them."""

    enabled: bool = False
    namespaces: tuple[str, ...] = ("argocd",)  # empty: all namespaces
    label_selector: str | None = None
    kubeconfig: str | None = None
    context: str | None = None
    mapping: AppMapping = field(default_factory=AppMapping)
    source_repo: str | None = None
    image_pattern: re.Pattern[str] | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 90.0
    watch_timeout: float = 60.0
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    name_template_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    label: str
    seconds: float


@dataclass(frozen=True)
class Secrets:
    github_token: str | None = None
    github_app_id: str | None = None
    github_app_private_key: str | None = None
    argocd_webhook_token: str | None = None
    github_webhook_secret: str | None = None


@dataclass(frozen=True)
class IncidentService:
    """How an incident issue names its service: a label, or a title pattern."""

    service: str
    label: str | None
    title_pattern: re.Pattern[str] | None


@dataclass(frozen=True)
class GitHubIncidents:
    repos: tuple[str, ...] = ()
    label: str = "incident"
    failure_window: float = 24 * 3600.0
    environment: str | None = None
    services: tuple[IncidentService, ...] = ()


@dataclass(frozen=True)
class DeploymentRepo:
    """A repository whose GitHub deployments are deployments of ``service``."""

    repo: str  # owner/name
    service: str


@dataclass(frozen=True)
class GitHubDeployments:
    """The optional Deployments API source (``github.deployments``), off by default."""

    enabled: bool = False
    poll_interval: float = 300.0
    repos: tuple[DeploymentRepo, ...] = ()  # effective: the explicit list plus every github: service repo
    environments: Mapping[str, str] = field(default_factory=dict)  # GitHub environment -> exporter environment
    match_window: float = 3600.0  # the same commit deployed this close in time by two sources is one deployment
    backfill: float = 30 * 24 * 3600.0  # how far back the first read of a repository goes
    pending_max_age: float = 24 * 3600.0  # a deployment not final this long after its creation is given up

    def redacted(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "poll_interval": f"{self.poll_interval:g}s",
            "repos": [{"repo": r.repo, "service": r.service} for r in self.repos],
            "environments": dict(self.environments),
            "match_window": f"{self.match_window:g}s",
            "backfill": f"{self.backfill:g}s",
            "pending_max_age": f"{self.pending_max_age:g}s",
        }


@dataclass(frozen=True)
class GitHubConfig:
    """The ``github:`` section; secrets (token, App key, webhook secret) come from ``Secrets``."""

    enabled: bool = False
    base_url: str = "https://api.github.com"
    poll_interval: float = 300.0
    budget: float = 30.0
    timeout: float = 10.0
    max_rate_limit_wait: float = 60.0
    retries: int = 3
    app_installation_id: int | None = None
    lead_time_phases: bool = False
    incidents: GitHubIncidents = field(default_factory=GitHubIncidents)
    deployments: GitHubDeployments = field(default_factory=GitHubDeployments)

    def redacted(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "base_url": _redact_url(self.base_url),
            "poll_interval": f"{self.poll_interval:g}s",
            "budget": f"{self.budget:g}s",
            "timeout": f"{self.timeout:g}s",
            "max_rate_limit_wait": f"{self.max_rate_limit_wait:g}s",
            "retries": self.retries,
            "app_installation_id": self.app_installation_id,
            "lead_time_phases": self.lead_time_phases,
            "incidents": {
                "repos": list(self.incidents.repos),
                "label": self.incidents.label,
                "failure_window": f"{self.incidents.failure_window:g}s",
                "environment": self.incidents.environment,
                "services": [
                    {
                        "service": m.service,
                        "label": m.label,
                        "title_pattern": m.title_pattern.pattern if m.title_pattern else None,
                    }
                    for m in self.incidents.services
                ],
            },
            "deployments": self.deployments.redacted(),
        }


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
    argocd: ArgoCDConfig = field(default_factory=ArgoCDConfig)
    source_path: Path | None = None
    github: GitHubConfig = field(default_factory=GitHubConfig)

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

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data, secrets replaced by ``<redacted>``/``<unset>``."""
        return {
            "store": {"path": str(self.store_path)},
            "data_dir": str(self.data_dir),
            "http": {
                "listen": f"{self.listen[0]}:{self.listen[1]}",
                "webhook_listen": (
                    f"{self.webhook_listen[0]}:{self.webhook_listen[1]}" if self.webhook_listen else None
                ),
            },
            "log": {"level": self.log_level, "format": self.log_format},
            "production_environment": self.production_environment,
            "environments": list(self.environments),
            "windows": [w.label for w in self.windows],
            "levels": {
                "preset": self.levels_name,
                "thresholds": {
                    m.value: {"elite": b.elite, "high": b.high, "medium": b.medium} for m, b in self.thresholds.items()
                },
            },
            "failure_window": f"{self.failure_window:g}s",
            "rollback_min_age": f"{self.rollback_min_age:g}s",
            "revert_pattern": self.revert_pattern.pattern,
            "change_start": self.change_start,
            "names": {
                "normalize": self.names.normalize,
                "services": dict(self.names.services),
                "environments": dict(self.names.environments),
            },
            "gitops": [
                {
                    "repo": _redact_url(g.repo),
                    "branch": g.branch,
                    "poll_interval": f"{g.poll_interval:g}s",
                    "manifests": [
                        {
                            "path": r.path,
                            **({"yaml_key": ".".join(r.yaml_key)} if r.yaml_key else {}),
                            **({"regex": r.regex.pattern} if r.regex else {}),
                            **({"service": r.service} if r.service else {}),
                            **({"environment": r.environment} if r.environment else {}),
                        }
                        for r in g.manifests
                    ],
                }
                for g in self.gitops
            ],
            "services": [
                {
                    "name": s.name,
                    "repo": _redact_url(s.repo) if s.repo else None,
                    "paths": list(s.paths),
                    "tag_pattern": s.tag_pattern,
                    "labels": dict(s.labels),
                }
                for s in self.services
            ],
            "github": self.github.redacted(),
            "argocd": {
                "enabled": self.argocd.enabled,
                "namespaces": list(self.argocd.namespaces),
                "label_selector": self.argocd.label_selector,
                "kubeconfig": self.argocd.kubeconfig,
                "name_templates": list(self.argocd.name_template_sources),
                "source_repo": self.argocd.source_repo,
                "image_pattern": self.argocd.image_pattern.pattern if self.argocd.image_pattern else None,
                "backoff": [f"{b:g}s" for b in self.argocd.backoff],
            },
            "secrets": {
                name: ("<redacted>" if getattr(self.secrets, name) else "<unset>")
                for name in Secrets.__dataclass_fields__
            },
        }


def _redact_url(url: str) -> str:
    """Hide credentials embedded in a clone URL (``https://user:token@host/...``)."""
    return re.sub(r"(?<=://)[^/@]+@", "<redacted>@", url)
