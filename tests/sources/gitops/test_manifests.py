# SPDX-License-Identifier: Apache-2.0
"""The GitOps source end to end on real repositories: deployments, changes, failures, unmatched inputs.

Every repository is built in ``tmp_path`` with fixed commit dates, so every expected deployment
time, lead time and restore time below is an exact number.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from exporter.model import FailureReason
from tests.support.gitrepo import (
    HOUR,
    MINUTE,
    T0,
    VALUES_RULE,
    Exporter,
    GitRepo,
    bare_remote,
    manifest,
    values_yaml,
)

API = manifest("api")


@dataclass
class Source:
    """A service's source repository: ``s1 < s2 < s3`` on one line, each touching ``app/``."""

    repo: GitRepo
    s1: str
    s2: str
    s3: str


@pytest.fixture
def source(tmp_path: Path) -> Source:
    repo = GitRepo(tmp_path / "source")
    s1 = repo.commit("first feature", T0 - 10 * HOUR, {"app/main.py": "one\n"})
    s2 = repo.commit("second feature", T0 - 5 * HOUR, {"app/main.py": "two\n"})
    s3 = repo.commit("third feature", T0 - 4 * HOUR, {"app/util.py": "three\n"})
    return Source(repo, s1, s2, s3)


@pytest.fixture
def gitops(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "gitops")


@pytest.fixture
def opened() -> Iterator[list[Exporter]]:
    """Exporters a test opens, closed at teardown."""
    exporters: list[Exporter] = []
    yield exporters
    for e in exporters:
        e.close()


def exporter(opened: list[Exporter], tmp_path: Path, repo: str, **kw: object) -> Exporter:
    e = Exporter(tmp_path, repo, **kw)  # type: ignore[arg-type]
    opened.append(e)
    return e


def api_service(src: Source, **kw: object) -> list[dict[str, object]]:
    return [{"name": "api", "repo": src.repo.url, "paths": ["app/"], **kw}]


# -- merges -------------------------------------------------------------------------------------


