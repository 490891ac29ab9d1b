# SPDX-License-Identifier: Apache-2.0
"""Which values a touched manifest asserts, on real histories: one pair's tag in two files at once
(a kustomization and a helmfile ``.env`` file, both maintained, each stale in turn), moves of a
stale file, and a file that matches several times for one pair.

The rule (docs/semantics.md): a file asserts a pair's value when that value changed in the file,
or the file appeared with it; an unchanged line of a touched file asserts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.gitrepo import HOUR, T0, Exporter, GitRepo

KUST = "env/prod/kustomization.yaml"
DOTENV = "helmfile/overrides/prod.env"
KUST_RULE = {
    "path": "env/{environment}/kustomization.yaml",
    "regex": r"- name: registry\.example/(?P<service>[a-z]+)\n\s+newTag: (?P<tag>\S+)",
}
DOTENV_RULE = {"path": "helmfile/overrides/{environment}.env", "regex": r"^(?P<service>[A-Z]+)_TAG=(?P<tag>\S+)"}
MOVED_RULE = {"path": "overlays/{environment}/kustomization.yaml", "regex": KUST_RULE["regex"]}


def kustomization(api: str, web: str) -> str:
    return (
        "resources:\n- ../../base\nimages:\n"
        f"- name: registry.example/api\n  newTag: {api}\n"
        f"- name: registry.example/web\n  newTag: {web}\n"
    )


def dotenv(api: str, web: str) -> str:
    return f"# helmfile overrides\nAPI_TAG={api}\nWEB_TAG={web}\n"


@pytest.fixture
def gitops(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "gitops")


@pytest.fixture
def opened() -> Iterator[list[Exporter]]:
    exporters: list[Exporter] = []
    yield exporters
    for e in exporters:
        e.close()


def exporter(opened: list[Exporter], tmp_path: Path, repo: str, rules: list[dict[str, str]]) -> Exporter:
    e = Exporter(tmp_path, repo, manifests=rules)
    opened.append(e)
    return e


def versions(e: Exporter, service: str) -> list[tuple[str, int, str | None]]:
    return [(version, at, manifest_commit) for version, at, manifest_commit, *_ in e.deployments(service, "prod")]


# -- one pair's tag in two files -------------------------------------------------------------------


def test_two_files_each_stale_in_turn_deploy_only_what_changed_in_a_file(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy with kustomize", T0, {KUST: kustomization("a1", "w1")})
    # the .env file appears with a new api tag (it asserts it) and web's current one (no change)
    c2 = gitops.commit("Start the helmfile overrides", T0 + HOUR, {DOTENV: dotenv("a2", "w1")})
    # the kustomization is now stale for api: touching it for web must not flip api back to a1
    c3 = gitops.commit("web w2 (kustomize)", T0 + 2 * HOUR, {KUST: kustomization("a1", "w2")})
    gitops.commit("web w2 (helmfile)", T0 + 3 * HOUR, {DOTENV: dotenv("a2", "w2")})
    # a genuine api bump in the stale file: now the .env file is the stale one
    c5 = gitops.commit("api a3 (kustomize)", T0 + 4 * HOUR, {KUST: kustomization("a3", "w2")})
    c6 = gitops.commit("web w3 (helmfile)", T0 + 5 * HOUR, {DOTENV: dotenv("a2", "w3")})
    c7 = gitops.commit("web w4 (kustomize)", T0 + 6 * HOUR, {KUST: kustomization("a3", "w4")})
    c8 = gitops.commit("api a4 (helmfile)", T0 + 7 * HOUR, {DOTENV: dotenv("a4", "w4")})
    c9 = gitops.commit("web w5 (kustomize)", T0 + 8 * HOUR, {KUST: kustomization("a3", "w5")})
    e = exporter(opened, tmp_path, gitops.url, [KUST_RULE, DOTENV_RULE])

    result = e.poll()

    assert (result.commits, result.deployments, result.skips) == (9, 9, 0)
    assert versions(e, "api") == [
        ("a1", T0, c1),
        ("a2", T0 + HOUR, c2),
        ("a3", T0 + 4 * HOUR, c5),
        ("a4", T0 + 7 * HOUR, c8),
    ]
    assert versions(e, "web") == [
        ("w1", T0, c1),
        ("w2", T0 + 2 * HOUR, c3),
        ("w3", T0 + 5 * HOUR, c6),
        ("w4", T0 + 6 * HOUR, c7),
        ("w5", T0 + 8 * HOUR, c9),
    ]
    assert e.store.failures() == []
    assert e.store.unmatched_counts() == {}


def test_the_same_history_read_poll_by_poll_gives_the_same_deployments(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    """Each poll starts a new reader: the old side of a touched file is read from git, not
    remembered from an earlier poll."""
    gitops.commit("Deploy with kustomize", T0, {KUST: kustomization("a1", "w1")})
    gitops.commit("Start the helmfile overrides", T0 + HOUR, {DOTENV: dotenv("a2", "w1")})
    e = exporter(opened, tmp_path, gitops.url, [KUST_RULE, DOTENV_RULE])
    assert e.poll().deployments == 3
    e.restart()

    gitops.commit("web w2 (kustomize)", T0 + 2 * HOUR, {KUST: kustomization("a1", "w2")})
    assert e.poll().deployments == 1
    gitops.commit("web w3 (helmfile)", T0 + 3 * HOUR, {DOTENV: dotenv("a2", "w3")})
    assert e.poll().deployments == 1

    assert [v for v, *_ in versions(e, "api")] == ["a1", "a2"]
    assert [v for v, *_ in versions(e, "web")] == ["w1", "w2", "w3"]


def test_moving_the_stale_file_deploys_nothing_but_adding_a_file_asserts_its_values(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy with kustomize", T0, {KUST: kustomization("a1", "w1")})
    c2 = gitops.commit("api a2 (helmfile)", T0 + HOUR, {DOTENV: dotenv("a2", "w1")})
    moved = "overlays/prod/kustomization.yaml"
    gitops.move(KUST, moved, T0 + 2 * HOUR, "Move the kustomization to overlays/")
    # a move with an edit for another service: api's stale value is only carried over
    c4 = gitops.commit("Move back to env/, web w2", T0 + 3 * HOUR, {moved: None, KUST: kustomization("a1", "w2")})
    e = exporter(opened, tmp_path, gitops.url, [KUST_RULE, DOTENV_RULE, MOVED_RULE])

    result = e.poll()

    assert (result.commits, result.deployments) == (4, 4)
    assert versions(e, "api") == [("a1", T0, c1), ("a2", T0 + HOUR, c2)]
    assert versions(e, "web") == [("w1", T0, c1), ("w2", T0 + 3 * HOUR, c4)]
    assert e.store.failures() == []

    # a file that appears (nothing deleted beside it) declares what it holds, even an older tag
    c5 = gitops.commit("Add the overlay", T0 + 4 * HOUR, {moved: kustomization("a1", "w2")})
    assert e.poll().deployments == 1
    assert versions(e, "api")[-1] == ("a1", T0 + 4 * HOUR, c5)


# -- one file, several matches for one pair ---------------------------------------------------------

TWO_IMAGES_RULE = {
    "path": "env/{environment}/kustomization.yaml",
    "regex": r"newTag: (?P<tag>\S+)",
    "service": "argocd",
}


def two_images(current: str, stale: str) -> str:
    return (
        f"images:\n- name: quay.io/argoproj/argocd\n  newTag: {current}\n- name: argoproj/argocd\n  newTag: {stale}\n"
    )


def test_the_first_match_wins_and_an_ambiguous_file_is_counted_and_logged_once(
    tmp_path: Path, gitops: GitRepo, opened: list[Exporter]
) -> None:
    c1 = gitops.commit("Deploy argocd", T0, {KUST: two_images("v2.9.0", "v2.9.0")})
    c2 = gitops.commit("argocd v2.10.0", T0 + HOUR, {KUST: two_images("v2.10.0", "v2.9.0")})
    c3 = gitops.commit("argocd v2.11.0", T0 + 2 * HOUR, {KUST: two_images("v2.11.0", "v2.9.0")})
    e = exporter(opened, tmp_path, gitops.url, [TWO_IMAGES_RULE])

    with capture_logs() as logs:
        result = e.poll()

    assert versions(e, "argocd") == [("v2.9.0", T0, c1), ("v2.10.0", T0 + HOUR, c2), ("v2.11.0", T0 + 2 * HOUR, c3)]
    assert e.store.unmatched_counts() == {("gitops", "ambiguous_value"): 2}
    assert result.skips == 2
    ambiguous = [(entry["log_level"], entry["where"]) for entry in logs if entry["event"] == "gitops.ambiguous_value"]
    assert ambiguous == [
        ("warning", f"{KUST} at {c2[:12]}: argocd prod is 'v2.10.0' (first match, used), then 'v2.9.0'"),
        ("warning", f"{KUST} at {c3[:12]}: argocd prod is 'v2.11.0' (first match, used), then 'v2.9.0'"),
    ]

    # the same blob read again (a restart replays nothing, a revert re-reads it): still counted once
    c4 = gitops.commit("back to v2.10.0", T0 + 3 * HOUR, {KUST: two_images("v2.10.0", "v2.9.0")})
    e.restart()
    with capture_logs() as logs:
        again = e.poll()
    assert (again.deployments, again.skips) == (1, 0)
    assert versions(e, "argocd")[-1] == ("v2.10.0", T0 + 3 * HOUR, c4)
    assert [entry for entry in logs if entry["event"] == "gitops.ambiguous_value"] == []
    assert e.store.unmatched_counts() == {("gitops", "ambiguous_value"): 2}
