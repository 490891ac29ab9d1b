# SPDX-License-Identifier: Apache-2.0
"""GitHub deployments (the Deployments API) against the fake GitHub on loopback: successes, failed
attempts and their restores, statuses that finish later, paging and the high-water mark, one row
per real deployment with GitOps in both orders, unknown environments and a spent budget."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.ingest.github_cache import StoreCache
from exporter.ingest.github_changes import ChangeResolver
from exporter.ingest.github_deployments import DeploymentIngester
from exporter.ingest.repos import Repos
from exporter.model import DeploymentSource, FailureReason
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, MINUTE, T0, VALUES_RULE, Exporter, GitRepo, manifest, values_yaml

DAY = 24 * HOUR
NOW = T0 + 10 * DAY  # the ingester's clock: every deployment below is within the backfill
REPO = "acme/shop"


def _setup(
    tmp_path: Path,
    fake: FakeGitHub,
    service: dict[str, Any] | None = None,
    gitops: GitRepo | None = None,
    top: dict[str, Any] | None = None,
    **deployments: Any,
) -> tuple[Exporter, DeploymentIngester]:
    gitops = gitops or GitRepo(tmp_path / "gitops")
    svc = service or {"name": "shop"}
    github_repo = str(svc.get("repo", "")).startswith("github:")
    e = Exporter(
        tmp_path,
        gitops.url,
        services=[svc],
        environments=["staging"],
        github={
            "enabled": True,
            "base_url": fake.base_url,
            "deployments": {
                "enabled": True,
                "environments": {"production": "prod"},
                **({} if github_repo else {"repos": [{"repo": REPO, "service": "shop"}]}),
                **deployments,
            },
        },
        **(top or {}),
    )
    e.github = client_for(fake, StoreCache(e.store))
    ing = DeploymentIngester(
        e.cfg, e.store, e.github, e.repos(e.github), clock=lambda: datetime.fromtimestamp(NOW, tz=UTC)
    )
    return e, ing


def _rows(e: Exporter) -> list[tuple[str, int, str | None, str]]:
    """(version, deployed_at, commit, source) of shop/prod, oldest first."""
    return [
        (d.version, int(d.deployed_at.timestamp()), d.commit, d.source.value)
        for d in e.store.deployments("shop", "prod")
    ]


def _list_requests(fake: FakeGitHub) -> int:
    return len([r for r in fake.hits(f"/repos/{REPO}/deployments") if r.path.endswith("/deployments")])


def test_a_success_is_a_deployment_at_the_status_time_of_the_deployed_commit(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    sha = repo.commit("release", ["services/shop/main.py"], T0)
    dep = repo.deployment(sha, "production", T0 + 100)
    for state, at in (("queued", 110), ("in_progress", 120), ("success", 300)):
        repo.status(dep, state, T0 + at)
    e, ing = _setup(tmp_path, fake)

    result = ing.poll()
    assert (result.read, result.deployments, result.waiting) == (1, 1, 0)
    assert _rows(e) == [(sha, T0 + 300, sha, "github")]
    [d] = e.store.deployments()
    assert d.baseline  # the pair's first deployment: no changes, as for every source
    # a re-poll, and a restart, count nothing twice
    assert ing.poll().read == 0
    e.restart()
    again = DeploymentIngester(e.cfg, e.store, client_for(fake, StoreCache(e.store)), e.repos(), ing.clock)
    assert again.poll().read == 0 and len(e.store.deployments()) == 1
    e.close()


def test_a_failed_deployment_fails_and_the_next_success_restores_it(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    good = repo.commit("one", ["a"], T0)
    bad = repo.commit("two", ["b"], T0 + HOUR)
    d0 = repo.deployment(good, "production", T0 + 100)
    repo.status(d0, "success", T0 + 200)
    d1 = repo.deployment(bad, "production", T0 + 2 * HOUR)
    repo.status(d1, "in_progress", T0 + 2 * HOUR + 10)
    repo.status(d1, "failure", T0 + 2 * HOUR + 300)
    e, ing = _setup(tmp_path, fake)

    assert ing.poll().failures == 1
    [failure] = e.store.failures("shop", "prod")
    failed_row = e.store.deployments("shop", "prod")[-1]
    assert failure.reason is FailureReason.DEPLOYMENT_FAILED
    assert failure.deployment_id == failed_row.id and failed_row.commit is None  # an attempt, never a base
    assert failure.started_at.timestamp() == T0 + 2 * HOUR + 300 and failure.restored_at is None

    fixed = repo.commit("three", ["c"], T0 + 3 * HOUR)
    d2 = repo.deployment(fixed, "production", T0 + 3 * HOUR + 60)
    repo.status(d2, "error", T0 + 3 * HOUR + 120)  # error counts as failure too
    d3 = repo.deployment(fixed, "production", T0 + 4 * HOUR)
    repo.status(d3, "success", T0 + 4 * HOUR + 200)
    result = ing.poll()
    assert (result.failures, result.deployments, result.restores) == (1, 1, 2)
    restorer = e.store.deployments("shop", "prod")[-1]
    assert restorer.version == fixed and restorer.deployed_at.timestamp() == T0 + 4 * HOUR + 200
    failures = e.store.failures("shop", "prod")
    assert [(f.restored_at.timestamp() if f.restored_at else None, f.restored_by) for f in failures] == [
        (T0 + 4 * HOUR + 200, restorer.id)
    ] * 2
    assert len(e.store.deployments("shop", "prod")) == 4  # two successes and two failed attempts
    e.close()


def test_a_failed_deployment_is_restored_by_a_later_gitops_deployment(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    bad = repo.commit("bad", ["b"], T0)
    d1 = repo.deployment(bad, "production", T0 + 100)
    repo.status(d1, "failure", T0 + 200)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("Promote to production: v2", T0 + HOUR, {manifest("shop"): values_yaml("v2")})
    e, ing = _setup(tmp_path, fake, gitops=gitops)
    ing.poll()
    e.poll()
    assert ing.poll().restores == 1  # the next pass sees the GitOps deployment (any source restores)
    [failure] = e.store.failures()
    assert failure.restored_at is not None and failure.restored_at.timestamp() == T0 + HOUR
    e.close()


def test_in_progress_then_success_on_a_later_poll(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    sha = repo.commit("release", ["a"], T0)
    dep = repo.deployment(sha, "production", NOW - HOUR)  # revisited for pending_max_age (24h)
    repo.status(dep, "in_progress", NOW - HOUR + 20)
    e, ing = _setup(tmp_path, fake)
    statuses = f"/deployments/{dep}/statuses"

    first = ing.poll()
    assert (first.read, first.deployments, first.waiting) == (1, 0, 1) and _rows(e) == []
    assert ing.poll().waiting == 1  # still running: read again, now keeping its ETag
    assert ing.poll().waiting == 1
    assert [r.status for r in fake.hits(statuses)] == [200, 200, 304]  # unchanged: no rate limit spent
    repo.status(dep, "success", NOW - 10 * MINUTE)
    later = ing.poll()
    assert (later.read, later.deployments, later.waiting) == (0, 1, 0)
    assert _rows(e) == [(sha, NOW - 10 * MINUTE, sha, "github")]
    asked = len(fake.hits(statuses))
    ing.poll()
    assert len(fake.hits(statuses)) == asked  # final: never read again
    e.close()


def test_a_deployment_that_never_finishes_is_given_up_after_pending_max_age(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    dep = repo.deployment(repo.commit("x", ["a"], T0), "production", NOW - 3 * HOUR)
    repo.status(dep, "queued", NOW - 3 * HOUR)
    e, ing = _setup(tmp_path, fake, pending_max_age="2h")
    assert ing.poll().waiting == 1  # read once, when new
    result = ing.poll()
    assert result.expired == 1 and e.store.unmatched_counts() == {("github", "deployment_unfinished"): 1}
    asked = len(fake.hits(f"/deployments/{dep}/statuses"))
    ing.poll()
    assert len(fake.hits(f"/deployments/{dep}/statuses")) == asked
    e.close()


@pytest.mark.slow  # over 200 requests to the fake GitHub, about 5 s
def test_paging_and_the_high_water_mark(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    sha = repo.commit("release", ["a"], T0)
    for i in range(105):
        dep = repo.deployment(sha, "production", T0 + i * HOUR)
        repo.status(dep, "success", T0 + i * HOUR + 60)
    e, ing = _setup(tmp_path, fake)

    assert ing.poll().deployments == 105
    assert _list_requests(fake) == 2  # 100 per page, the second through Link
    assert len(fake.hits("/statuses")) == 105
    new = repo.deployment(sha, "production", T0 + 200 * HOUR)
    repo.status(new, "success", T0 + 200 * HOUR + 60)
    second = ing.poll()
    assert (second.read, second.deployments) == (1, 1)
    assert _list_requests(fake) == 3  # the first page held the high-water mark: no second page
    assert len(fake.hits("/statuses")) == 106  # only the new deployment's statuses
    assert len(e.store.deployments()) == 106
    third = ing.poll()
    assert third.read == 0 and fake.hits(f"/repos/{REPO}/deployments")[-1].status == 304  # unchanged: no rate limit
    e.close()


def test_an_unknown_environment_is_counted_once_and_skipped(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    sha = repo.commit("release", ["a"], T0)
    for i, env in enumerate(["github-pages", "github-pages", "Staging", "production"]):
        dep = repo.deployment(sha, env, T0 + i * HOUR)
        repo.status(dep, "success", T0 + i * HOUR + 60)
    e, ing = _setup(tmp_path, fake)
    result = ing.poll()
    assert (result.read, result.deployments, result.unmatched) == (4, 2, 1)
    assert e.store.unmatched_counts() == {("github", "unknown_environment"): 1}
    # `Staging` normalises to a configured environment; `production` is mapped to prod
    assert {(d.environment, d.source) for d in e.store.deployments()} == {
        ("staging", DeploymentSource.GITHUB),
        ("prod", DeploymentSource.GITHUB),
    }
    assert not fake.hits(f"/deployments/{repo.deployments[0]['id']}/statuses")  # nothing read for it
    e.close()


def test_a_spent_budget_stops_the_pass_and_the_next_run_resumes(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo(REPO)
    sha = repo.commit("release", ["a"], T0)
    ids = []
    for i in range(5):
        ids.append(repo.deployment(sha, "production", T0 + i * HOUR))
        repo.status(ids[-1], "success", T0 + i * HOUR + 60)
    e, ing = _setup(tmp_path, fake)
    fake.fault(f"/deployments/{ids[2]}/statuses", "slow:0.8")
    assert e.github is not None
    with e.github.budget(0.5):
        spent = ing.poll()
    assert spent.stopped and spent.deployments == 3  # the slow answer still lands; the next request is not made
    assert not fake.hits(f"/deployments/{ids[3]}/statuses")
    resumed = ing.poll()
    assert (resumed.stopped, resumed.deployments) == (False, 2)
    assert [t for _, t, _, _ in _rows(e)] == [T0 + i * HOUR + 60 for i in range(5)]
    assert all(len(fake.hits(f"/deployments/{i}/statuses")) == 1 for i in ids)  # none read twice
    e.close()


# -- one real deployment, one row -------------------------------------------------------------


def _dedup_setup(
    tmp_path: Path, fake: FakeGitHub, through_github: bool, **deployments: Any
) -> tuple[Exporter, DeploymentIngester, list[str]]:
    """Source commits c0, c1 (c1 at T0+1h); GitOps promotes them at T0+2h and T0+5h by 7-char tag."""
    if through_github:
        src = fake.repo(REPO)
        c0 = src.commit("initial", ["services/shop/main.py"], T0)
        c1 = src.commit("feature", ["services/shop/a.py"], T0 + HOUR)
        service: dict[str, Any] = {"name": "shop", "repo": f"github:{REPO}", "paths": ["services/shop"]}
    else:
        local = GitRepo(tmp_path / "src")
        c0 = local.commit("initial", T0, {"services/shop/main.py": "0"})
        c1 = local.commit("feature", T0 + HOUR, {"services/shop/a.py": "1"})
        service = {"name": "shop", "repo": local.url, "paths": ["services/shop"]}
        fake.repo(REPO)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit(f"Promote to production: {c0[:7]}", T0 + 2 * HOUR, {manifest("shop"): values_yaml(c0[:7])})
    gitops.commit(f"Promote to production: {c1[:7]}", T0 + 5 * HOUR, {manifest("shop"): values_yaml(c1[:7])})
    e, ing = _setup(tmp_path, fake, service=service, gitops=gitops, **deployments)
    return e, ing, [c0, c1]


def _github_deploys(fake: FakeGitHub, c0: str, c1: str, c1_at: int) -> None:
    repo = fake.repo(REPO)
    d0 = repo.deployment(c0, "production", T0 + 2 * HOUR + MINUTE)
    repo.status(d0, "success", T0 + 2 * HOUR + 5 * MINUTE)
    d1 = repo.deployment(c1, "production", c1_at - 5 * MINUTE)
    repo.status(d1, "success", c1_at)


def _resolve(e: Exporter) -> None:
    ChangeResolver(e.cfg, e.store, e.repos(e.github)).poll()


@pytest.mark.parametrize("through_github", [False, True], ids=["local-repo", "github-repo"])
@pytest.mark.parametrize("github_first", [True, False], ids=["github-first", "gitops-first"])
def test_github_and_gitops_see_one_deployment_with_githubs_time(
    tmp_path: Path, fake: FakeGitHub, github_first: bool, through_github: bool
) -> None:
    e, ing, (c0, c1) = _dedup_setup(tmp_path, fake, through_github)
    success = T0 + 5 * HOUR + 10 * MINUTE
    _github_deploys(fake, c0, c1, success)
    steps = [ing.poll, e.poll] if github_first else [e.poll, ing.poll]
    for step in steps:
        step()
    _resolve(e)
    rows = e.store.deployments("shop", "prod")
    assert [(d.version, int(d.deployed_at.timestamp()), d.commit) for d in rows] == [
        (c0[:7], T0 + 2 * HOUR + 5 * MINUTE, c0),
        (c1[:7], success, c1),
    ]
    assert [d.manifest_commit is not None for d in rows] == [True, True]  # GitOps explained both
    assert e.change_shas("shop") == [[], [c1]]
    assert e.leads("shop") == {c1: success - (T0 + HOUR)}  # from the commit to GitHub's success
    # every source again, and a restart, changes nothing
    for step in (e.poll, ing.poll):
        step()
    assert len(e.store.deployments()) == 2
    e.close()


def test_beyond_the_match_window_they_are_two_deployments(tmp_path: Path, fake: FakeGitHub) -> None:
    e, ing, (c0, c1) = _dedup_setup(tmp_path, fake, False, match_window="30m")
    _github_deploys(fake, c0, c1, T0 + 5 * HOUR + 31 * MINUTE)
    e.poll()
    ing.poll()
    rows = _rows(e)
    assert (
        [(v, t, s) for v, t, _, s in rows]
        == [
            (c0[:7], T0 + 2 * HOUR + 5 * MINUTE, "github"),  # within the window: one
            (c1[:7], T0 + 5 * HOUR, "gitops"),
            (c1, T0 + 5 * HOUR + 31 * MINUTE, "github"),  # a redeploy half an hour later
        ]
    )
    e.close()


def test_a_second_github_deployment_of_the_same_commit_is_a_redeploy(tmp_path: Path, fake: FakeGitHub) -> None:
    e, ing, (c0, c1) = _dedup_setup(tmp_path, fake, False)
    _github_deploys(fake, c0, c1, T0 + 5 * HOUR + 10 * MINUTE)
    again = fake.repo(REPO).deployment(c1, "production", T0 + 5 * HOUR + 20 * MINUTE)
    fake.repo(REPO).status(again, "success", T0 + 5 * HOUR + 25 * MINUTE)
    e.poll()
    ing.poll()
    times = [T0 + 2 * HOUR + 5 * MINUTE, T0 + 5 * HOUR + 10 * MINUTE, T0 + 5 * HOUR + 25 * MINUTE]
    assert [t for _, t, _, _ in _rows(e)] == times
    e.close()


# -- the daemon: webhook, ingest, report --------------------------------------------------------


def test_a_signed_deployment_status_webhook_runs_the_job_early(tmp_path: Path, fake: FakeGitHub) -> None:
    import json
    import threading

    from exporter.config.loading import parse
    from exporter.daemon.runtime import Daemon
    from tests.support.fakegithub import TOKEN
    from tests.support.github_webhooks import SECRET, headers, post, sign
    from tests.support.waiting import wait_until

    repo = fake.repo(REPO)
    sha = repo.commit("release", ["a"], T0)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("deploy", T0, {manifest("shop"): values_yaml("v1")})
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "http": {"listen": "127.0.0.1:0", "webhook_listen": "127.0.0.1:0"},
        "gitops": [{"repo": gitops.url, "poll_interval": "1h", "manifests": [VALUES_RULE]}],
        "services": [{"name": "shop"}],
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "poll_interval": "1h",
            "deployments": {
                "poll_interval": "1h",
                "enabled": True,
                "repos": [{"repo": REPO, "service": "shop"}],
                "environments": {"production": "prod"},
                "backfill": "3650d",
            },
        },
    }  # fmt: skip
    cfg = parse(raw, environ={"DORA_GITHUB_TOKEN": TOKEN, "DORA_GITHUB_WEBHOOK_SECRET": SECRET}, base_dir=tmp_path)
    d = Daemon(cfg)
    runner = threading.Thread(target=d.run, kwargs={"install_signals": False})
    runner.start()
    try:
        wait_until(lambda: d.health.ready() and _list_requests(fake), 15, message="first deployments poll")
        dep = repo.deployment(sha, "production", T0 + DAY)
        repo.status(dep, "success", T0 + DAY + 60)
        assert d.http is not None
        port = d.http._servers[1].server_address[1]
        body = json.dumps({"action": "created", "deployment_status": {"state": "success"}}).encode()
        hook = headers("d-1", sign(body), "deployment_status")
        assert post(f"http://127.0.0.1:{port}", body, hook)[0] == 202
        wait_until(
            lambda: any(x.source is DeploymentSource.GITHUB for x in d.store.deployments()), 15, message="early poll"
        )
        assert post(f"http://127.0.0.1:{port}", body, hook) == (200, "duplicate delivery")
        github = [x.deployed_at.timestamp() for x in d.store.deployments("shop", "prod") if x.source.value == "github"]
        assert github == [T0 + DAY + 60]
        assert d.health.ready()
    finally:
        d.stop.set()
        runner.join(20)
    assert not runner.is_alive()


def test_ingest_and_report_count_github_deployments_and_their_failures(tmp_path: Path, fake: FakeGitHub) -> None:
    import json

    import yaml

    from tests.support.cli import cli
    from tests.support.fakegithub import TOKEN, iso

    repo = fake.repo(REPO)
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    c1 = repo.commit("feature", ["services/shop/a.py"], T0 + HOUR)
    attempts = ((c0, T0 + 2 * HOUR, "success"), (c1, T0 + 3 * HOUR, "failure"), (c1, T0 + 4 * HOUR, "success"))
    for sha, at, state in attempts:
        dep = repo.deployment(sha, "production", at - 300)
        repo.status(dep, "in_progress", at - 200)
        repo.status(dep, state, at)
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("empty", T0)
    cfg = {
        "store": {"path": "dora.db"},
        "gitops": [{"repo": gitops.url, "manifests": [VALUES_RULE]}],
        "services": [{"name": "shop", "repo": f"github:{REPO}", "paths": ["services/shop"]}],
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "deployments": {"enabled": True, "environments": {"production": "prod"}, "backfill": "3650d"},
        },
    }  # fmt: skip
    (tmp_path / "dora.yaml").write_text(yaml.safe_dump(cfg))
    env = {"DORA_GITHUB_TOKEN": TOKEN}
    ingest = cli("ingest", "--config", "dora.yaml", cwd=tmp_path, env=env)
    assert ingest.returncode == 0, ingest.stderr
    window = ("--since", iso(T0), "--until", iso(T0 + DAY))
    report = cli("report", "--config", "dora.yaml", "--format", "json", *window, cwd=tmp_path, env=env)
    assert report.returncode == 0, report.stderr
    [row] = [r for r in json.loads(report.stdout)["rows"] if r["environment"] == "prod"]
    assert row["deployments"] == 3 and row["failed_deployments"] == 1  # the failed attempt counts, and failed
    assert row["changes"] == 1 and row["lead_time_median_seconds"] == 3 * HOUR  # c1: committed T0+1h, live T0+4h
    assert row["restored_failures"] == 1 and row["time_to_restore_median_seconds"] == HOUR


@pytest.mark.parametrize("github_last", [True, False], ids=["gitops-argo-github", "gitops-github-argo"])
def test_with_argo_cd_too_it_is_still_one_deployment_with_argo_cds_time(
    tmp_path: Path, fake: FakeGitHub, github_last: bool
) -> None:
    import dataclasses

    from exporter.ingest.argocd import ArgoIngester
    from tests.support.argocd_apps import argo_app

    local = GitRepo(tmp_path / "src")
    c0 = local.commit("initial", T0, {"services/shop/main.py": "0"})
    gitops = GitRepo(tmp_path / "gitops")
    m0 = gitops.commit(f"Promote to production: {c0[:7]}", T0 + HOUR, {manifest("shop"): values_yaml(c0[:7])})
    fake.repo(REPO)
    e, ing = _setup(
        tmp_path, fake, service={"name": "shop", "repo": local.url}, gitops=gitops, top={"argocd": {"enabled": True}}
    )
    dep = fake.repo(REPO).deployment(c0, "production", T0 + HOUR + MINUTE)
    fake.repo(REPO).status(dep, "success", T0 + HOUR + 10 * MINUTE)
    repos = Repos(e.cfg)
    argo = ArgoIngester(e.cfg, e.store, repos)
    app = argo_app("u1", [(1, m0, datetime.fromtimestamp(T0 + HOUR + 2 * MINUTE, tz=UTC))])
    app = dataclasses.replace(app, name="shop-prod")  # the fixture's app, for this service
    e.poll()
    for step in [lambda: argo.apply(app), ing.poll] if github_last else [ing.poll, lambda: argo.apply(app)]:
        step()
    [d] = e.store.deployments()
    assert (d.version, d.commit, d.source) == (c0[:7], c0, DeploymentSource.ARGOCD)
    assert d.deployed_at == datetime.fromtimestamp(T0 + HOUR + 2 * MINUTE, tz=UTC)  # Argo CD's sync start wins
    repos.close()
    e.close()
