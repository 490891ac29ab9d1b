# SPDX-License-Identifier: Apache-2.0
"""The composition root: every collaborator of a daemon, built from a ``Config`` in one place.

The optional ones exist only when their source is configured, and their client libraries are
imported only then: each client costs about 45 MB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter.config.coverage import services_without_changes
from exporter.core import snapshot
from exporter.daemon.jobs import Jobs
from exporter.daemon.publisher import Publisher
from exporter.daemon.storefile import open_store
from exporter.daemon.webhooks import ArgoNotifications, GitHubEvents
from exporter.ingest.argocd import ArgoIngester
from exporter.ingest.gitops import GitOpsIngester
from exporter.ingest.repos import Repos
from exporter.serve import DoraCollector, Exposition, GitHubWebhook, Health, HttpApp, SnapshotHolder, explain
from exporter.serve.explain import explain_page
from exporter.settings import GITHUB_REPO_PREFIX, Config
from exporter.store import Store

if TYPE_CHECKING:
    from exporter.ingest.github_changes import ChangeResolver
    from exporter.ingest.github_deployments import DeploymentIngester
    from exporter.ingest.github_incidents import IncidentIngester
    from exporter.sources import argocd as argocd_source
    from exporter.sources.github.client import Client, Settings

__all__ = ["Components", "GitHubParts", "build", "github_settings"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class GitHubParts:
    """The GitHub source's collaborators; each is None when its part is not configured."""

    client: Client | None = None
    resolver: ChangeResolver | None = None
    incidents: IncidentIngester | None = None
    deployments: DeploymentIngester | None = None


@dataclass(frozen=True, kw_only=True)
class Components:
    """Everything a daemon runs, built once; ``stop`` is the one event every part watches."""

    cfg: Config
    stop: threading.Event
    store: Store
    repos: Repos
    ingesters: list[GitOpsIngester]
    github: GitHubParts
    argo: ArgoIngester | None
    argo_settings: argocd_source.WatchSettings | None
    health: Health
    holder: SnapshotHolder
    registry: CollectorRegistry
    exposition: Exposition
    publisher: Publisher
    jobs: Jobs
    http: HttpApp
    github_events: GitHubEvents
    github_webhook: GitHubWebhook | None
    argocd_notifications: ArgoNotifications | None

    def explain(self, service: str | None, environment: str | None) -> list[dict[str, Any]]:
        return explain(self.store, self.cfg.change_start, service, environment)


def build(cfg: Config) -> Components:
    """Open the store and build every collaborator; starts nothing (``Lifecycle.run`` does)."""
    store = open_store(cfg.store_path, exclusive=True)  # one daemon per store
    github = _github(cfg, store)
    health = _health(cfg, github)  # needs the client and the incident ingester only
    health.store_open = True
    _warn_without_changes(cfg, health)
    repos = Repos(cfg, github.client, notice=health.service_without_changes)
    github = _github_ingesters(cfg, store, repos, github)
    holder = SnapshotHolder(snapshot.Snapshot(datetime.now(UTC)))
    registry, exposition = _exposition(cfg, holder, health)
    ingesters = [GitOpsIngester(cfg, g, store, repos) for g in cfg.gitops]
    jobs = Jobs()
    github_events = GitHubEvents(jobs=jobs, gitops_repos=len(ingesters))
    webhook = None
    if cfg.github.enabled and cfg.secrets.github_webhook_secret:
        webhook = GitHubWebhook(cfg.secrets.github_webhook_secret, github_events)
    argo = ArgoIngester(cfg, store, repos) if cfg.argocd.enabled else None
    publisher = Publisher(cfg=cfg, store=store, holder=holder)
    publisher.load_argocd_live()
    if argo is not None:
        health.count("history_gaps", "argocd", store.argocd_counts()["history_gaps"])
    return Components(
        cfg=cfg,
        stop=threading.Event(),
        store=store,
        repos=repos,
        ingesters=ingesters,
        github=github,
        argo=argo,
        argo_settings=_argo_settings(cfg),
        health=health,
        holder=holder,
        registry=registry,
        exposition=exposition,
        publisher=publisher,
        jobs=jobs,
        http=HttpApp(
            registry,
            health,
            holder.get,
            lambda request: explain_page(store, cfg.change_start, request),
            cfg.production_environment,
            cfg.windows[min(2, len(cfg.windows) - 1)].label,  # the landing page's window
            exposition,
            render_gzip=exposition.gzipped,
        ),
        github_events=github_events,
        github_webhook=webhook,
        argocd_notifications=ArgoNotifications(store=store, health=health) if argo is not None else None,
    )


