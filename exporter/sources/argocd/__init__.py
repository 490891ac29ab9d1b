# SPDX-License-Identifier: Apache-2.0
"""Argo CD: Applications read from the Kubernetes API (list, watch, relist) and what is read from each."""

from __future__ import annotations

from exporter.sources.argocd.apps import (
    COMPLETED_PHASES,
    FAILED_PHASES,
    App,
    HistoryEntry,
    Operation,
    parse_app,
    parse_time,
)
from exporter.sources.argocd.notifications import Notification, parse_argocd_notification
from exporter.sources.argocd.watch import (
    SOURCE,
    Listener,
    Watcher,
    WatchSettings,
    load_api,
)

__all__ = [
    "COMPLETED_PHASES",
    "FAILED_PHASES",
    "SOURCE",
    "App",
    "HistoryEntry",
    "Listener",
    "Notification",
    "Operation",
    "WatchSettings",
    "Watcher",
    "load_api",
    "parse_app",
    "parse_argocd_notification",
    "parse_time",
]
