# SPDX-License-Identifier: Apache-2.0
"""``exporter.core.correlate``: tag to commit, versions, rollback detection and lead time; pure, literal data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from exporter.core.correlate import (
    RollbackKind,
    Transition,
    is_lower_version,
    lead_seconds,
    rollback_kind,
    tag_commit_candidate,
    version_key,
)
from exporter.settings import DEFAULT_TAG_PATTERN

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
SHA40 = "0123456789abcdef0123456789abcdef01234567"
SHA7 = "9fceb02"
SEMVER_SHA8 = r"(?P<sha>[0-9a-f]{8})$"
RELEASE = r"^release-(?P<sha>[0-9a-f]{7,40})$"


@pytest.mark.parametrize(
    ("tag", "pattern", "expected"),
    [
        pytest.param(SHA7, DEFAULT_TAG_PATTERN, SHA7, id="sha7"),
        pytest.param(SHA40, DEFAULT_TAG_PATTERN, SHA40, id="sha40"),
        pytest.param(f"release-{SHA40}", RELEASE, SHA40, id="release-sha40"),
        pytest.param(f"release-{SHA7}", RELEASE, SHA7, id="release-sha7"),
        pytest.param(f"release-{SHA7}", DEFAULT_TAG_PATTERN, SHA7, id="release-sha-default-pattern"),
        pytest.param("1.4.2-deadbeef", SEMVER_SHA8, "deadbeef", id="semver-sha8"),
        pytest.param("10.0.0-rc.1-0badcafe", SEMVER_SHA8, "0badcafe", id="semver-prerelease-sha8"),
        pytest.param("1.4.2-deadbee", SEMVER_SHA8, None, id="semver-sha7-does-not-fit-sha8"),
        pytest.param("1.4.2", SEMVER_SHA8, None, id="semver-without-sha"),
        pytest.param("v123", "refs/tags/{tag}", "refs/tags/v123", id="ref-template-v123"),
        pytest.param("1.4.2", "refs/tags/{tag}", "refs/tags/1.4.2", id="ref-template-semver"),
        pytest.param("latest", DEFAULT_TAG_PATTERN, None, id="latest-no-sha"),
        pytest.param("v123", DEFAULT_TAG_PATTERN, None, id="v123-no-sha"),
        pytest.param("release-xyz", RELEASE, None, id="release-not-hex"),
    ],
)
def test_tag_commit_candidate(tag: str, pattern: str, expected: str | None) -> None:
    assert tag_commit_candidate(tag, pattern) == expected


@pytest.mark.parametrize(
    ("version", "key"),
    [
        ("v9", (9,)),
        ("v10", (10,)),
        ("v123", (123,)),
        ("9", (9,)),
        ("1.10.0", (1, 10, 0)),
        ("1.9.3", (1, 9, 3)),
        ("v2.0", (2, 0)),
        ("1.4.2-deadbeef", (1, 4, 2)),
        ("1.4.2+build.7", (1, 4, 2)),
        ("123456", (123456,)),  # six digits still reads as a build number
        ("1234567", None),  # a short SHA that happens to be all digits is not a version
        ("1234567890", None),
        ("v1234567", None),
        (SHA7, None),
        (SHA40, None),
        ("latest", None),
        ("release-9fceb02", None),
        ("", None),
    ],
)
def test_version_key(version: str, key: tuple[int, ...] | None) -> None:
    assert version_key(version) == key


@pytest.mark.parametrize(
    ("new", "old", "lower"),
    [
        ("v9", "v10", True),  # numeric, not lexicographic
        ("v10", "v9", False),
        ("1.9.3", "1.10.0", True),
        ("1.10.0", "1.9.3", False),
        ("1.4.2-aaaaaaaa", "1.4.3-bbbbbbbb", True),
        ("1.4.3-aaaaaaaa", "1.4.3-bbbbbbbb", False),  # same core: not lower
        ("v10", "v10", False),
        ("1234567", "1234568", False),  # SHA-like numbers are not versions
        (SHA7, "v10", False),
        ("v10", SHA7, False),
        ("latest", "v1", False),
        ("1.2", "1.2.0", False),  # missing parts are zeros: equal, not lower
        ("1.2.0", "1.2", False),
        ("1.2", "1.2.1", True),
    ],
)
def test_is_lower_version(new: str, old: str, lower: bool) -> None:
    assert is_lower_version(new, old) is lower


REVERT = re.compile(r"(?i)^(revert|roll ?back)")
MIN_AGE = 300.0


@pytest.mark.parametrize(
    ("previous", "version", "age_seconds", "message", "ancestor", "kind"),
    [
        pytest.param(
            SHA40, SHA7, 10, 'Revert "Promote to production"', False, RollbackKind.REVERT_MESSAGE, id="revert"
        ),
        pytest.param(
            SHA40, SHA7, 0, "Rollback user-service to 9fceb02", False, RollbackKind.REVERT_MESSAGE, id="rollback"
        ),
        pytest.param(SHA40, SHA7, 10, "roll back api", False, RollbackKind.REVERT_MESSAGE, id="roll-back-lowercase"),
        pytest.param(SHA40, SHA7, 3600, "Pin api to 9fceb02", True, RollbackKind.ANCESTOR, id="ancestor-old"),
        pytest.param(
            SHA40, SHA7, 300, "Pin api to 9fceb02", True, RollbackKind.ANCESTOR, id="ancestor-exactly-min-age"
        ),
        pytest.param(SHA40, SHA7, 299, "Pin api to 9fceb02", True, None, id="ancestor-too-young"),
        pytest.param("v10", "v9", 3600, "Deploy v9", False, RollbackKind.LOWER_VERSION, id="lower-version"),
        pytest.param("1.10.0", "1.9.3", 3600, "Deploy 1.9.3", False, RollbackKind.LOWER_VERSION, id="lower-semver"),
        pytest.param("v10", "v9", 60, "Deploy v9", False, None, id="lower-version-too-young"),
        pytest.param("v9", "v10", 3600, "Deploy v10", False, None, id="higher-version"),
        pytest.param(SHA40, SHA7, 3600, "Promote to production: 9fceb02", False, None, id="none"),
        pytest.param(SHA40, SHA7, 3600, "Promote, revert later if needed", False, None, id="revert-not-at-start"),
    ],
)
def test_rollback_kind(
    previous: str, version: str, age_seconds: int, message: str, ancestor: bool, kind: RollbackKind | None
) -> None:
    t = Transition(
        previous_version=previous,
        previous_deployed_at=NOW - timedelta(seconds=age_seconds),
        version=version,
        deployed_at=NOW,
        message=message,
        is_ancestor_of_previous=ancestor,
    )
    assert rollback_kind(t, REVERT, MIN_AGE) is kind


def test_revert_message_wins_over_ancestry() -> None:
    t = Transition("v10", NOW - timedelta(hours=2), "v9", NOW, "Revert v10", True)
    assert rollback_kind(t, REVERT, MIN_AGE) is RollbackKind.REVERT_MESSAGE


@pytest.mark.parametrize(
    ("author", "commit", "change_start", "expected"),
    [
        pytest.param(NOW - timedelta(hours=4), NOW - timedelta(hours=2), "commit_time", 7200.0, id="commit-time"),
        pytest.param(NOW - timedelta(hours=4), NOW - timedelta(hours=2), "author_time", 14400.0, id="author-time"),
        pytest.param(NOW, NOW - timedelta(seconds=1), "commit_time", 1.0, id="one-second"),
        pytest.param(NOW, NOW, "commit_time", 0.0, id="same-second"),
        pytest.param(NOW - timedelta(days=1), NOW + timedelta(minutes=5), "commit_time", 0.0, id="commit-skew-clamped"),
        pytest.param(NOW + timedelta(minutes=5), NOW - timedelta(days=1), "author_time", 0.0, id="author-skew-clamped"),
    ],
)
def test_lead_seconds(author: datetime, commit: datetime, change_start: str, expected: float) -> None:
    assert lead_seconds(NOW, author, commit, change_start) == expected
