# SPDX-License-Identifier: Apache-2.0
"""The multi-source rule (``ingest.unify``) on a real store, one condition at a time: which stored
row a GitOps commit, an Argo CD sync or a GitHub deployment adopts, with the time window's bounds
and the tie-breaks. The end-to-end cases are in ``test_unify.py`` and ``test_github_deployments.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.ingest import unify
from exporter.ingest.unify import CommitMatch
from exporter.keys import gitops_natural_key
from exporter.model import DeploymentSource, ManifestValue, utc
from exporter.store import GitHubDeploymentRow, Store, Tx

PAIR = ("shop-api", "prod")
SHA = "0123456789abcdef0123456789abcdef01234567"
TAG_PATTERN = r"sha-(?P<sha>[0-9a-f]{7,40})"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "dora.db")
    yield s
    s.close()


def _row(
    tx: Tx,
    key: str,
    *,
    at: float,
    source: DeploymentSource,
    manifest_repo: str | None = None,
    manifest_commit: str | None = None,
    commit: str | None = None,
    version: str = "v1",
) -> int:
    dep_id, inserted = tx.add_deployment(
        natural_key=key, service=PAIR[0], environment=PAIR[1], version=version, deployed_at=at, source=source,
        manifest_repo=manifest_repo, manifest_commit=manifest_commit, commit=commit, message="", baseline=False,
    )  # fmt: skip
    assert inserted
    return dep_id


def _value(manifest_commit: str, service: str = PAIR[0]) -> ManifestValue:
    """A GitOps value set by ``manifest_commit`` (only the pair and commit matter to the rule)."""
    return ManifestValue(service, PAIR[1], "v1", "values.yaml", manifest_commit, utc(0), "")


def _synced(tx: Tx, dep_id: int, history_id: int, at: float) -> None:
    tx.add_argocd_history("uid-1", history_id, "shop-api-prod", PAIR, "m1", at, at, dep_id)


def _github(tx: Tx, dep_id: int, gid: int, at: float) -> None:
    tx.upsert_github_deployment(GitHubDeploymentRow("o/r", gid, *PAIR, SHA, at, "success", True, dep_id))


def test_gitops_adopts_the_earliest_synced_argocd_row_of_its_manifest_commit(store: Store) -> None:
    with store.transaction() as tx:
        unsynced = _row(tx, "argocd:a", at=50.0, source=DeploymentSource.ARGOCD, manifest_commit="m1")
        later = _row(tx, "argocd:b", at=300.0, source=DeploymentSource.ARGOCD, manifest_commit="m1")
        earlier = _row(tx, "argocd:c", at=200.0, source=DeploymentSource.ARGOCD, manifest_commit="m1")
        _row(tx, "argocd:d", at=100.0, source=DeploymentSource.ARGOCD, manifest_commit="m2")
        _synced(tx, later, 2, 300.0)
        _synced(tx, earlier, 3, 200.0)
        found = unify.row_for_gitops(tx, _value("m1"))
        assert found is not None and found.id == earlier and unsynced != earlier
        assert unify.row_for_gitops(tx, _value("m2")) is None  # never synced: a failed attempt
        assert unify.row_for_gitops(tx, _value("m1", service="other")) is None
        tx.adopt_deployment(earlier, "v2", "gitops-repo", None, "", "m1")  # explained now
        found = unify.row_for_gitops(tx, _value("m1"))
        assert found is not None and found.id == later


def test_gitops_adopts_a_github_row_of_its_commit_within_the_window_bounds_included(store: Store) -> None:
    with store.transaction() as tx:
        gh = _row(tx, "github-deployment:o/r:1", at=1000.0, source=DeploymentSource.GITHUB, commit=SHA)
        _github(tx, gh, 1, 1000.0)
        assert unify.row_for_gitops(tx, _value("m1")) is None  # no SHA: the GitHub source is off
        found = unify.row_for_gitops(
            tx, _value("m1"), CommitMatch(SHA[:7], 1600.0, 600.0)
        )  # an abbreviated SHA, at the bound
        assert found is not None and found.id == gh
        assert unify.row_for_gitops(tx, _value("m1"), CommitMatch(SHA, 1600.5, 600.0)) is None  # just outside
        assert unify.row_for_gitops(tx, _value("m1"), CommitMatch("fedcba9", 1000.0, 600.0)) is None  # another commit
        unclaimed = _row(tx, "github-deployment:o/r:2", at=990.0, source=DeploymentSource.GITHUB, commit=SHA)
        assert unclaimed != gh  # no GitHub deployment row claims it: not a success
        found = unify.row_for_gitops(tx, _value("m1"), CommitMatch(SHA, 1000.0, 600.0))
        assert found is not None and found.id == gh


def test_the_earliest_of_an_argocd_and_a_github_row_wins(store: Store) -> None:
    with store.transaction() as tx:
        argo = _row(tx, "argocd:a", at=1010.0, source=DeploymentSource.ARGOCD, manifest_commit="m1")
        _synced(tx, argo, 1, 1010.0)
        gh = _row(tx, "github-deployment:o/r:1", at=1005.0, source=DeploymentSource.GITHUB, commit=SHA)
        _github(tx, gh, 1, 1005.0)
        found = unify.row_for_gitops(tx, _value("m1"), CommitMatch(SHA, 1000.0, 60.0))
        assert found is not None and found.id == gh


def test_an_argocd_sync_adopts_the_oldest_row_of_its_commit_no_entry_is_yet(store: Store) -> None:
    with store.transaction() as tx:
        first = _row(
            tx, gitops_natural_key("r1", "m1", *PAIR), at=100.0, source=DeploymentSource.GITOPS,
            manifest_repo="r1", manifest_commit="m1", version="v-first",
        )  # fmt: skip
        second = _row(
            tx, gitops_natural_key("r2", "m1", *PAIR), at=100.0, source=DeploymentSource.GITOPS,
            manifest_repo="r2", manifest_commit="m1", version="v-second",
        )  # fmt: skip
        found = unify.row_for_argocd_sync(tx, PAIR, "m1", repo_keys=["r1", "r2"])
        assert found is not None and found.id == first
        _synced(tx, first, 1, 150.0)
        found = unify.row_for_argocd_sync(tx, PAIR, "m1", repo_keys=["r1", "r2"])
        assert found is not None and found.id == second
        assert unify.gitops_version(tx, PAIR, "m1", repo_keys=["r1", "r2"]) == "v-first"  # claimed or not
        assert unify.row_for_argocd_sync(tx, PAIR, "m1", repo_keys=["r3"]) is None


def test_github_adopts_the_closest_explained_row_of_its_commit(store: Store) -> None:
    with store.transaction() as tx:
        far = _row(tx, "g:far", at=900.0, source=DeploymentSource.GITOPS, manifest_repo="r1", commit=SHA)
        near = _row(tx, "g:near", at=1050.0, source=DeploymentSource.GITOPS, manifest_repo="r1", commit=SHA)
        tie = _row(tx, "g:tie", at=950.0, source=DeploymentSource.GITOPS, manifest_repo="r1", commit=SHA)
        _row(tx, "a:nearest", at=1001.0, source=DeploymentSource.ARGOCD, commit=SHA)  # not explained by GitOps
        found = unify.row_for_github(tx, PAIR, sha=SHA, at=1000.0, tolerance=100.0, tag_pattern=None)
        assert found is not None and found.id == near  # 50 s away as ``tie`` is, and the older row
        _github(tx, near, 1, 1050.0)  # claimed now: the next closest
        found = unify.row_for_github(tx, PAIR, sha=SHA, at=1000.0, tolerance=100.0, tag_pattern=None)
        assert found is not None and found.id == tie
        _github(tx, tie, 2, 950.0)
        found = unify.row_for_github(tx, PAIR, sha=SHA, at=1000.0, tolerance=100.0, tag_pattern=None)
        assert found is not None and found.id == far  # 100 s away: the window's bound is in it
        assert unify.row_for_github(tx, PAIR, sha="fedcba9876", at=1000.0, tolerance=100.0, tag_pattern=None) is None


def test_github_matches_an_unresolved_row_by_the_sha_its_tag_carries(store: Store) -> None:
    with store.transaction() as tx:
        row = _row(
            tx, "g:tag", at=1000.0, source=DeploymentSource.GITOPS, manifest_repo="r1", version=f"sha-{SHA[:10]}"
        )
        assert unify.row_for_github(tx, PAIR, sha=SHA, at=1000.0, tolerance=10.0, tag_pattern=None) is None
        found = unify.row_for_github(tx, PAIR, sha=SHA, at=1000.0, tolerance=10.0, tag_pattern=TAG_PATTERN)
        assert found is not None and found.id == row
