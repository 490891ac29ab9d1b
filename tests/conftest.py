"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fakegithub import FakeGitHub


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    """The fake GitHub API on a free loopback port."""
    server = FakeGitHub()
    server.start()
    try:
        yield server
    finally:
        server.stop()
