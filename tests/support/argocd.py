# SPDX-License-Identifier: Apache-2.0
"""Shared helpers for the Argo CD tests: an Application derived from our fixture, a daemon in a thread."""

from __future__ import annotations

import copy
import threading
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter import config as exporter_config
from exporter.daemon.runtime import Daemon
from tests.support.kube import free_ports
from tests.support.paths import DATA_DIR
from tests.support.waiting import wait_until

APPLICATION = DATA_DIR / "argocd" / "application.yaml"
SERVER_OWNED = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields", "ownerReferences")
WEBHOOK_TOKEN = "hook-token-for-tests"


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def fixture_app(name: str, namespace: str) -> dict[str, Any]:
    """Our fixture Application (``tests/data/argocd/application.yaml``) under a new name, without server-owned
    metadata."""
    app: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    for key in SERVER_OWNED:
        app["metadata"].pop(key, None)
    app["metadata"]["finalizers"] = []
    app["metadata"]["name"] = name
    app["metadata"]["namespace"] = namespace
    return app


def history_entry(
    app: dict[str, Any], hid: int, started: datetime, finished: datetime, revision: str
) -> dict[str, Any]:
    """A history entry shaped like the fixture's own (same source), with a new id, times and revision."""
    entry = copy.deepcopy(app["status"]["history"][-1])
    entry.update(id=hid, deployStartedAt=iso(started), deployedAt=iso(finished), revision=revision)
    return entry


def operation(
    app: dict[str, Any],
    phase: str,
    started: datetime,
    revision: str,
    finished: datetime | None = None,
    retry_count: int = 0,
    message: str = "",
) -> dict[str, Any]:
    """An ``operationState`` derived from the fixture's; ``Running`` with ``finishedAt`` is a retry."""
    op = copy.deepcopy(app["status"]["operationState"])
    op.update(phase=phase, startedAt=iso(started), message=message or f"{phase.lower()} sync")
    op["operation"]["sync"]["revision"] = revision
    op["syncResult"]["revision"] = revision
    op.pop("finishedAt", None)
    op.pop("retryCount", None)
    if finished is not None:
        op["finishedAt"] = iso(finished)
    if retry_count:
        op["retryCount"] = retry_count
    return op


def write_config(tmp: Path, kubeconfig: Path | str, namespaces: list[str], **argocd: Any) -> Path:
    metrics_port, hook_port = free_ports(2)
    cfg = {
        "store": {"path": str(tmp / "dora.db")},
        "http": {"listen": f"127.0.0.1:{metrics_port}", "webhook_listen": f"127.0.0.1:{hook_port}"},
        "log": {"level": "warning", "format": "json"},
        "argocd": {
            "enabled": True,
            "namespaces": namespaces,
            "kubeconfig": str(kubeconfig),
            "timeouts": {"connect": "2s", "read": "4s", "watch": "2s"},
            "backoff": ["0.05s", "0.1s", "0.2s", "0.5s"],
            **argocd,
        },
    }
    path = tmp / "dora.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


class RunningDaemon:
    """``Daemon.run`` in a thread, stopped the way SIGTERM stops it."""

    def __init__(self, config_path: Path, environ: dict[str, str] | None = None) -> None:
        self.cfg = exporter_config.load(
            config_path, environ={"DORA_ARGOCD_WEBHOOK_TOKEN": WEBHOOK_TOKEN, **(environ or {})}
        )
        self.daemon = Daemon(self.cfg)
        self.thread = threading.Thread(target=self.daemon.run, kwargs={"install_signals": False}, daemon=True)
        self.thread.start()
        self.metrics_url = f"http://127.0.0.1:{self.cfg.listen[1]}/metrics"
        assert self.cfg.webhook_listen is not None
        self.webhook_url = f"http://127.0.0.1:{self.cfg.webhook_listen[1]}/webhooks/argocd"
        wait_until(lambda: urllib.request.urlopen(self.metrics_url, timeout=2).status == 200, 10, message="daemon up")

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:
            text = resp.read().decode()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))

    def stop(self) -> None:
        self.daemon.stop.set()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "the daemon did not stop"
