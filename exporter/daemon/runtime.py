# SPDX-License-Identifier: Apache-2.0
"""``Daemon``: one handle on the parts of a daemon (wiring, passes, publisher, watches, lifecycle).

The CLI's ``run`` and ``ingest`` and the tests drive a daemon through it; the work is done by the
parts it delegates to.
"""

from __future__ import annotations

from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from exporter.core import snapshot
from exporter.daemon import wiring
from exporter.daemon.argocd_watch import ArgoWatches
from exporter.daemon.lifecycle import STOP_BUDGET_SECONDS, Lifecycle
from exporter.daemon.passes import Passes
from exporter.daemon.publisher import known_pairs
from exporter.daemon.wiring import github_settings
from exporter.ingest.gitops import GitOpsIngester, IngestResult
from exporter.model import PairKey
from exporter.settings import Config

if TYPE_CHECKING:
    import threading

    from exporter.ingest.github_changes import ResolveResult
    from exporter.ingest.github_deployments import DeploymentsResult
    from exporter.ingest.github_incidents import IncidentResult

__all__ = ["STOP_BUDGET_SECONDS", "Daemon", "github_settings"]


class Daemon:
    """The parts built from one config; the collaborators are exposed as attributes for the tests."""

    def __init__(self, cfg: Config) -> None:
        c = self.components = wiring.build(cfg)
        self.cfg = cfg
        self.stop = c.stop
        self.store = c.store
        self.health = c.health
        self.holder = c.holder
        self.registry = c.registry
        self.exposition = c.exposition
        self.ingesters = c.ingesters
        self.argo = c.argo
        self.http = c.http
        self.publisher = c.publisher
        self.passes = Passes(c)
        self.watches = ArgoWatches(c)
        self.lifecycle = Lifecycle(c, self.passes, self.watches)

    # -- work ----------------------------------------------------------------------------------

    def known_pairs(self) -> list[PairKey]:
        return known_pairs(self.cfg)

    def recompute(self, now: datetime | None = None) -> snapshot.Snapshot:
        return self.publisher.recompute(now)

    def set_live_state(
        self, service: str, environment: str, *, sync_failing: bool | None = None, degraded: bool | None = None
    ) -> snapshot.Snapshot:
        return self.publisher.set_live_state(service, environment, sync_failing=sync_failing, degraded=degraded)

    def argocd_observed(self, outcome_changed: bool) -> None:
        self.publisher.argocd_observed(outcome_changed)

    def poll_gitops(self, ing: GitOpsIngester, progress: bool = False, recompute: bool = True) -> IngestResult | None:
        return self.passes.poll_gitops(ing, progress, recompute)

    def resolve_github_changes(self) -> ResolveResult | None:
        return self.passes.resolve_github_changes()

    def poll_github_incidents(self) -> IncidentResult | None:
        return self.passes.poll_github_incidents()

    def poll_github_deployments(self) -> DeploymentsResult | None:
        return self.passes.poll_github_deployments()

    def on_github_event(self, event: str, payload: dict[str, Any]) -> None:
        self.components.github_events(event, payload)

    def webhook_argocd(self, body: bytes) -> tuple[int, str]:
        assert self.components.argocd_notifications is not None  # served only with Argo CD configured
        return self.components.argocd_notifications(body)

    def ingest_once(self, progress: bool = False) -> list[IngestResult | None]:
        """Every pass once, to the end of what there is to read, then one snapshot (not one per
        repository and another after the GitHub passes)."""
        results = [self.poll_gitops(ing, progress, recompute=False) for ing in self.ingesters]
        while (deployed := self.poll_github_deployments()) is not None and deployed.stopped and deployed.read:
            pass  # a one-shot ingest reads every deployment: each stopped pass resumes where it stopped
        resolver = self.components.github.resolver
        while resolver is not None and resolver.pending():
            resolved = self.resolve_github_changes()  # a one-shot ingest reads every queued deployment
            if resolved is None or not (resolved.deployments or resolved.unresolved or resolved.stopped):
                break  # a fault (logged and counted), or nothing left that can be read
        self.poll_github_incidents()
        self.recompute()
        return results

    def explain(self, service: str | None, environment: str | None) -> list[dict[str, Any]]:
        return self.components.explain(service, environment)

    # -- lifecycle -----------------------------------------------------------------------------

    def start_argocd(self) -> list[threading.Thread]:
        return self.watches.start()

    def run(self, install_signals: bool = True) -> int:
        return self.lifecycle.run(install_signals)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.lifecycle.on_signal(signum, frame)

    def close(self) -> None:
        self.lifecycle.close()
