# SPDX-License-Identifier: Apache-2.0
"""Pure correlation rules: tag to commit, rollback detection, change attribution. No I/O.

The rollback rule (DESIGN §2, documented in docs/semantics.md): deployment N is a rollback of
deployment N-1 of the same (service, environment) when

1. its manifest commit message matches ``revert_pattern`` (an explicit human act: always), or
2. its source commit is a strict ancestor of N-1's commit, or its version is lower (``vN`` or
   semver core), **and** N-1 had been live for at least ``rollback_min_age``.

The age guard is what keeps out-of-order merges from counting: two bump PRs merged seconds apart
in the "wrong" order make the value go back and forth, but the older value was never really
served (Argo CD polls Git every 3 minutes by default), so nothing failed. A rollback marks N-1
failed (reason ``rollback``) from its deployment time until N's, and N is rework.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-+].*)?$")


def tag_commit_candidate(tag: str, tag_pattern: str) -> str | None:
    """What to look up for ``tag``: a SHA (from the ``sha`` group) or a ref (from a ``{tag}`` template)."""
    if "{tag}" in tag_pattern:
        return tag_pattern.replace("{tag}", tag)
    m = re.search(tag_pattern, tag)
    return m.group("sha") if m else None


def version_key(version: str) -> tuple[int, ...] | None:
    """Numeric core of ``v12`` / ``1.4.2`` / ``1.4.2-abcdef12``; ``None`` for anything else (SHAs)."""
    m = _VERSION.match(version)
    if m is None:
        return None
    core = m.group(1)
    if "." not in core and len(core) >= 7:  # a purely numeric short SHA is not a version
        return None
    return tuple(int(p) for p in core.split("."))


def is_lower_version(new: str, old: str) -> bool:
    """Compare numeric cores padded to equal length, so ``1.2`` equals ``1.2.0`` (it is not lower)."""
    a, b = version_key(new), version_key(old)
    if a is None or b is None:
        return False
    width = max(len(a), len(b))
    return a + (0,) * (width - len(a)) < b + (0,) * (width - len(b))


class RollbackKind(StrEnum):
    REVERT_MESSAGE = "revert_message"
    ANCESTOR = "ancestor"
    LOWER_VERSION = "lower_version"


@dataclass(frozen=True, slots=True)
class Transition:
    """Deployment N-1 to N of one pair, with what git could tell about their commits."""

    previous_version: str
    previous_deployed_at: datetime
    version: str
    deployed_at: datetime
    message: str
    is_ancestor_of_previous: bool


def rollback_kind(t: Transition, revert_pattern: re.Pattern[str], min_age_seconds: float) -> RollbackKind | None:
    """Apply the rollback rule of the module docstring to one transition."""
    if revert_pattern.search(t.message):
        return RollbackKind.REVERT_MESSAGE
    if (t.deployed_at - t.previous_deployed_at).total_seconds() < min_age_seconds:
        return None
    if t.is_ancestor_of_previous:
        return RollbackKind.ANCESTOR
    if is_lower_version(t.version, t.previous_version):
        return RollbackKind.LOWER_VERSION
    return None


def lead_seconds(deployed_at: datetime, author_time: datetime, commit_time: datetime, change_start: str) -> float:
    """Deployment time minus change start; never negative (clock skew on a laptop is not speed)."""
    start = author_time if change_start == "author_time" else commit_time
    return max(0.0, (deployed_at - start).total_seconds())


def image_version(images: Iterable[str], service: str, pattern: re.Pattern[str] | None) -> str | None:
    """The tag of ``service``'s image among ``images``.

    With ``pattern`` (groups ``tag`` and optionally ``service``) an image belongs to the service when
    its ``service`` group equals it (or, without that group, when the pattern matches at all). Without
    a pattern the image's last path segment must equal the service name. ``None`` when nothing fits
    or when two different tags fit (a rollout in progress is not one version)."""
    found: list[str] = []
    for image in images:
        if pattern is not None:
            m = pattern.search(image)
            if m is None or ("service" in m.groupdict() and m.group("service") != service):
                continue
            tag = m.group("tag")
        else:
            name, sep, tag = image.rpartition(":")
            if not sep or "/" in tag or name.rsplit("/", 1)[-1] != service:
                continue
        if tag and tag not in found:
            found.append(tag)
    return found[0] if len(found) == 1 else None


def within(start: datetime, at: datetime, window_seconds: float) -> bool:
    """``at`` falls in ``[start, start + window]``: a degradation this soon is blamed on the deployment."""
    return 0 <= (at - start).total_seconds() <= window_seconds
