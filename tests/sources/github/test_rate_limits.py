# SPDX-License-Identifier: Apache-2.0
"""Rate limits against the job's budget: GitHub's waits are honoured, never past the budget, and an
error keeps its kind whatever the count of retries."""

from __future__ import annotations

import time

import pytest

from exporter.errors import SourceError
from exporter.sources.github.client import MemoryCache
from tests.sources.github.test_faults import PRIMARY, SECONDARY
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import T0


def test_a_primary_limit_with_no_retries_left_is_rate_limited(fake: FakeGitHub) -> None:
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
    fake.fault("/issues", (403, reset, PRIMARY))
    client = client_for(fake, MemoryCache(), retries=0)
    with pytest.raises(SourceError) as err:
        list(client.pages("/repos/acme/ops/issues"))
    assert err.value.kind == "rate_limited"
    assert len(fake.hits("/issues")) == 1


def test_a_secondary_limit_without_retry_after_waits_a_minute_or_stops_at_once(fake: FakeGitHub) -> None:
    """GitHub asks for at least a minute: with a shorter wait bound it is not retried early."""
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    fake.fault("/issues", (403, {}, SECONDARY))
    client = client_for(fake, MemoryCache(), max_rate_limit_wait=5.0)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        list(client.pages("/repos/acme/ops/issues"))
    assert err.value.kind == "rate_limited" and time.monotonic() - started < 2
    assert [r.status for r in fake.hits("/issues")] == [403]


def test_no_rate_limit_wait_outlasts_the_jobs_budget(fake: FakeGitHub) -> None:
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    fake.fault("/issues", (403, {}, SECONDARY), (403, {"Retry-After": "20"}, SECONDARY))
    client = client_for(fake, MemoryCache(), max_rate_limit_wait=120.0)
    for _ in range(2):  # the secondary limit's minute, then a Retry-After: both longer than the budget
        started = time.monotonic()
        with client.budget(3.0), pytest.raises(SourceError) as err:
            list(client.pages("/repos/acme/ops/issues"))
        assert err.value.kind == "rate_limited" and time.monotonic() - started < 2
    assert [r.status for r in fake.hits("/issues")] == [403, 403]
    # inside the budget a Retry-After is still waited out and retried
    fake.fault("/issues", (403, {"Retry-After": "1"}, SECONDARY))
    with client.budget(10.0):
        [page] = list(client.pages("/repos/acme/ops/issues"))
    assert [i["number"] for i in page] == [1]