def _warn_without_changes(cfg: Config, health: Health) -> None:
    """Services with no repository to read changes from, said at start (the Git check of their paths
    follows when ``Repos`` first opens their repository)."""
    for service, why in services_without_changes(cfg):
        log.warning("config.service_without_changes", service=service, reason=why)
        health.service_without_changes(service, why)


def _exposition(cfg: Config, holder: SnapshotHolder, health: Health) -> tuple[CollectorRegistry, Exposition]:
    """A registry of its own (not the global one): the DORA families, the process's, the platform's."""
    registry = CollectorRegistry()
    collector = DoraCollector(holder, health, static_labels=cfg.static_labels)
    registry.register(collector)
    exposition = Exposition(registry, collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, exposition


def _github(cfg: Config, store: Store) -> GitHubParts:
    """The GitHub client and the incident ingester, which needs no repositories."""
    if not cfg.github.enabled:
        return GitHubParts()
    from exporter.ingest.github_cache import StoreCache
    from exporter.ingest.github_incidents import IncidentIngester
    from exporter.sources.github.client import Client

    client = Client(github_settings(cfg), StoreCache(store))
    incidents = IncidentIngester(cfg, store, client) if cfg.github.incidents.repos else None
    return GitHubParts(client=client, incidents=incidents)


def _github_ingesters(cfg: Config, store: Store, repos: Repos, parts: GitHubParts) -> GitHubParts:
    """The ingesters that read service repositories (through ``repos``) via GitHub."""
    if parts.client is None:
        return parts
    resolver = deployments = None
    if _github_service_repos(cfg):
        from exporter.ingest.github_changes import ChangeResolver

        resolver = ChangeResolver(cfg, store, repos)
    if cfg.github.deployments.enabled:
        from exporter.ingest.github_deployments import DeploymentIngester

        deployments = DeploymentIngester(cfg, store, parts.client, repos)
    return GitHubParts(client=parts.client, resolver=resolver, incidents=parts.incidents, deployments=deployments)


def _github_service_repos(cfg: Config) -> bool:
    return any(s.repo and s.repo.startswith(GITHUB_REPO_PREFIX) for s in cfg.services)


def _health(cfg: Config, github: GitHubParts) -> Health:
    """The parts each configured source reports on; readiness waits for each to be attempted once.

    A source that is not configured is not registered: it has no ``dora_exporter_source_up`` series
    at all (an unconfigured source at 0 would fire DoraSourceDown after every start)."""
    parts: dict[str, list[str]] = {}
    if cfg.gitops:
        parts["gitops"] = [g.key for g in cfg.gitops]
    if github.client is not None:
        github_parts = [
            *(["changes"] if _github_service_repos(cfg) else []),
            *(["incidents"] if github.incidents else []),
            *(["deployments"] if cfg.github.deployments.enabled else []),
        ]
        if github_parts:
            parts["github"] = github_parts
    if cfg.argocd.enabled:
        parts["argocd"] = [ns or "*" for ns in (cfg.argocd.namespaces or ("",))]
    return Health(parts)


def _argo_settings(cfg: Config) -> argocd_source.WatchSettings | None:
    if not cfg.argocd.enabled:
        return None
    from exporter.sources import argocd as argocd_source

    return argocd_source.WatchSettings(
        namespaces=cfg.argocd.namespaces,
        label_selector=cfg.argocd.label_selector,
        connect_timeout=cfg.argocd.connect_timeout,
        read_timeout=cfg.argocd.read_timeout,
        watch_timeout=cfg.argocd.watch_timeout,
        backoff=cfg.argocd.backoff,
    )


def github_settings(cfg: Config) -> Settings:
    """Client settings from the ``github:`` section and the secrets. A rate-limit wait never
    exceeds a job's budget: a job returns within its budget and the next run resumes."""
    g, sec = cfg.github, cfg.secrets
    from exporter.sources.github.client import Settings

    return Settings(
        base_url=g.base_url,
        token=sec.github_token,
        app_id=sec.github_app_id,
        app_private_key=sec.github_app_private_key,
        app_installation_id=g.app_installation_id,
        timeout=g.timeout,
        max_rate_limit_wait=min(g.max_rate_limit_wait, g.budget),
        retries=g.retries,
    )
