# SPDX-License-Identifier: Apache-2.0
"""One real deployment is one deployment when both the GitOps source and Argo CD see it.

Argo CD's revision is a commit of the GitOps repository; the GitOps source knows which manifest
commit set which tag. Both orders are tested (Argo first, GitOps first), plus a redeploy of the same
revision, which is a second deployment of the same version, and image-based versions when only
Argo CD is configured.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.core.correlate import image_version
from exporter.ingest.argocd import ArgoIngester, map_app
from exporter.ingest.repos import Repos
from exporter.sources.argocd.apps import App, parse_app
from tests.support.argocd import APPLICATION
from tests.support.argocd_apps import SERVICE, argo_app
from tests.support.gitrepo import Exporter, GitRepo, manifest, values_yaml

T0 = 1_780_000_000  # fixed commit times


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GitRepo, Exporter, ArgoIngester, list[str]]]:
    repo = GitRepo(tmp_path / "gitops")
    shas = [
        repo.commit("Update image tags to aaaaaaa", T0, {manifest(SERVICE): values_yaml("aaaaaaa")}),
        repo.commit("Promote to production: bbbbbbb", T0 + 600, {manifest(SERVICE): values_yaml("bbbbbbb")}),
    ]
    exp = Exporter(tmp_path, repo.url, argocd={"enabled": True, "namespaces": ["argocd"]})
    repos = Repos(exp.cfg)
    yield repo, exp, ArgoIngester(exp.cfg, exp.store, repos), shas
    repos.close()
    exp.close()


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, tz=UTC)


def test_gitops_first_then_argo_is_one_deployment_with_argos_time(setup: Any) -> None:
    _repo, exp, argo, shas = setup
    exp.poll()
    assert [v for v, *_ in exp.deployments()] == ["aaaaaaa", "bbbbbbb"]
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, shas[1], at(700))]))
    rows = exp.deployments()
    assert [(v, t) for v, t, *_ in rows] == [("aaaaaaa", T0 + 90), ("bbbbbbb", T0 + 700)]
    assert {d.source.value for d in exp.store.deployments()} == {"argocd"}


def test_argo_first_then_gitops_is_one_deployment_with_argos_time(setup: Any) -> None:
    _repo, exp, argo, shas = setup
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, shas[1], at(700))]))
    assert len(exp.deployments()) == 2
    exp.poll()
    rows = exp.deployments()
    assert [(v, t, mc) for v, t, mc, *_ in rows] == [
        ("aaaaaaa", T0 + 90, shas[0]),
        ("bbbbbbb", T0 + 700, shas[1]),
    ]


def test_a_redeploy_of_the_same_revision_is_another_deployment_of_the_same_version(setup: Any) -> None:
    _repo, exp, argo, shas = setup
    exp.poll()
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, shas[1], at(700)), (3, shas[1], at(900))]))
    assert [(v, t) for v, t, *_ in exp.deployments()] == [
        ("aaaaaaa", T0 + 90),
        ("bbbbbbb", T0 + 700),
        ("bbbbbbb", T0 + 900),
    ]
    # the same observation again, and a relist, add nothing
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, shas[1], at(700)), (3, shas[1], at(900))]))
    argo.listed([argo_app("u1", [(2, shas[1], at(700)), (3, shas[1], at(900))])], namespace=None)
    assert len(exp.deployments()) == 3


def test_argo_only_resolves_versions_from_images(tmp_path: Path) -> None:
    from exporter.config.loading import parse
    from exporter.store import Store

    cfg = parse(
        {
            "store": {"path": str(tmp_path / "d.db")},
            "argocd": {"enabled": True, "image_pattern": r"/(?P<service>[^/:]+):(?P<tag>[^@]+)$"},
        },
        environ={},
    )
    store = Store(cfg.store_path)
    try:
        app = argo_app("u9", [(5, "abc", at(0))], images=["registry.example/shop/shop-api:1.4.2", "redis:7"])
        ArgoIngester(cfg, store).apply(app)
        assert [d.version for d in store.deployments()] == ["1.4.2"]
    finally:
        store.close()


def test_image_version_rules() -> None:
    pattern = __import__("re").compile(r"/(?P<service>[^/:]+):(?P<tag>[^@]+)$")
    assert image_version(["r.io/a/shop-api:v2", "r.io/a/cart:v9"], "shop-api", pattern) == "v2"
    # a rollout in progress (old and new pods in summary.images) is not one version
    assert image_version(["r.io/a/shop-api:v2", "r.io/a/shop-api:v3"], "shop-api", pattern) is None
    assert image_version(["r.io/a/shop-api:v2"], "shop-api", None) == "v2"
    assert image_version(["nginx:latest"], "shop-api", None) is None


def test_mapping_rules() -> None:
    from exporter.config.loading import parse

    cfg = parse(
        {
            "argocd": {
                "mapping": {
                    "apps": {"legacy": {"service": "api", "environment": "prod"}},
                    "labels": {"service": "app.kubernetes.io/name"},
                    "name_templates": ["{service}-{environment}"],
                    "destination_namespace": "minishop-{environment}",
                }
            }
        },
        environ={},
    )
    base = argo_app("u", [(1, "r", at(0))])

    def with_(**kw: Any) -> App:
        return App(**{**{f: getattr(base, f) for f in App.__dataclass_fields__}, **kw})

    m = cfg.argocd.mapping
    assert map_app(with_(name="legacy"), m) == ("api", "prod")
    # Without the service label (our fixture carries one), the name template names the service too.
    assert map_app(with_(name="user-service-staging", labels={}), m) == ("user-service", "staging")
    assert map_app(
        with_(name="x", labels={"app.kubernetes.io/name": "cart"}, destination_namespace="minishop-dev"), m
    ) == (
        "cart",
        "dev",
    )
    assert map_app(with_(name="x", labels={}, destination_namespace="other"), m) is None


def test_multi_source_app_takes_the_configured_repos_revision(tmp_path: Path) -> None:
    from exporter.config.loading import parse
    from exporter.store import Store

    gitops_url = "https://git.example.com/minishop-gitops.git"
    cfg = parse(
        {"store": {"path": str(tmp_path / "d.db")}, "argocd": {"enabled": True, "source_repo": gitops_url}},
        environ={},
    )
    obj: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    obj["metadata"].update(name=f"{SERVICE}-prod", uid="multi")
    entry = copy.deepcopy(obj["status"]["history"][-1])
    entry.pop("revision")
    entry.pop("source")
    entry.update(
        id=1,
        revisions=["9.1.0", "c0ffee0000000000000000000000000000000000"],
        sources=[{"repoURL": "oci://charts.example.com/shop", "chart": "shop"}, {"repoURL": gitops_url + "/"}],
    )
    obj["status"]["history"] = [entry]
    app = parse_app(obj)
    assert app is not None
    assert app.history[0].revision_for(gitops_url) == "c0ffee0000000000000000000000000000000000"
    store = Store(cfg.store_path)
    try:
        ArgoIngester(cfg, store).apply(app)
        [dep] = store.deployments()
        assert dep.manifest_commit == "c0ffee0000000000000000000000000000000000"
    finally:
        store.close()


def test_gitops_adopts_the_successful_sync_not_the_failed_attempt(setup: Any) -> None:
    _repo, exp, argo, shas = setup
    failed = argo_app("u1", [(1, shas[0], at(90))])
    op = failed.operation
    assert op is not None
    attempt = dataclasses.replace(
        op, phase="Failed", started_at=at(650), finished_at=at(660), revision=shas[1], retry_count=2, images=()
    )
    argo.apply(dataclasses.replace(failed, operation=attempt))
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, shas[1], at(700))]))
    exp.poll()
    rows = [(v, t) for v, t, *_ in exp.deployments()]
    assert rows == [("aaaaaaa", T0 + 90), (shas[1], T0 + 650), ("bbbbbbb", T0 + 700)]
    [failure] = exp.store.failures()
    assert failure.reason.value == "sync_failed"
    assert failure.deployment_id == exp.store.deployments()[1].id
    assert failure.restored_at is not None and failure.restored_by == exp.store.deployments()[2].id


def test_argo_syncing_a_later_commit_is_the_deployment_of_the_value_in_effect(setup: Any) -> None:
    """Argo CD records the commit it synced: often a later one that touched only other services."""
    repo, exp, argo, shas = setup
    other = repo.commit("Update image tags to ccccccc", T0 + 620, {manifest("cart"): values_yaml("ccccccc")})
    exp.poll()
    assert len(exp.deployments(SERVICE)) == 2
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, other, at(700))]))
    assert [(v, t) for v, t, *_ in exp.deployments(SERVICE)] == [("aaaaaaa", T0 + 90), ("bbbbbbb", T0 + 700)]
    # a redeploy at the same later commit is another deployment of the version in effect
    argo.apply(argo_app("u1", [(1, shas[0], at(90)), (2, other, at(700)), (3, other, at(800))]))
    assert [(v, t) for v, t, *_ in exp.deployments(SERVICE)] == [
        ("aaaaaaa", T0 + 90),
        ("bbbbbbb", T0 + 700),
        ("bbbbbbb", T0 + 800),
    ]
