# SPDX-License-Identifier: Apache-2.0
"""Both listeners of a real ``HttpApp`` on loopback, with a GitHub webhook and a bearer-token route."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter.core import snapshot
from exporter.serve import GitHubWebhook, Health, HttpApp
from exporter.serve.api import Page

SECRET = "webhook secret"
TOKEN = "argocd token"


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Served:
    """A running app: its main and webhook addresses and what reached the handlers."""

    app: HttpApp
    main: tuple[str, int]
    webhooks: tuple[str, int]
    github_events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    argocd_bodies: list[bytes] = field(default_factory=list)


ServeFactory = Callable[..., Served]


@pytest.fixture
def serve_app() -> Iterator[ServeFactory]:
    """Start an app with ``HttpApp``'s keyword arguments (for example ``limits``); stopped after the test."""
    started: list[tuple[HttpApp, GitHubWebhook]] = []

    def start(**kwargs: Any) -> Served:
        app = HttpApp(
            CollectorRegistry(),
            Health({}),
            lambda: snapshot.Snapshot(datetime.now(UTC)),
            lambda request: Page([], None),
            "prod",
            "30d",
            **kwargs,
        )
        served = Served(app, ("", 0), ("", 0))
        hook = GitHubWebhook(SECRET, lambda e, p: served.github_events.append((e, p)))
        hook.start()
        started.append((app, hook))
        app.post_routes["/webhooks/github"] = hook.handle

        def argocd(body: bytes) -> tuple[int, str]:
            served.argocd_bodies.append(body)
            return 202, "recorded"

        app.add_webhook("/webhooks/argocd", TOKEN, argocd)
        served.main = app.serve("127.0.0.1", 0)
        served.webhooks = app.serve_webhooks("127.0.0.1", 0)
        return served

    yield start
    for app, hook in started:
        app.shutdown()
        hook.stop()


@pytest.fixture
def served(serve_app: ServeFactory) -> Served:
    """An app with the default limits."""
    return serve_app()
