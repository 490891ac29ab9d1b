# SPDX-License-Identifier: Apache-2.0
"""GitHub faults: rate limits, 429, 5xx, timeouts, 304s. Nothing lost, nothing twice, nobody stalled."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from exporter.config import parse, redacted
from exporter.daemon.runtime import Daemon
from exporter.errors import SourceError
from exporter.model import FailureReason
from exporter.sources.github.client import MemoryCache
from tests.support.fakegithub import TOKEN, FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, T0, GitRepo, manifest, values_yaml
from tests.support.waiting import wait_until

PRIMARY = {
    "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
    "please include the request ID ABCD:1234.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
}
SECONDARY = {
    "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
}


def _daemon(tmp_path: Path, fake: FakeGitHub, **github: Any) -> tuple[Daemon, GitRepo]:
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("deploy", T0, {manifest("shop"): values_yaml("v1")})
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "gitops": [
            {
                "repo": gitops.url,
                "manifests": [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}],
            }
        ],
        "services": [{"name": "shop"}],
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "timeout": "1s",
            "budget": "5s",
            "incidents": {"repos": ["acme/ops"], "services": [{"service": "shop", "label": "service:shop"}]},
            **github,
        },
    }
    cfg = parse(raw, environ={"DORA_GITHUB_TOKEN": TOKEN}, base_dir=tmp_path)
    return Daemon(cfg), gitops


def _incidents(d: Daemon) -> list[str]:
    return [f.detail for f in d.store.failures() if f.reason is FailureReason.INCIDENT]


def test_primary_limit_with_a_far_reset_returns_within_budget_and_the_next_run_resumes(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    d, _ = _daemon(tmp_path, fake)
    ops = fake.repo("acme/ops")
    ops.issue(1, "Shop down", ["incident", "service:shop"], T0 + HOUR)
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
    fake.fault("/issues", (403, reset, PRIMARY))
    d.poll_gitops(d.ingesters[0])
    started = time.monotonic()
    assert d.poll_github_incidents() is None
    assert time.monotonic() - started < d.cfg.github.budget
    assert len(fake.hits("/issues")) == 1  # no waiting an hour, no hammering
    sources, errors = d.health.copy()
    assert not sources["github"].up and sources["gitops"].up
    assert errors[("github", "rate_limited")] == 1
    assert d.health.github_rate_limit_remaining == {"core": 0}
    sample = d.registry.get_sample_value
    assert sample("dora_exporter_source_up", {"source": "github"}) == 0
    assert sample("dora_exporter_source_up", {"source": "gitops"}) == 1
    assert sample("dora_exporter_github_rate_limit_remaining", {"resource": "core"}) == 0
    assert sample("dora_exporter_source_errors_total", {"source": "github", "kind": "rate_limited"}) == 1
    assert sample("dora_exporter_changes_without_pull_request_total") == 0
    # the limit is over: the next run picks up the incident, once
    result = d.poll_github_incidents()
    assert result is not None and result.new == 1
    assert _incidents(d) == ["acme/ops#1"]
    assert d.health.copy()[0]["github"].up
    assert sample("dora_exporter_source_up", {"source": "github"}) == 1
    assert sample("dora_exporter_unmatched_total", {"source": "github", "reason": "incident_unattributed"}) == 0
    d.close()


def test_a_hanging_github_does_not_delay_gitops_polls(tmp_path: Path, fake: FakeGitHub) -> None:
    d, gitops = _daemon(tmp_path, fake, retries=0, budget="20s", timeout="10s")
    fake.repo("acme/ops").issue(1, "Shop down", ["incident", "service:shop"], T0 + HOUR)
    d.poll_gitops(d.ingesters[0])
    fake.fault("/issues", "hang")
    done = threading.Event()
    worker = threading.Thread(target=lambda: (d.poll_github_incidents(), done.set()))
    worker.start()
    wait_until(lambda: fake.hits("/issues"), 5, message="the incident poll reached GitHub")
    gitops.commit("deploy 2", T0 + 2 * HOUR, {manifest("shop"): values_yaml("v2")})
    result = d.poll_gitops(d.ingesters[0])  # while the GitHub job hangs
    assert result is not None and result.deployments == 1 and result.commits == 1
    assert not done.is_set()
    fake.release.set()
    worker.join(15)
    assert done.is_set()
    assert d.poll_github_incidents() is not None and _incidents(d) == ["acme/ops#1"]
    d.close()


def test_secondary_limit_with_retry_after_is_retried_exactly_once(fake: FakeGitHub) -> None:
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    fake.fault("/issues", (403, {"Retry-After": "1"}, SECONDARY))
    client = client_for(fake, MemoryCache())
    [page] = list(client.pages("/repos/acme/ops/issues"))
    assert [i["number"] for i in page] == [1]
    assert [r.status for r in fake.hits("/issues")] == [403, 200]


def test_a_bare_429_is_rate_limited_without_retrying(fake: FakeGitHub) -> None:
    fake.repo("acme/ops")
    fake.fault("/issues", (429, {}, {"message": "Too Many Requests"}))
    client = client_for(fake, MemoryCache())
    with pytest.raises(SourceError) as err:
        list(client.pages("/repos/acme/ops/issues"))
    assert err.value.kind == "rate_limited"
    assert len(fake.hits("/issues")) == 1
    assert list(client.pages("/repos/acme/ops/issues")) == [[]]  # the next run goes through


def test_502s_are_retried_then_reported_as_server_errors(fake: FakeGitHub) -> None:
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    bad = (502, {}, {"message": "Server Error"})
    fake.fault("/issues", bad, bad)
    client = client_for(fake, MemoryCache(), retries=3)
    [page] = list(client.pages("/repos/acme/ops/issues"))
    assert len(page) == 1 and [r.status for r in fake.hits("/issues")] == [502, 502, 200]

    fake.fault("/issues", *[bad] * 10)
    with pytest.raises(SourceError) as err:
        list(client.pages("/repos/acme/ops/issues", conditional=False))
    assert err.value.kind == "server_error"
    assert len(fake.hits("/issues")) == 3 + 4  # one try and three retries


def test_a_read_timeout_is_a_timeout_within_the_budget(fake: FakeGitHub) -> None:
    fake.repo("acme/ops")
    fake.fault("/issues", "hang")
    client = client_for(fake, MemoryCache(), retries=0, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        list(client.pages("/repos/acme/ops/issues"))
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 5
    fake.release.set()


def test_a_spent_budget_stops_before_the_next_request(fake: FakeGitHub) -> None:
    fake.repo("acme/ops")
    client = client_for(fake, MemoryCache())
    with client.budget(0), pytest.raises(SourceError) as err:
        client.get_json("/repos/acme/ops/issues")
    assert err.value.kind == "budget_exhausted"
    assert fake.hits("/issues") == []


def test_a_304_is_answered_from_the_cache_without_spending_rate_limit(fake: FakeGitHub) -> None:
    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    client = client_for(fake, MemoryCache())
    first = client.get_json("/repos/acme/ops/issues", {"labels": "incident"})
    remaining = fake.rate_remaining
    second = client.get_json("/repos/acme/ops/issues", {"labels": "incident"})
    assert first == second and [i["number"] for i in second] == [1]
    statuses = [r.status for r in fake.hits("/issues")]
    assert statuses == [200, 304]
    assert fake.hits("/issues")[1].headers["if-none-match"].startswith('W/"')
    assert fake.rate_remaining == remaining
    assert client.rate_limit_remaining == remaining


def test_the_token_never_reaches_the_logs(tmp_path: Path, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]) -> None:
    d, _ = _daemon(tmp_path, fake)
    d.poll_gitops(d.ingesters[0])
    fake.fault("/issues", (401, {}, {"message": "Bad credentials"}))
    assert d.poll_github_incidents() is None
    assert d.health.copy()[1][("github", "auth")] == 1
    d.close()
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err
    assert TOKEN not in str(redacted(d.cfg))


def test_a_github_app_authenticates_with_an_installation_token(
    tmp_path: Path, fake: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    fake.app = ("4242", public, 77)
    (tmp_path / "app.pem").write_bytes(pem)
    fake.repo("acme/ops").issue(1, "Shop down", ["incident", "service:shop"], T0 + HOUR)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("deploy", T0, {manifest("shop"): values_yaml("v1")})
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "gitops": [
            {
                "repo": gitops.url,
                "manifests": [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}],
            }
        ],
        "services": [{"name": "shop"}],
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "app_installation_id": 77,
            "incidents": {"repos": ["acme/ops"], "services": [{"service": "shop", "label": "service:shop"}]},
        },
    }
    env = {"DORA_GITHUB_APP_ID": "4242", "DORA_GITHUB_APP_PRIVATE_KEY_FILE": str(tmp_path / "app.pem")}
    d = Daemon(parse(raw, environ=env, base_dir=tmp_path))
    d.poll_gitops(d.ingesters[0])
    result = d.poll_github_incidents()
    assert result is not None and result.new == 1
    [grant] = fake.hits("/app/installations/77/access_tokens")
    assert grant.status == 201 and grant.headers["authorization"].startswith("Bearer ")
    assert all(r.headers["authorization"] == "token ghs_installation1" for r in fake.hits("/issues"))
    d.close()
    out = capsys.readouterr()
    assert "PRIVATE KEY" not in out.out + out.err and "ghs_installation1" not in out.out + out.err
    assert "PRIVATE KEY" not in str(redacted(d.cfg))


def test_the_authorization_header_is_not_logged_even_at_debug(
    fake: FakeGitHub, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    fake.repo("acme/ops").issue(1, "x", ["incident"], T0)
    fake.fault("/issues", (502, {}, {"message": "Server Error"}))
    with caplog.at_level(logging.DEBUG):
        client = client_for(fake, MemoryCache())
        list(client.pages("/repos/acme/ops/issues"))
    assert caplog.records  # PyGithub and urllib3 did log the requests
    assert TOKEN not in caplog.text


def test_incidents_wait_for_the_first_complete_gitops_poll(tmp_path: Path, fake: FakeGitHub) -> None:
    d, _ = _daemon(tmp_path, fake)
    fake.repo("acme/ops").issue(1, "Shop down", ["incident", "service:shop"], T0 + HOUR)
    assert d.poll_github_incidents() is None  # the deployment it blames is not ingested yet
    assert fake.hits("/issues") == []
    d.poll_gitops(d.ingesters[0])
    result = d.poll_github_incidents()
    assert result is not None and result.new == 1 and result.unattributed == 0
    d.close()


def test_a_retry_after_longer_than_the_wait_bound_stops_at_once(fake: FakeGitHub) -> None:
    fake.repo("acme/ops")
    fake.fault("/issues", (403, {"Retry-After": "3600"}, SECONDARY), (429, {"Retry-After": "3600"}, {"message": "x"}))
    client = client_for(fake, MemoryCache(), max_rate_limit_wait=5.0)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(SourceError) as err:
            list(client.pages("/repos/acme/ops/issues"))
        assert err.value.kind == "rate_limited" and time.monotonic() - started < 5
    assert [r.status for r in fake.hits("/issues")] == [403, 429]
