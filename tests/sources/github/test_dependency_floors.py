# SPDX-License-Identifier: Apache-2.0
"""The runtime dependencies' floors: what the lowest-versions CI step installs is what pyproject allows."""

from __future__ import annotations

import re
import tomllib

from tests.support.paths import PROJECT_ROOT


def _floors() -> dict[str, str]:
    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    out = {}
    for dep in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,.*)?", dep)
        assert m, f"{dep}: every runtime dependency needs a >= floor"
        out[m.group(1).lower()] = m.group(2)
    return out


def _pins() -> dict[str, str]:
    lines = (PROJECT_ROOT / ".ci" / "lowest.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip().lower(): version.strip() for name, version in pairs}


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_the_lowest_versions_step_pins_every_runtime_dependency_to_its_floor() -> None:
    floors, pins = _floors(), _pins()
    assert pins.keys() == floors.keys()
    assert {n: _version(v) for n, v in pins.items()} == {n: _version(v) for n, v in floors.items()}


def test_pygithub_floor_has_what_the_client_imports() -> None:
    # RateLimitExceededExceedsMaxWait and GithubRetry(max_rate_limit_wait=) first shipped in PyGithub 2.10.0
    assert _version(_floors()["pygithub"]) >= (2, 10, 0)
