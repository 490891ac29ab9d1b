# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the GitHub tests: the fake API as a fixture and a client pointed at it."""

from __future__ import annotations

from exporter.sources.github.client import Cache, Client, Settings
from tests.support.fakegithub import TOKEN, FakeGitHub


def client_for(fake: FakeGitHub, cache: Cache | None = None, **kw: object) -> Client:
    """A client with test-sized timeouts and no backoff between retries (faults are scripted)."""
    settings = Settings(
        base_url=fake.base_url,
        token=TOKEN,
        **{"timeout": 1.0, "retries": 3, "backoff_factor": 0.0, "max_rate_limit_wait": 5.0, **kw},  # type: ignore[arg-type]
    )
    return Client(settings, cache)
