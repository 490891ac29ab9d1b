# SPDX-License-Identifier: Apache-2.0
"""Exposition: the Prometheus collectors, the HTTP endpoints, the landing page, the API and webhooks."""

from __future__ import annotations

from exporter.serve.collector import DoraCollector
from exporter.serve.explain import explain, explain_page
from exporter.serve.exposition import Exposition, SnapshotHolder
from exporter.serve.health import Health
from exporter.serve.http import HttpApp
from exporter.serve.limits import Limits
from exporter.serve.selfmetrics import SelfMetrics
from exporter.serve.webhooks import WEBHOOK_MAX_BODY, GitHubWebhook

__all__ = [
    "WEBHOOK_MAX_BODY",
    "DoraCollector",
    "Exposition",
    "GitHubWebhook",
    "Health",
    "HttpApp",
    "Limits",
    "SelfMetrics",
    "SnapshotHolder",
    "explain",
    "explain_page",
]