def test_merge_bumps_deploy_once_each_at_the_merge_commit_time(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy api", T0, {API: values_yaml(source.s1[:7])})
    b2, m2 = gitops.bump_via_merge("bump-2", {API: values_yaml(source.s2[:7])}, T0 + 10 * MINUTE, T0 + HOUR, "bump 2")
    gitops.commit("Unrelated docs", T0 + 2 * HOUR, {"README.md": "docs\n"})
    b3, m3 = gitops.bump_via_merge(
        "bump-3", {API: values_yaml(source.s3[:7])}, T0 + 2 * HOUR + 5 * MINUTE, T0 + 3 * HOUR, "bump 3"
    )
    assert len({c1, b2, m2, b3, m3}) == 5
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    result = e.poll()

    assert (result.commits, result.deployments, result.skips) == (3, 3, 0)
    assert e.deployments("api", "prod") == [
        (source.s1[:7], T0, c1, source.s1, True, False),
        (source.s2[:7], T0 + HOUR, m2, source.s2, False, False),
        (source.s3[:7], T0 + 3 * HOUR, m3, source.s3, False, False),
    ]
    assert e.change_shas("api") == [[], [source.s2], [source.s3]]
    assert e.leads("api") == {source.s2: float(6 * HOUR), source.s3: float(7 * HOUR)}
    assert e.store.failures() == []


def test_merge_time_is_the_committer_time_not_the_author_time(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    gitops.commit("Deploy api", T0, {API: values_yaml("v1")})
    gitops.checkout("bump", create=True)
    gitops.commit("bump api", T0 + MINUTE, {API: values_yaml("v2")})
    gitops.checkout("main")
    merge = gitops.merge("bump", "Merge bump", when=T0 + 2 * HOUR, author_when=T0 + 5 * MINUTE)
    e = exporter(opened, tmp_path, gitops.url)

    e.poll()

    assert e.deployments() == [
        ("v1", T0, gitops.sha("HEAD~1"), None, True, False),
        ("v2", T0 + 2 * HOUR, merge, None, False, False),
    ]


# -- layouts, moves, deletions ------------------------------------------------------------------


def test_layout_migration_with_unchanged_values_is_not_a_deployment(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    old = "deploy/api-prod.yaml"
    c1 = gitops.commit("Deploy api", T0, {old: values_yaml("v1"), "deploy/web-prod.yaml": values_yaml("w1")})
    gitops.move(old, API, T0 + HOUR, "Move api to the apps/ layout")
    gitops.move("deploy/web-prod.yaml", manifest("web"), T0 + 2 * HOUR, "Move web to the apps/ layout")
    c4 = gitops.commit("Bump api", T0 + 3 * HOUR, {API: values_yaml("v2")})
    rules = [VALUES_RULE, {"path": "deploy/{service}-{environment}.yaml", "yaml_key": "image.tag"}]
    e = exporter(opened, tmp_path, gitops.url, manifests=rules)

    result = e.poll()

    assert (result.commits, result.deployments) == (4, 3)
    assert e.deployments("api") == [("v1", T0, c1, None, True, False), ("v2", T0 + 3 * HOUR, c4, None, False, False)]
    assert e.deployments("web") == [("w1", T0, c1, None, True, False)]
    assert e.store.unmatched_counts() == {}


def test_file_removed_then_readded_with_the_same_value_is_not_a_deployment(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy api", T0, {API: values_yaml("v1")})
    gitops.commit("Remove api for now", T0 + HOUR, {API: None})
    gitops.commit("Bring api back", T0 + 5 * HOUR, {API: values_yaml("v1")})
    c4 = gitops.commit("Bump api", T0 + 6 * HOUR, {API: values_yaml("v2")})
    e = exporter(opened, tmp_path, gitops.url)

    result = e.poll()

    assert (result.commits, result.deployments) == (4, 2)
    assert e.deployments("api") == [("v1", T0, c1, None, True, False), ("v2", T0 + 6 * HOUR, c4, None, False, False)]
    assert e.store.failures() == []


def test_deleted_file_is_not_a_deployment(tmp_path: Path, gitops: GitRepo, opened: list[Exporter]) -> None:
    c1 = gitops.commit("Deploy", T0, {API: values_yaml("v1"), manifest("web"): values_yaml("w1")})
    gitops.commit("Decommission web", T0 + HOUR, {manifest("web"): None})
    e = exporter(opened, tmp_path, gitops.url)

    result = e.poll()

    assert (result.commits, result.deployments, result.skips) == (2, 2, 0)
    assert e.deployments("web") == [("w1", T0, c1, None, True, False)]
    assert e.deployments("api") == [("v1", T0, c1, None, True, False)]
    assert e.store.unmatched_counts() == {}


# -- several services in one file ---------------------------------------------------------------

ENV_RULE = {
    "path": "env/{environment}.env",
    "regex": r'^(?P<service>[A-Z_]+)_DOCKER_TAG: "?(?P<tag>[^"\s]+)',
}


def env_file(user: str, order: str) -> str:
    return f'# generated\nUSER_SERVICE_DOCKER_TAG: "{user}"\nORDER_SERVICE_DOCKER_TAG: {order}\nLOG_LEVEL: info\n'


def test_regex_rule_reads_several_services_from_one_env_file(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Initial", T0, {"env/prod.env": env_file("u1", "o1"), "env/staging.env": env_file("u1", "o1")})
    c2 = gitops.commit("Bump order in prod", T0 + HOUR, {"env/prod.env": env_file("u1", "o2")})
    c3 = gitops.commit("Bump user in staging", T0 + 2 * HOUR, {"env/staging.env": env_file("u2", "o1")})
    e = exporter(opened, tmp_path, gitops.url, manifests=[ENV_RULE])

    result = e.poll()

    assert (result.commits, result.deployments, result.skips) == (3, 6, 0)
    assert e.deployments("user-service", "prod") == [("u1", T0, c1, None, True, False)]
    assert e.deployments("order-service", "prod") == [
        ("o1", T0, c1, None, True, False),
        ("o2", T0 + HOUR, c2, None, False, False),
    ]
    assert e.deployments("user-service", "staging") == [
        ("u1", T0, c1, None, True, False),
        ("u2", T0 + 2 * HOUR, c3, None, False, False),
    ]
    assert e.deployments("order-service", "staging") == [("o1", T0, c1, None, True, False)]
    assert {(d.service, d.environment) for d in e.store.deployments()} == {
        ("user-service", "prod"),
        ("order-service", "prod"),
        ("user-service", "staging"),
        ("order-service", "staging"),
    }


# -- tag formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["sha7", "sha40", "release", "git-tag"])
def test_tag_formats_resolve_to_source_commits(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter], fmt: str
) -> None:
    source.repo.tag("v1", source.s1)
    source.repo.tag("v2", source.s3, annotated=True, when=T0 - 3 * HOUR)
    tag, pattern = {
        "sha7": (lambda sha, _: sha[:7], None),
        "sha40": (lambda sha, _: sha, None),
        "release": (lambda sha, _: f"release-{sha[:10]}", r"release-(?P<sha>[0-9a-f]{7,40})"),
        "git-tag": (lambda _, version: version, "refs/tags/{tag}"),
    }[fmt]
    svc = api_service(source, **({"tag_pattern": pattern} if pattern else {}))
    c1 = gitops.commit("Deploy api", T0, {API: values_yaml(tag(source.s1, "v1"))})
    c2 = gitops.commit("Release api", T0 + HOUR, {API: values_yaml(tag(source.s3, "v2"))})
    e = exporter(opened, tmp_path, gitops.url, services=svc)

    e.poll()

    assert e.deployments("api") == [
        (tag(source.s1, "v1"), T0, c1, source.s1, True, False),
        (tag(source.s3, "v2"), T0 + HOUR, c2, source.s3, False, False),
    ]
    assert e.change_shas("api") == [[], [source.s2, source.s3]]
    # lead = manifest commit time - change commit time
    assert e.leads("api") == {source.s2: float(6 * HOUR), source.s3: float(5 * HOUR)}
    assert e.store.unmatched_counts() == {}


def test_unresolved_tag_is_a_deployment_without_commit_counted_once(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy api", T0, {API: values_yaml(source.s1[:7])})
    c2 = gitops.commit("Deploy a local build", T0 + HOUR, {API: values_yaml("deadbee")})
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    assert e.poll().skips == 1

    assert e.deployments("api") == [
        (source.s1[:7], T0, c1, source.s1, True, False),
        ("deadbee", T0 + HOUR, c2, None, False, False),
    ]
    assert e.change_shas("api") == [[], []]
    assert e.store.unmatched_counts() == {("gitops", "unresolved_tag"): 1}

    assert e.poll().commits == 0
    e.restart()
    again = e.poll()
    assert (again.commits, again.skips) == (0, 0)
    assert e.store.unmatched_counts() == {("gitops", "unresolved_tag"): 1}

    # the next resolvable tag carries everything since the last resolved deployment
    c3 = gitops.commit("Deploy api", T0 + 2 * HOUR, {API: values_yaml(source.s3[:7])})
    e.poll()
    assert e.deployments("api")[-1] == (source.s3[:7], T0 + 2 * HOUR, c3, source.s3, False, False)
    assert e.change_shas("api") == [[], [], [source.s2, source.s3]]
    assert e.store.unmatched_counts() == {("gitops", "unresolved_tag"): 1}


# -- monorepo ------------------------------------------------------------------------------------


def test_monorepo_path_filters_pick_each_services_changes(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    repo = gitops
    a1 = repo.commit("a: start", T0, {"services/a/main.py": "1\n", "services/b/main.py": "1\n"})
    d1 = repo.commit("Deploy", T0 + MINUTE, {manifest("a"): values_yaml(a1[:7]), manifest("b"): values_yaml(a1[:7])})
    b1 = repo.commit("b: feature", T0 + 2 * MINUTE, {"services/b/main.py": "2\n"})
    a2 = repo.commit("a: feature", T0 + 3 * MINUTE, {"services/a/main.py": "2\n"})
    ab = repo.commit("both: shared rename", T0 + 4 * MINUTE, {"services/a/x.py": "x\n", "services/b/x.py": "x\n"})
    repo.commit("docs only", T0 + 5 * MINUTE, {"README.md": "readme\n"})
    head = repo.sha()
    d2 = repo.commit("Deploy a", T0 + 10 * MINUTE, {manifest("a"): values_yaml(head[:7])})
    d3 = repo.commit("Deploy b", T0 + 20 * MINUTE, {manifest("b"): values_yaml(head[:7])})
    services = [
        {"name": "a", "repo": repo.url, "paths": ["services/a/"]},
        {"name": "b", "repo": repo.url, "paths": ["services/b/"]},
    ]
    e = exporter(opened, tmp_path, repo.url, services=services)

    e.poll()

    assert e.deployments("a") == [
        (a1[:7], T0 + MINUTE, d1, a1, True, False),
        (head[:7], T0 + 10 * MINUTE, d2, head, False, False),
    ]
    assert e.deployments("b") == [
        (a1[:7], T0 + MINUTE, d1, a1, True, False),
        (head[:7], T0 + 20 * MINUTE, d3, head, False, False),
    ]
    assert e.change_shas("a") == [[], [a2, ab]]
    assert e.change_shas("b") == [[], [b1, ab]]
    assert e.leads("a") == {a2: float(7 * MINUTE), ab: float(6 * MINUTE)}
    assert e.leads("b") == {b1: float(18 * MINUTE), ab: float(16 * MINUTE)}


# -- baseline and once-per-environment -----------------------------------------------------------


def test_baseline_attributes_nothing_and_each_change_counts_once_per_environment(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    staging = manifest("api", "staging")
    gitops.commit("Bootstrap", T0, {API: values_yaml(source.s1[:7]), staging: values_yaml(source.s1[:7])})
    gitops.commit("Promote s2 to staging", T0 + HOUR, {staging: values_yaml(source.s2[:7])})
    gitops.commit("Release s2", T0 + 2 * HOUR, {API: values_yaml(source.s2[:7])})
    gitops.commit("Back to s1", T0 + 5 * HOUR, {API: values_yaml(source.s1[:7])})
    gitops.commit("Release s2 again", T0 + 8 * HOUR, {API: values_yaml(source.s2[:7])})
    gitops.commit("Promote s3 to staging", T0 + 9 * HOUR, {staging: values_yaml(source.s3[:7])})
    gitops.commit("Release s3", T0 + 10 * HOUR, {API: values_yaml(source.s3[:7])})
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    e.poll()

    prod = e.store.deployments("api", "prod")
    assert [(d.version[:7], d.baseline) for d in prod] == [
        (source.s1[:7], True),
        (source.s2[:7], False),
        (source.s1[:7], False),
        (source.s2[:7], False),
        (source.s3[:7], False),
    ]
    assert e.change_shas("api", "prod") == [[], [source.s2], [], [], [source.s3]]
    assert e.change_shas("api", "staging") == [[], [source.s2], [source.s3]]
    assert e.leads("api", "prod") == {source.s2: float(7 * HOUR), source.s3: float(14 * HOUR)}
    assert e.leads("api", "staging") == {source.s2: float(6 * HOUR), source.s3: float(13 * HOUR)}


# -- rollbacks -----------------------------------------------------------------------------------


def test_rollback_by_ancestry_fails_the_replaced_deployment(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    gitops.commit("Deploy api", T0, {API: values_yaml(source.s1[:7])})
    gitops.commit("Release api", T0 + HOUR, {API: values_yaml(source.s3[:7])})
    c3 = gitops.commit("Pin api while we look into latency", T0 + 4 * HOUR, {API: values_yaml(source.s2[:7])})
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    e.poll()

    d1, d2, d3 = e.store.deployments("api", "prod")
    assert [(d.version, d.rework) for d in (d1, d2, d3)] == [
        (source.s1[:7], False),
        (source.s3[:7], False),
        (source.s2[:7], True),
    ]
    assert d3.manifest_commit == c3
    [failure] = e.store.failures()
    assert (
        failure.service,
        failure.environment,
        failure.reason,
        failure.deployment_id,
        int(failure.started_at.timestamp()),
        int(failure.restored_at.timestamp()) if failure.restored_at else None,
        failure.restored_by,
        failure.detail,
    ) == ("api", "prod", FailureReason.ROLLBACK, d2.id, T0 + HOUR, T0 + 4 * HOUR, d3.id, "ancestor")
    assert e.change_shas("api") == [[], [source.s2, source.s3], []]


@pytest.mark.parametrize("message", ['Revert "Release api"', "Rollback api to the previous build", "roll back api"])
def test_rollback_by_revert_message_applies_at_any_age(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter], message: str
) -> None:
    gitops.commit("Deploy api", T0, {API: values_yaml("build-17")})
    gitops.commit("Release api", T0 + HOUR, {API: values_yaml("build-18")})
    gitops.commit(message, T0 + HOUR + 30, {API: values_yaml("build-19")})
    e = exporter(opened, tmp_path, gitops.url)

    e.poll()

    d1, d2, d3 = e.store.deployments("api")
    assert [d.rework for d in (d1, d2, d3)] == [False, False, True]
    [failure] = e.store.failures()
    assert failure.restored_at is not None
    assert (
        failure.reason,
        failure.deployment_id,
        int(failure.started_at.timestamp()),
        int(failure.restored_at.timestamp()),
        failure.restored_by,
        failure.detail,
    ) == (FailureReason.ROLLBACK, d2.id, T0 + HOUR, T0 + HOUR + 30, d3.id, "revert_message")


def test_rollback_to_a_lower_version(tmp_path: Path, gitops: GitRepo, opened: list[Exporter]) -> None:
    gitops.commit("Deploy api", T0, {API: values_yaml("v7")})
    gitops.commit("Release api", T0 + HOUR, {API: values_yaml("v9")})
    gitops.commit("api: v8 for now", T0 + 3 * HOUR, {API: values_yaml("v8")})
    gitops.commit("Release api", T0 + 5 * HOUR, {API: values_yaml("v10")})
    e = exporter(opened, tmp_path, gitops.url)

    e.poll()

    deps = e.store.deployments("api")
    assert [(d.version, d.rework) for d in deps] == [("v7", False), ("v9", False), ("v8", True), ("v10", False)]
    assert [
        (f.reason, f.deployment_id, int(f.started_at.timestamp()), f.restored_by, f.detail) for f in e.store.failures()
    ] == [(FailureReason.ROLLBACK, deps[1].id, T0 + HOUR, deps[2].id, "lower_version")]


def _flip_flop(gitops: GitRepo, source: Source, back_after: int) -> tuple[str, str]:
    gitops.commit("Deploy api", T0, {API: values_yaml(source.s1[:7])})
    gitops.commit("Release api", T0 + HOUR, {API: values_yaml(source.s2[:7])})
    _, m3 = gitops.bump_via_merge(
        "bump-s3", {API: values_yaml(source.s3[:7])}, T0 + 4 * HOUR, T0 + 5 * HOUR, "api to s3"
    )
    _, m2 = gitops.bump_via_merge(
        "bump-s2", {API: values_yaml(source.s2[:7])}, T0 + 4 * HOUR, T0 + 5 * HOUR + back_after, "api to s2"
    )
    return m3, m2


def test_out_of_order_merges_seconds_apart_are_not_a_rollback(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    m3, m2 = _flip_flop(gitops, source, back_after=30)
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    e.poll()

    assert [(d[0], d[1], d[2], d[5]) for d in e.deployments("api")][2:] == [
        (source.s3[:7], T0 + 5 * HOUR, m3, False),
        (source.s2[:7], T0 + 5 * HOUR + 30, m2, False),
    ]
    assert e.store.failures() == []
    assert e.change_shas("api") == [[], [source.s2], [source.s3], []]


def test_the_same_back_step_hours_later_is_a_rollback(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    m3, m2 = _flip_flop(gitops, source, back_after=2 * HOUR)
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source))

    e.poll()

    deps = e.store.deployments("api")
    assert [(d.manifest_commit, d.rework) for d in deps[2:]] == [(m3, False), (m2, True)]
    assert [(f.deployment_id, int(f.started_at.timestamp()), f.restored_by, f.detail) for f in e.store.failures()] == [
        (deps[2].id, T0 + 5 * HOUR, deps[3].id, "ancestor")
    ]


def test_rollback_min_age_is_configurable(
    tmp_path: Path, gitops: GitRepo, source: Source, opened: list[Exporter]
) -> None:
    _flip_flop(gitops, source, back_after=30)
    e = exporter(opened, tmp_path, gitops.url, services=api_service(source), rollback_min_age="10s")

    e.poll()

    deps = e.store.deployments("api")
    assert [(f.deployment_id, f.restored_by, f.detail) for f in e.store.failures()] == [
        (deps[2].id, deps[3].id, "ancestor")
    ]


# -- force-push ----------------------------------------------------------------------------------


def test_force_push_relinks_reapplied_values_and_keeps_dropped_deployments(
    tmp_path: Path, opened: list[Exporter]
) -> None:
    url = bare_remote(tmp_path / "remote.git")
    work = GitRepo(tmp_path / "work")
    work.add_remote("origin", url)
    c1 = work.commit("Deploy api", T0, {API: values_yaml("v1")})
    c2 = work.commit("Release v2", T0 + HOUR, {API: values_yaml("v2")})
    c3 = work.commit("Release v3", T0 + 2 * HOUR, {API: values_yaml("v3")})
    c4 = work.commit("Release v4", T0 + 3 * HOUR, {API: values_yaml("v4")})
    work.push()
    e = exporter(opened, tmp_path, url)

    first = e.poll()

    assert (first.commits, first.deployments, first.force_push) == (4, 4, False)
    assert (tmp_path / "data" / "mirrors").is_dir()
    before = e.store.deployments()
    assert [d.manifest_commit for d in before] == [c1, c2, c3, c4]

    work.reset_hard(c2)
    c3b = work.commit("Release v3 (re-applied)", T0 + 2 * HOUR + 10 * MINUTE, {API: values_yaml("v3")})
    c5 = work.commit("Release v5", T0 + 4 * HOUR, {API: values_yaml("v5")})
    work.push(force=True)
    e.restart()

    second = e.poll()

    assert (second.commits, second.deployments, second.force_push) == (2, 1, True)
    after = e.store.deployments()
    assert [d.id for d in after[:4]] == [d.id for d in before]
    assert e.deployments() == [
        ("v1", T0, c1, None, True, False),
        ("v2", T0 + HOUR, c2, None, False, False),
        ("v3", T0 + 2 * HOUR, c3b, None, False, False),  # re-linked, time of the first sighting
        ("v4", T0 + 3 * HOUR, c4, None, False, False),  # dropped from history, but it happened
        ("v5", T0 + 4 * HOUR, c5, None, False, False),
    ]
    assert e.store.failures() == []

    rows = e.deployments()
    third = e.poll()
    assert (third.commits, third.deployments, third.force_push) == (0, 0, False)
    assert e.deployments() == rows


# -- bad inputs ----------------------------------------------------------------------------------


def test_malformed_yaml_and_missing_key_are_counted_and_the_source_goes_on(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy", T0, {API: values_yaml("v1"), manifest("web"): values_yaml("w1")})
    gitops.commit("Oops", T0 + HOUR, {API: "image:\n  tag: [v2\n  repository: {\n"})
    gitops.commit("Restructure", T0 + 2 * HOUR, {API: "image:\n  repository: registry.example/app\n"})
    c4 = gitops.commit("Fix api, bump web", T0 + 3 * HOUR, {API: values_yaml("v2"), manifest("web"): values_yaml("w2")})
    e = exporter(opened, tmp_path, gitops.url)

    with capture_logs() as logs:
        result = e.poll()

    assert (result.commits, result.deployments, result.skips) == (4, 4, 2)
    assert e.store.unmatched_counts() == {("gitops", "malformed_manifest"): 1, ("gitops", "missing_key"): 1}
    skipped = [(entry["reason"], entry["log_level"]) for entry in logs if entry["event"] == "gitops.manifest_skipped"]
    assert skipped == [("malformed_manifest", "warning"), ("missing_key", "warning")]
    assert e.deployments("api") == [("v1", T0, c1, None, True, False), ("v2", T0 + 3 * HOUR, c4, None, False, False)]
    assert e.deployments("web") == [("w1", T0, c1, None, True, False), ("w2", T0 + 3 * HOUR, c4, None, False, False)]

    e.restart()
    assert e.poll().skips == 0
    assert e.store.unmatched_counts() == {("gitops", "malformed_manifest"): 1, ("gitops", "missing_key"): 1}


# -- incremental polls ---------------------------------------------------------------------------


def test_incremental_polls_pick_up_new_commits_exactly_once(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy", T0, {API: values_yaml("v1")})
    c2 = gitops.commit("Release", T0 + HOUR, {API: values_yaml("v2")})
    e = exporter(opened, tmp_path, gitops.url)

    assert (e.poll().deployments, e.store.cursor(f"gitops:{e.cfg.gitops[0].key}")) == (2, c2)
    rows = e.deployments()
    idle = e.poll()
    assert (idle.commits, idle.deployments) == (0, 0)
    assert e.deployments() == rows

    gitops.commit("Docs", T0 + 2 * HOUR, {"README.md": "hi\n"})
    c4 = gitops.commit("Release", T0 + 3 * HOUR, {API: values_yaml("v3")})
    c5 = gitops.commit("Release web", T0 + 4 * HOUR, {manifest("web"): values_yaml("w1")})
    new = e.poll()

    assert (new.commits, new.deployments) == (2, 2)
    assert e.deployments() == [
        ("v1", T0, c1, None, True, False),
        ("v2", T0 + HOUR, c2, None, False, False),
        ("v3", T0 + 3 * HOUR, c4, None, False, False),
        ("w1", T0 + 4 * HOUR, c5, None, True, False),
    ]
    assert e.poll().commits == 0
    assert len(e.store.deployments()) == 4


def test_incremental_polls_of_a_remote_after_a_restart(tmp_path: Path, opened: list[Exporter]) -> None:
    url = bare_remote(tmp_path / "remote.git")
    work = GitRepo(tmp_path / "work")
    work.add_remote("origin", url)
    c1 = work.commit("Deploy", T0, {API: values_yaml("v1")})
    work.push()
    e = exporter(opened, tmp_path, url)
    assert e.poll().deployments == 1

    c2 = work.commit("Release", T0 + HOUR, {API: values_yaml("v2")})
    work.push()
    e.restart()  # a new process: the mirror on disk is older than the remote

    assert e.poll().deployments == 1
    assert e.deployments() == [("v1", T0, c1, None, True, False), ("v2", T0 + HOUR, c2, None, False, False)]
    assert e.poll().commits == 0


def test_a_repository_replaced_wholesale_keeps_polling(tmp_path: Path, opened: list[Exporter]) -> None:
    """A history rewritten with no merge base (a repository re-created in place) drops the
    commits earlier deployments point at. The poll must go on: a vanished commit bounds no
    change range and is nobody's ancestor, so the next deployment carries no changes."""
    repo = GitRepo(tmp_path / "mono")
    code1 = repo.commit("api: first", T0, {"app/a.txt": "1\n"})
    repo.commit("Deploy api", T0 + HOUR, {API: values_yaml(code1)})
    services = [{"name": "api", "repo": str(repo.path), "paths": ["app/"]}]
    e = exporter(opened, tmp_path, str(repo.path), services=services)
    assert e.poll().deployments == 1

    import shutil

    shutil.rmtree(repo.path)
    fresh = GitRepo(tmp_path / "mono")
    code2 = fresh.commit("api: rewritten", T0 + 2 * HOUR, {"app/b.txt": "2\n"})
    deploy = fresh.commit("Deploy api again", T0 + 3 * HOUR, {API: values_yaml(code2)})

    result = e.poll()

    assert (result.force_push, result.deployments) == (True, 1)
    rows = e.deployments("api")
    assert rows[-1] == (code2, T0 + 3 * HOUR, deploy, code2, False, False)
    assert e.change_shas("api")[-1] == []
    assert e.store.failures() == []
