# SPDX-License-Identifier: Apache-2.0
"""The validated model as the plain ``exporter.settings`` values the rest of the code receives.

Conversion cannot fail: the model and ``checks`` have refused everything it could trip on. Paths resolve
against the config file's folder; path and name templates become the regexes the sources match with.
"""

from __future__ import annotations

import re
from pathlib import Path

from exporter.config.argocd_model import AppMappingSection, ArgoCDSection
from exporter.config.checks import deployment_repos
from exporter.config.github_model import GitHubSection
from exporter.config.model import ConfigModel, GitOpsSection, LevelsSection, ServiceSection
from exporter.config.tls_model import TlsSection
from exporter.core.levels import DEFAULT_PRESET, PRESETS, Bounds, Thresholds
from exporter.settings import (
    AppMapping,
    ArgoCDConfig,
    Config,
    DeploymentRepo,
    GitHubConfig,
    GitHubDeployments,
    GitHubIncidents,
    GitOpsRepo,
    IncidentService,
    ListenerSecurity,
    ManifestRule,
    Names,
    Secrets,
    ServiceConfig,
    TlsConfig,
    Window,
)

__all__ = ["default_repo", "path_regex", "to_settings"]


def path_regex(template: str) -> re.Pattern[str]:
    """``{service}``/``{environment}`` match within one path segment; ``*`` too; the rest is literal.

    ``{service}`` is greedy and ``{environment}`` is not: in ``{service}-{environment}`` the hyphens
    go to the service (``user-service-prod``), since environments rarely carry them."""
    out = []
    pieces = {"{service}": r"(?P<service>[^/]+)", "{environment}": r"(?P<environment>[^/]+?)", "*": r"[^/]*"}
    for piece in re.split(r"(\{service\}|\{environment\}|\*)", template):
        out.append(pieces.get(piece) or re.escape(piece))
    return re.compile("".join(out) + r"\Z")


def _thresholds(levels: LevelsSection) -> Thresholds:
    base = dict(PRESETS[DEFAULT_PRESET if levels.preset == "custom" else levels.preset])
    for metric, b in levels.custom.given().items():
        base[metric] = Bounds(b.elite, b.high, b.medium)  # type: ignore[attr-defined]
    return base


def _gitops(g: GitOpsSection) -> GitOpsRepo:
    rules = tuple(
        ManifestRule(
            m.path,
            tuple(m.yaml_key.split(".")) if m.yaml_key is not None else None,
            m.regex,
            m.service,
            m.environment,
            path_regex(m.path),
        )
        for m in g.manifests
    )
    return GitOpsRepo(g.repo, g.branch, g.poll_interval, rules, g.max_manifest_bytes)


def default_repo(cfg: ConfigModel) -> str | None:
    """The repository of a service with ``paths:`` and no ``repo:``: the GitOps repository when there is
    exactly one (the monorepo layout: code and manifests in one repository, the paths name the service's
    folder). A service with neither has no repository and no changes (a GitOps repository of manifests
    only must not have its tags read as commits); ``coverage.services_without_changes`` says so at start
    and in ``check-config``."""
    return cfg.gitops[0].repo if len(cfg.gitops) == 1 else None


def _service(s: ServiceSection, default: str | None) -> ServiceConfig:
    return ServiceConfig(
        s.name, s.repo or (default if s.paths else None), s.paths, s.tag_pattern, tuple(s.labels.items())
    )


