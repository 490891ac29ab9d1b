# SPDX-License-Identifier: Apache-2.0
"""GitHub as the source repository: tags, compares, squash-aware lead time, the commit cache."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.core import snapshot
from exporter.core.levels import PRESETS
from exporter.errors import SourceError
from exporter.ingest.github_changes import ChangeResolver, ResolveResult
from exporter.model import PairKey
from exporter.serve import DoraCollector, SnapshotHolder
from exporter.serve.health import Health
from exporter.sources.github.client import MemoryCache
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, T0, Exporter, GitRepo, manifest, values_yaml

DAY = 24 * HOUR
SERVICE = {"name": "shop", "repo": "github:acme/shop", "paths": ["services/shop"]}


def _exporter(tmp_path: Path, fake: FakeGitHub, change_start: str = "pr_first_commit") -> tuple[Exporter, GitRepo]:
    gitops = GitRepo(tmp_path / "gitops")
    e = Exporter(
        tmp_path,
        gitops.url,
        services=[SERVICE],
        change_start=change_start,
        github={"enabled": True, "base_url": fake.base_url},
    )
    e.github = client_for(fake, _StoreCache(e))
    return e, gitops


class _StoreCache:
    """The daemon's store-backed cache, as tests/gitrepo's Exporter has no daemon."""

    def __init__(self, e: Exporter) -> None:
        self.e = e

    def get(self, key: str) -> tuple[str | None, str] | None:
        return self.e.store.cache_get(key)

    def put(self, key: str, etag: str | None, body: str) -> None:
        with self.e.store.transaction() as tx:
            tx.cache_put(key, etag, body)


def _ingest(e: Exporter) -> ResolveResult:
    """A GitOps poll, then the GitHub job that reads the queued deployments' commits and changes."""
    e.poll()
    return ChangeResolver(e.cfg, e.store, e.repos(e.github)).poll()


def _deploy(gitops: GitRepo, sha: str, when: int) -> None:
    gitops.commit(f"Promote to production: {sha}", when, {manifest("shop"): values_yaml(sha)})


def test_squash_merged_pr_measures_from_its_first_commit_and_direct_push_from_commit_time(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo = fake.repo("acme/shop")
    base = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake)
    _deploy(gitops, base, T0 + HOUR)  # baseline
    merged = T0 + 4 * DAY
    squash = repo.squash_pr(
        7, [(merged - 3 * DAY, ["services/shop/a.py"]), (merged - DAY, ["services/shop/b.py"])], merged
    )
    push = repo.commit("hotfix pushed to main", ["services/shop/c.py"], merged + HOUR)
    docs = repo.commit("docs only", ["docs/readme.md"], merged + 2 * HOUR)
    deployed = merged + 5 * HOUR
    _deploy(gitops, docs, deployed)
    _ingest(e)

    assert e.change_shas("shop")[1] == [squash, push]
    leads = {
        lead.sha: lead.lead_seconds for lead in e.store.histories("pr_first_commit")[PairKey("shop", "prod")].leads
    }
    assert leads[squash] == 3 * DAY + 5 * HOUR  # 3 days before the merge, plus the deploy delay
    assert leads[push] == 4 * HOUR  # no pull request: the commit time
    assert e.store.changes_without_pull_request() == 1
    # commit_time start is still available and measures the squash commit from the merge
    assert e.leads("shop")[squash] == 5 * HOUR

    # lead-time phases (github.lead_time_phases): the pull request opened a minute after its first commit
    phases = e.store.lead_time_phases()
    assert phases == {PairKey("shop", "prod"): {"coding": [60.0], "review": [3 * DAY - 60.0], "deploy": [5 * HOUR]}}
    snap = snapshot.build(
        e.store.histories("pr_first_commit"),
        known_pairs=[PairKey("cart", "prod")],
        now=datetime.fromtimestamp(deployed, tz=UTC),
        windows=[("30d", 30 * DAY)],
        thresholds=PRESETS["dora-2023"],
        phases=phases,
    )
    registry = CollectorRegistry()
    registry.register(DoraCollector(SnapshotHolder(snap), Health({})))
    labels = {"service": "shop", "environment": "prod"}
    assert registry.get_sample_value("dora_lead_time_phase_seconds_sum", {**labels, "phase": "deploy"}) == 5 * HOUR
    assert registry.get_sample_value("dora_lead_time_phase_seconds_count", {**labels, "phase": "review"}) == 1
    cart = {"service": "cart", "environment": "prod", "phase": "coding"}
    assert registry.get_sample_value("dora_lead_time_phase_seconds_count", cart) == 0  # known pairs start at 0
    e.close()


