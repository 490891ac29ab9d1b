# SPDX-License-Identifier: Apache-2.0
"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator

import freezegun
import pytest

from tests.support.fakegithub import FakeGitHub

# freeze_time walks every loaded module for clock references; the kubernetes client's lazy
# attributes import its models mid-walk, with the clock already faked, and the walk fails
freezegun.configure(extend_ignore_list=["kubernetes"])


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    """The fake GitHub API on a free loopback port."""
    server = FakeGitHub()
    server.start()
    try:
        yield server
    finally:
        server.stop()
