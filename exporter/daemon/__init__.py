"""The composition root: wires sources, ingest, store and serve, runs the jobs and supervises them."""

from __future__ import annotations

from exporter.daemon.runtime import STOP_BUDGET_SECONDS, Daemon, github_settings

__all__ = ["STOP_BUDGET_SECONDS", "Daemon", "github_settings"]