def test_a_600_commit_compare_is_fully_paged_and_each_commit_fetched_once(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    base = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, base, T0 + HOUR)
    shas = [repo.commit(f"c{i}", ["services/shop/x.py"], T0 + 2 * HOUR + i) for i in range(600)]
    _deploy(gitops, shas[-1], T0 + DAY)
    _ingest(e)

    assert e.change_shas("shop")[1] == shas
    pages = [r for r in fake.hits("/compare/") if r.query.get("per_page") != "1"]
    assert len(pages) == 6  # 600 commits at 100 per page, every page followed through Link
    assert len({r.path for r in fake.hits("/commits/")}) == len(fake.hits("/commits/"))  # never twice
    # the same range again (as after a restart) re-reads no commit: their files are cached in the store
    before = len(fake.hits("/commits/"))
    from exporter.sources.github.repos import GitHubRepo

    again = GitHubRepo(client_for(fake, _StoreCache(e)), "acme/shop", False).changes(
        shas[-1], [base], ["services/shop"]
    )
    assert [c.sha for c in again] == shas
    assert len(fake.hits("/commits/")) == before
    e.close()


def test_path_filters_use_each_commits_files_when_the_compare_may_be_truncated(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    repo = fake.repo("acme/shop")
    base = repo.commit("initial", ["services/shop/main.py"], T0)
    many = repo.commit("vendor bump", [f"vendor/f{i}.txt" for i in range(350)], T0 + HOUR)
    ours = repo.commit("shop change", ["services/shop/main.py"], T0 + 2 * HOUR)
    other = repo.commit("other service", ["services/cart/main.py"], T0 + 3 * HOUR)
    from exporter.sources.github.repos import GitHubRepo

    gh = GitHubRepo(client_for(fake, MemoryCache()), "acme/shop", False)
    changes = gh.changes(other, [base], ["services/shop"])
    assert [c.sha for c in changes] == [ours]
    assert many != ours
    # the 350-file commit's files were paged (300 per page by default, 100 as we ask)
    assert len(fake.hits(f"/commits/{many}")) == 4


def test_tags_resolve_through_the_api(fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    sha = repo.commit("initial", ["a"], T0)
    repo.refs["v1"] = sha
    from exporter.sources.github.repos import GitHubRepo

    gh = GitHubRepo(client_for(fake, MemoryCache()), "acme/shop", False)
    assert gh.resolve("refs/tags/v1") == sha
    assert gh.resolve(sha[:8]) == sha
    assert gh.resolve(sha) == sha
    assert gh.resolve("refs/tags/v2") is None
    assert gh.resolve("0" * 40) is None
    assert gh.is_ancestor(sha, sha)
    # a missing (or unreadable) repository is an error, not a tag that does not resolve
    with pytest.raises(SourceError) as err:
        GitHubRepo(client_for(fake, MemoryCache()), "acme/missing", False).resolve(sha)
    assert err.value.kind == "not_found"


def test_a_failing_github_never_holds_up_the_gitops_poll_and_loses_nothing(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    base = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, base, T0 + HOUR)
    c1 = repo.commit("one", ["services/shop/a.py"], T0 + 2 * HOUR)
    _deploy(gitops, c1, T0 + 3 * HOUR)
    c2 = repo.commit("two", ["services/shop/b.py"], T0 + 4 * HOUR)
    _deploy(gitops, c2, T0 + 5 * HOUR)
    fake.fault("/compare/", *[(502, {}, {"message": "Server Error"})] * 4)  # one try, three retries

    result = e.poll()  # GitHub is down: the GitOps poll records every deployment regardless
    assert result.deployments == 3 and e.store.cursor(f"gitops:{e.cfg.gitops[0].key}") == gitops.sha()
    resolver = ChangeResolver(e.cfg, e.store, e.repos(e.github))
    with pytest.raises(SourceError) as err:
        resolver.poll()
    assert err.value.kind == "server_error"
    assert resolver.pending() == 2  # the baseline resolved; the first real deployment stopped at its compare
    assert e.change_shas("shop") == [[], [], []]

    done = resolver.poll()  # GitHub is back: the queue drains in order, nothing twice
    assert (done.deployments, done.changes) == (2, 2) and resolver.pending() == 0
    assert e.change_shas("shop") == [[], [c1], [c2]]
    assert [d[3] for d in e.deployments("shop")] == [base, c1, c2]
    assert resolver.poll().deployments == 0
    e.close()


def test_an_ancestor_tag_through_github_is_a_rollback(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, c0, T0 + HOUR)
    c1 = repo.commit("one", ["services/shop/a.py"], T0 + 2 * HOUR)
    _deploy(gitops, c1, T0 + 3 * HOUR)
    gitops.commit(f"Pin {c0}", T0 + 5 * HOUR, {manifest("shop"): values_yaml(c0)})  # no revert wording
    _ingest(e)
    deps = e.deployments("shop")
    assert [d[5] for d in deps] == [False, False, True]  # the third deployment is rework
    [failure] = e.store.failures("shop", "prod")
    assert failure.detail == "ancestor" and failure.restored_at is not None
    e.close()


def test_a_spent_budget_stops_the_pass_and_the_next_run_resumes(tmp_path: Path, fake: FakeGitHub) -> None:
    repo = fake.repo("acme/shop")
    shas = [repo.commit("initial", ["services/shop/main.py"], T0)]
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, shas[0], T0 + HOUR)
    for i in range(1, 4):
        shas.append(repo.commit(f"c{i}", ["services/shop/a.py"], T0 + i * 2 * HOUR))
        _deploy(gitops, shas[-1], T0 + i * 2 * HOUR + HOUR)
    e.poll()
    assert e.github is not None
    resolver = ChangeResolver(e.cfg, e.store, e.repos(e.github))
    # the last request for the first real deployment (its ancestry check) outlasts the whole budget
    fake.fault(f"/compare/{shas[1]}...", "slow:0.8")
    with e.github.budget(0.5):
        spent = resolver.poll()
    assert spent.stopped and spent.deployments == 2
    assert resolver.pending() == 2  # the baseline and the slow one are done, committed; two are left
    assert e.change_shas("shop") == [[], [shas[1]], [], []]
    assert resolver.poll().deployments == 2
    assert e.change_shas("shop") == [[], [shas[1]], [shas[2]], [shas[3]]]
    e.close()


def test_a_hanging_github_holds_no_store_lock(tmp_path: Path, fake: FakeGitHub) -> None:
    import threading

    from tests.support.waiting import wait_until

    repo = fake.repo("acme/shop")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    e, gitops = _exporter(tmp_path, fake, change_start="commit_time")
    _deploy(gitops, c0, T0 + HOUR)
    c1 = repo.commit("one", ["services/shop/a.py"], T0 + 2 * HOUR)
    _deploy(gitops, c1, T0 + 3 * HOUR)
    e.poll()
    e.github = client_for(fake, _StoreCache(e), timeout=10.0, retries=0)
    resolver = ChangeResolver(e.cfg, e.store, e.repos(e.github))
    fake.fault("/compare/", "hang")
    worker = threading.Thread(target=_swallow, args=(resolver,))
    worker.start()
    wait_until(lambda: fake.hits("/compare/"), 5, message="the resolver is waiting on GitHub")
    c2 = repo.commit("two", ["services/shop/b.py"], T0 + 4 * HOUR)
    _deploy(gitops, c2, T0 + 5 * HOUR)
    assert e.poll().deployments == 1  # the GitOps batch commits while the GitHub call hangs
    fake.release.set()
    worker.join(15)
    assert resolver.poll().deployments == 2
    assert e.change_shas("shop") == [[], [c1], [c2]]
    e.close()


def _swallow(resolver: ChangeResolver) -> None:
    """Run one pass and drop its (expected) GitHub error: the hang ends in a 502."""
    with contextlib.suppress(SourceError):
        resolver.poll()


def test_a_gitops_deployment_that_adopts_an_argocd_one_gets_its_changes_from_github(
    tmp_path: Path, fake: FakeGitHub
) -> None:
    from datetime import timedelta

    from exporter.ingest.argocd import ArgoIngester
    from tests.support.argocd_apps import SERVICE, argo_app

    repo = fake.repo("acme/shop-api")
    c0 = repo.commit("initial", ["services/shop/main.py"], T0)
    c1 = repo.commit("feature", ["services/shop/a.py"], T0 + HOUR)
    gitops = GitRepo(tmp_path / "gitops")
    m0 = gitops.commit(f"Promote to production: {c0}", T0 + 2 * HOUR, {manifest(SERVICE): values_yaml(c0)})
    m1 = gitops.commit(f"Promote to production: {c1}", T0 + 3 * HOUR, {manifest(SERVICE): values_yaml(c1)})
    e = Exporter(
        tmp_path,
        gitops.url,
        services=[{"name": SERVICE, "repo": "github:acme/shop-api", "paths": ["services/shop"]}],
        github={"enabled": True, "base_url": fake.base_url},
        argocd={"enabled": True, "namespaces": ["argocd"]},
    )
    e.github = client_for(fake, _StoreCache(e))
    repos = e.repos(e.github)
    start = datetime.fromtimestamp(T0 + 2 * HOUR + 60, tz=UTC)
    ArgoIngester(e.cfg, e.store, repos).apply(argo_app("u1", [(1, m0, start), (2, m1, start + timedelta(hours=1))]))
    e.poll()  # GitOps adopts both Argo CD deployments
    assert {d.source.value for d in e.store.deployments()} == {"argocd"}
    assert ChangeResolver(e.cfg, e.store, repos).poll().deployments == 2
    assert e.change_shas(SERVICE) == [[], [c1]]
    repos.close()
    e.close()
