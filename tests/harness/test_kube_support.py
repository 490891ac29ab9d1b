# SPDX-License-Identifier: Apache-2.0
"""The real kube-apiserver support works as the exporter's Argo CD watcher will need it to.

Why: these are the behaviours a fake API server gets wrong — CRD storage of ``status``, watch events
from a resourceVersion, ``410 Gone`` after etcd compaction, data surviving an apiserver restart, RBAC.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.support.argocd import APPLICATION
from tests.support.kube import KubeCluster, wait_until
from tests.support.kube_fixtures import (
    APPLICATION_CRD,
    find_kube_apiserver,
    kube_cluster,  # noqa: F401
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
NAMESPACE = "argocd"
# Owned by the server (or by controllers this cluster does not run): a create must not carry them.
SERVER_OWNED_METADATA = (
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
)
WATCH_TIMEOUT_SECONDS = 10


def application_from_fixture(name: str) -> dict[str, Any]:
    """Our fixture Application, renamed into our namespace, minus server-owned fields."""
    app: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    for key in SERVER_OWNED_METADATA:
        app["metadata"].pop(key, None)
    app["metadata"]["name"] = name
    app["metadata"]["namespace"] = NAMESPACE
    return app


def unique_name(prefix: str) -> str:
    """Tests share one session cluster, so each uses its own objects."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def apps(kube_cluster: KubeCluster) -> Iterator[client.CustomObjectsApi]:  # noqa: F811
    """A CustomObjectsApi built from the cluster's kubeconfig, with the ``argocd`` namespace present."""
    kube_cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")
    with kube_cluster.api_client() as api_client:
        yield client.CustomObjectsApi(api_client)


def create_app(apps: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    created = apps.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, application_from_fixture(name))
    return cast(dict[str, Any], created)


def get_app(apps: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return cast(dict[str, Any], apps.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name))


def set_sync_revision(apps: client.CustomObjectsApi, app: dict[str, Any], revision: str) -> dict[str, Any]:
    """Update ``status`` with a plain PUT: the v1alpha1 Application CRD has no status subresource."""
    updated = copy.deepcopy(app)
    updated["status"]["sync"]["revision"] = revision
    result = apps.replace_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, app["metadata"]["name"], updated)
    return cast(dict[str, Any], result)


def watch_events(apps: client.CustomObjectsApi, name: str, resource_version: str) -> Iterator[dict[str, Any]]:
    """Watch one Application from ``resource_version``; the server ends the stream after a bounded time."""
    stream: Iterator[dict[str, Any]] = watch.Watch().stream(  # type: ignore[no-untyped-call]
        apps.list_namespaced_custom_object,
        GROUP,
        VERSION,
        NAMESPACE,
        PLURAL,
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=WATCH_TIMEOUT_SECONDS,
    )
    return stream


def test_crd_has_no_status_subresource() -> None:
    """Guards the plain-update assumption in ``set_sync_revision``."""
    crd = yaml.safe_load(APPLICATION_CRD.read_text())
    assert all("status" not in v.get("subresources", {}) for v in crd["spec"]["versions"])


def test_application_status_update_is_watched(apps: client.CustomObjectsApi) -> None:
    name = unique_name("cart-service")
    created = create_app(apps, name)

    read_back = get_app(apps, name)
    fixture = application_from_fixture(name)
    assert read_back["metadata"]["uid"] == created["metadata"]["uid"]
    # The CRD stores spec and status as written (nothing pruned, no status subresource dropping it).
    assert read_back["spec"] == fixture["spec"]
    assert read_back["status"] == fixture["status"]
    assert read_back["spec"]["source"]["repoURL"] == "https://git.example.com/minishop/gitops.git"
    assert [h["id"] for h in read_back["status"]["history"]] == [7, 8, 9]
    assert read_back["status"]["operationState"]["phase"] == "Succeeded"

    updated = set_sync_revision(apps, read_back, "rev2")
    assert int(updated["metadata"]["resourceVersion"]) > int(read_back["metadata"]["resourceVersion"])

    # Watching from the pre-update resourceVersion replays the update, so no thread is needed.
    for event in watch_events(apps, name, read_back["metadata"]["resourceVersion"]):
        if event["type"] == "MODIFIED":
            assert event["object"]["status"]["sync"]["revision"] == "rev2"
            assert event["object"]["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
            break
    else:
        pytest.fail(f"no MODIFIED event within {WATCH_TIMEOUT_SECONDS}s")


def test_watch_from_compacted_revision_is_gone(
    kube_cluster: KubeCluster,  # noqa: F811
    apps: client.CustomObjectsApi,
) -> None:
    name = unique_name("compacted")
    app = create_app(apps, name)
    old_version = app["metadata"]["resourceVersion"]
    for revision in ("rev2", "rev3"):
        app = set_sync_revision(apps, app, revision)
    compacted_to = kube_cluster.compact_etcd()
    assert compacted_to >= int(app["metadata"]["resourceVersion"])

    gone: list[str] = []
    try:
        for event in watch_events(apps, name, old_version):
            if event["type"] == "ERROR" and event["raw_object"].get("code") == 410:
                gone.append(f"ERROR event: {event['raw_object'].get('message')}")
                break
    except ApiException as exc:
        if exc.status != 410:
            raise
        gone.append(f"ApiException: {exc.reason}")
    assert gone, "a watch from a compacted resourceVersion must end with 410 Gone"


def test_data_survives_apiserver_restart(
    kube_cluster: KubeCluster,  # noqa: F811
    apps: client.CustomObjectsApi,
) -> None:
    name = unique_name("restart")
    before = set_sync_revision(apps, create_app(apps, name), "before-restart")

    kube_cluster.restart_apiserver()

    # A fresh client: connections pooled before the restart are dead.
    with kube_cluster.api_client() as api_client:
        after = get_app(client.CustomObjectsApi(api_client), name)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["status"]["sync"]["revision"] == "before-restart"
    assert after["spec"] == before["spec"]


def test_rbac_mode_enforces_roles_for_service_account_tokens(tmp_path: Path) -> None:
    """A separate RBAC cluster: admin (system:masters) still works, a ServiceAccount needs a Role."""
    with KubeCluster.start(tmp_path, find_kube_apiserver(), authorization_mode="RBAC") as cluster:
        cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n")
        cluster.kubectl("create", "serviceaccount", "dora-exporter", "-n", NAMESPACE)
        token = cluster.service_account_token(NAMESPACE, "dora-exporter")

        def can_list_configmaps() -> bool:
            answer = cluster.kubectl(
                "auth", "can-i", "list", "configmaps", "-n", NAMESPACE, f"--token={token}", check=False
            )
            return answer.strip() == "yes"

        assert not can_list_configmaps()
        cluster.kubectl("create", "role", "reader", "-n", NAMESPACE, "--verb=get,list,watch", "--resource=configmaps")
        cluster.kubectl(
            "create",
            "rolebinding",
            "reader",
            "-n",
            NAMESPACE,
            "--role=reader",
            f"--serviceaccount={NAMESPACE}:dora-exporter",
        )
        # The authorizer reads roles from an informer cache: allow it to catch up, within a bound.
        wait_until(can_list_configmaps, timeout=10, what="the RoleBinding to take effect")