def _github(cfg: ConfigModel) -> GitHubConfig:
    gh: GitHubSection = cfg.github
    inc, dep = gh.incidents, gh.deployments
    repos, _ = deployment_repos(cfg)
    return GitHubConfig(
        enabled=gh.enabled,
        base_url=gh.base_url,
        poll_interval=gh.poll_interval,
        budget=gh.budget,
        timeout=gh.timeout,
        max_rate_limit_wait=gh.max_rate_limit_wait,
        retries=gh.retries,
        app_installation_id=gh.app_installation_id,
        lead_time_phases=gh.lead_time_phases,
        incidents=GitHubIncidents(
            repos=inc.repos,
            label=inc.label,
            failure_window=inc.failure_window,
            environment=inc.environment,
            services=tuple(IncidentService(m.service, m.label, m.title_pattern) for m in inc.services),
        ),
        deployments=GitHubDeployments(
            enabled=dep.enabled,
            poll_interval=gh.poll_interval if dep.poll_interval is None else dep.poll_interval,
            repos=tuple(DeploymentRepo(repo, service) for repo, service in repos),
            environments=dict(dep.environments),
            match_window=dep.match_window,
            backfill=dep.backfill,
            pending_max_age=dep.pending_max_age,
        ),
    )


def _argocd(section: ArgoCDSection | None) -> ArgoCDConfig:
    # no section: off, with no name templates either (what check-config has always shown)
    a = section or ArgoCDSection(enabled=False, mapping=AppMappingSection(name_templates=()))
    m = a.mapping
    return ArgoCDConfig(
        enabled=a.enabled,
        namespaces=a.namespaces,
        label_selector=a.label_selector,
        kubeconfig=a.kubeconfig,
        context=a.context,
        mapping=AppMapping(
            apps=dict(m.apps),
            service_label=m.labels.service,
            environment_label=m.labels.environment,
            name_templates=tuple(path_regex(t) for t in m.name_templates),
            destination_namespace=path_regex(m.destination_namespace) if m.destination_namespace else None,
        ),
        source_repo=a.source_repo,
        image_pattern=a.image_pattern,
        connect_timeout=a.timeouts.connect,
        read_timeout=a.timeouts.read,
        watch_timeout=a.timeouts.watch,
        backoff=a.backoff,
        name_template_sources=m.name_templates,
    )


def _security(tls: TlsSection | None, users: dict[str, str], base_dir: Path) -> ListenerSecurity:
    return ListenerSecurity(
        tls=None
        if tls is None
        else TlsConfig(
            cert_file=base_dir / tls.cert_file,
            key_file=base_dir / tls.key_file,
            client_ca_file=base_dir / tls.client_ca_file if tls.client_ca_file else None,
            client_auth_type=tls.client_auth_type,
            min_version=tls.min_version,
        ),
        basic_auth_users=tuple(sorted(users.items())),
    )


def to_settings(cfg: ConfigModel, *, secrets: Secrets, base_dir: Path, source_path: Path | None = None) -> Config:
    """The settings of a valid ``cfg`` (one that passed ``checks.cross_checks``)."""
    store_path = base_dir / cfg.store.path
    return Config(
        store_path=store_path,
        data_dir=base_dir / cfg.data_dir if cfg.data_dir else store_path.parent,
        listen=cfg.http.listen,
        webhook_listen=cfg.http.webhook_listen,
        log_level=cfg.log.level,
        log_format=cfg.log.format,
        production_environment=cfg.production_environment,
        windows=tuple(Window(label, seconds) for label, seconds in cfg.windows),
        levels_name=cfg.levels.preset,
        thresholds=_thresholds(cfg.levels),
        failure_window=cfg.failure_window,
        revert_pattern=cfg.revert_pattern,
        rollback_min_age=cfg.rollback_min_age,
        change_start=cfg.change_start,
        gitops=tuple(_gitops(g) for g in cfg.gitops),
        services=tuple(_service(s, default_repo(cfg)) for s in cfg.services),
        names=Names(cfg.names.normalize, dict(cfg.names.services), dict(cfg.names.environments)),
        environments=tuple(dict.fromkeys([*cfg.environments, cfg.production_environment])),
        secrets=secrets,
        argocd=_argocd(cfg.argocd),
        source_path=source_path,
        github=_github(cfg),
        http_security=_security(cfg.http.tls, cfg.http.basic_auth_users, base_dir),
        webhook_security=_security(cfg.http.webhook_tls, cfg.http.webhook_basic_auth_users, base_dir),
    )
