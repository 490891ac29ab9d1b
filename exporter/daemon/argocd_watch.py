# SPDX-License-Identifier: Apache-2.0
"""The Argo CD watch threads: one supervised watch per namespace, whose reports feed the ingester,
the source's health and self-metrics, and the published snapshot."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from exporter.daemon.supervision import Exits, Task, supervise
from exporter.daemon.wiring import Components
from exporter.errors import SourceError
from exporter.ingest.argocd import ArgoIngester

if TYPE_CHECKING:
    from exporter.sources import argocd as argocd_source

__all__ = ["ArgoListener", "ArgoWatches"]

log = structlog.get_logger(__name__)

_EXITS = Exits(
    stopped="argocd.watch_stopped",
    exited="argocd.watch_exited_unexpectedly",
    cancelled="argocd.watch_cancelled",
)


class ArgoWatches:
    """Starts the watch threads; the lifecycle joins them within the stop budget."""

    def __init__(self, components: Components) -> None:
        self.c = components
        self.threads: list[threading.Thread] = []

    def start(self) -> list[threading.Thread]:
        """One supervised watch thread per namespace (or one for all namespaces)."""
        if self.c.argo is None:
            return []
        scopes: tuple[str | None, ...] = tuple(self.c.cfg.argocd.namespaces) or (None,)
        for ns in scopes:
            name = f"argocd-watch-{ns or '*'}"
            t = threading.Thread(target=self._supervise, args=(name, ns), name=name, daemon=True)
            t.start()
            self.threads.append(t)
        return self.threads

    def _supervise(self, name: str, namespace: str | None) -> None:
        """Run one watch until stop; a crash is logged, counted and restarted after a backoff step."""
        settings, argo = self.c.argo_settings, self.c.argo
        assert settings is not None and argo is not None  # watches run only with the Argo CD source configured
        task = Task(
            source="argocd",
            part=namespace or "*",
            failed="argocd.watch_failed",
            crashed="argocd.watch_crashed",
            context={"thread": name},
        )
        listener = ArgoListener(self.c, argo)

        def watch() -> None:
            from exporter.sources import argocd as argocd_source

            api = argocd_source.load_api(self.c.cfg.argocd.kubeconfig, self.c.cfg.argocd.context)
            try:
                argocd_source.Watcher(api, settings, namespace, listener).run(self.c.stop)
            finally:
                api.close()  # type: ignore[no-untyped-call]

        supervise(watch, task=task, exits=_EXITS, health=self.c.health, stop=self.c.stop, delay=settings.delay)


class ArgoListener:
    """Feeds one watch's reports to the ingester, health and self-metrics, then republishes."""

    def __init__(self, components: Components, argo: ArgoIngester) -> None:
        self.health = components.health
        self.publisher = components.publisher
        self.argo = argo

    def _done(self, changed: bool, n: int) -> None:
        self.health.count("events_processed", "argocd", n)
        self.publisher.argocd_observed(changed)

    def listed(self, scope: str, apps: Sequence[argocd_source.App]) -> None:
        started = time.monotonic()
        out = self.argo.listed(apps, namespace=None if scope == "*" else scope)
        if out.gaps:
            self.health.count("history_gaps", "argocd", out.gaps)
        self.health.success("argocd", scope, time.monotonic() - started)
        log.info("argocd.list_applied", scope=scope, apps=len(apps), deployments=out.deployments)
        self._done(out.changed, len(apps))

    def changed(self, scope: str, app: argocd_source.App) -> None:
        out = self.argo.apply(app)
        if out.gaps:
            self.health.count("history_gaps", "argocd", out.gaps)
        self._done(out.changed, 1)

    def deleted(self, scope: str, app: argocd_source.App) -> None:
        self._done(self.argo.deleted(app), 1)

    def healthy(self, scope: str) -> None:
        self.health.success("argocd", scope, 0.0)

    def failed(self, scope: str, error: SourceError) -> None:
        self.health.failure("argocd", scope, error.kind, str(error))
        log.error("argocd.watch_error", scope=scope, kind=error.kind, error=str(error))

    def reconnecting(self, scope: str, reason: str) -> None:
        self.health.count("watch_reconnects", "argocd")
        log.warning("argocd.watch_reconnect", scope=scope, reason=reason)

    def relisting(self, scope: str, reason: str) -> None:
        self.health.count("watch_relists", "argocd")
        log.warning("argocd.watch_relist", scope=scope, reason=reason)
