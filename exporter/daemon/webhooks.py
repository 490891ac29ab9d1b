# SPDX-License-Identifier: Apache-2.0
"""What a verified webhook sets going: a GitHub event runs the job that would see it now; an Argo CD
notification is recorded once as a hint (the watch stays the truth)."""

from __future__ import annotations

from typing import Any

import structlog

from exporter.daemon.jobs import GITHUB_DEPLOYMENTS, GITHUB_INCIDENTS, Jobs, gitops_job
from exporter.errors import StoreError
from exporter.serve import Health
from exporter.serve.webhooks import parse_argocd_notification
from exporter.store import Store

__all__ = ["ArgoNotifications", "GitHubEvents"]

log = structlog.get_logger(__name__)


class GitHubEvents:
    """The GitHub webhook's handler: an event runs the poll that would see it now instead of at its
    next interval."""

    def __init__(self, *, jobs: Jobs, gitops_repos: int) -> None:
        self.jobs = jobs
        self.gitops = [gitops_job(i) for i in range(gitops_repos)]

    def jobs_for(self, event: str, payload: dict[str, Any]) -> list[str]:
        if event == "issues":
            return [GITHUB_INCIDENTS]
        if event == "deployment_status":
            return [GITHUB_DEPLOYMENTS]
        if event == "push" or (event == "pull_request" and payload.get("action") == "closed"):
            return list(self.gitops)
        return []

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        log.info("webhook.github.event", github_event=event, action=payload.get("action"))
        for job_id in self.jobs_for(event, payload):
            self.jobs.run_now(job_id)


class ArgoNotifications:
    """``POST /webhooks/argocd`` after authentication: an Argo CD notification, recorded once."""

    def __init__(self, *, store: Store, health: Health) -> None:
        self.store = store
        self.health = health

    def __call__(self, body: bytes) -> tuple[int, str]:
        try:
            note = parse_argocd_notification(body)
        except ValueError as exc:
            self.health.count("webhook_events", "argocd:malformed")
            return 400, f"bad notification: {exc}"
        try:
            with self.store.transaction() as tx:
                new = tx.add_webhook_event("argocd", note.key, note.raw)
        except StoreError as exc:
            log.error("webhook.store_failed", error=str(exc))
            return 503, "store unavailable"
        outcome = "recorded" if new else "duplicate"
        if new and note.started_at:
            from exporter.sources.argocd import parse_time

            started = parse_time(note.started_at)
            if started is not None and self.store.argocd_operation_known(note.uid, started.timestamp()):
                outcome = "known"  # the watch saw this operation first: the hint adds nothing
        self.health.count("webhook_events", f"argocd:{outcome}")
        log.info("webhook.argocd", outcome=outcome, app=note.app, trigger=note.trigger)
        return 202, outcome
