# SPDX-License-Identifier: Apache-2.0
"""Argo CD Applications on a real kube-apiserver, written the way Argo CD's controller writes them.

Shared by the relist tests (tests/sources/argocd) and the paging test of a deleted application
(tests/e2e): plain PUTs of the whole object, since the CRD has no status subresource.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

from kubernetes import client

from tests.support.argocd import fixture_app, history_entry, iso, operation
from tests.support.kube import KubeCluster
from tests.support.waiting import wait_until

__all__ = ["REV_A", "REV_B", "Apps", "app_body"]

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
REV_A = "1f0c4e2b9a7d3c5e6f8091a2b3c4d5e6f7a8b9c0"
REV_B = "2a1d5f3c0b8e4d6f7091a2b3c4d5e6f7a8b9c0d1"
SECONDS = 15.0


class Apps:
    """The Applications of one namespace, written with plain PUTs (the CRD has no status subresource)."""

    def __init__(self, kube: KubeCluster, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    def _api(self) -> Iterator[client.CustomObjectsApi]:
        with self.kube.api_client() as api_client:
            yield client.CustomObjectsApi(api_client)

    def get(self, name: str) -> dict[str, Any]:
        for api in self._api():
            return cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))
        raise AssertionError("unreachable")

    def create(self, body: dict[str, Any]) -> str:
        """Create ``body``; its uid."""
        for api in self._api():
            made = api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
            return str(made["metadata"]["uid"])
        raise AssertionError("unreachable")

    def status(self, name: str, **changes: Any) -> None:
        app = self.get(name)
        app["status"].update(changes)
        for api in self._api():
            api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, app)

    def delete(self, name: str) -> None:
        for api in self._api():
            api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        wait_until(lambda: not self._exists(name), SECONDS, message=f"{name} deleted")

    def _exists(self, name: str) -> bool:
        try:
            self.get(name)
        except client.exceptions.ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True


def app_body(name: str, namespace: str, deployed: list[tuple[int, datetime, str]]) -> dict[str, Any]:
    """The fixture Application as ``name`` with ``deployed`` as its history (id, deployStartedAt,
    revision), the last one's operation Succeeded, Healthy since that deployment."""
    body = fixture_app(name, namespace)
    body["status"]["history"] = [history_entry(body, i, t, t + timedelta(seconds=2), rev) for i, t, rev in deployed]
    _, last_t, last_rev = deployed[-1]
    body["status"]["operationState"] = operation(body, "Succeeded", last_t, last_rev, last_t + timedelta(seconds=3))
    body["status"]["health"] = {"status": "Healthy", "lastTransitionTime": iso(last_t + timedelta(seconds=30))}
    return body
