# SPDX-License-Identifier: Apache-2.0
"""The Argo CD source against a real kube-apiserver + etcd with the project's Application CRD.

One Application derived from our fixture (``tests/data/argocd/application.yaml``) is driven through a sync that runs,
retries and fails, then succeeds, degrades and heals; it is redeployed on the same revision,
deleted and recreated. The daemon is restarted in the middle, so is the API server, and etcd is
compacted under the watch for a real 410. At every step the daemon's /metrics must show exactly
what was driven: nothing lost, nothing doubled.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from exporter.store import Store
from tests.support.argocd import (
    RunningDaemon,
    fixture_app,
    history_entry,
    iso,
    operation,
    write_config,
)
from tests.support.kube import KubeCluster
from tests.support.kube_fixtures import kube_cluster  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
SERVICE, ENV = "shop-api", "prod"
PAIR = {"service": SERVICE, "environment": ENV}
R2 = "1f0c4e2b9a7d3c5e6f8091a2b3c4d5e6f7a8b9c0"
SECONDS = 15.0


class Cluster:
    """The Application under test, updated with plain PUTs (the CRD has no status subresource)."""

    def __init__(self, kube: KubeCluster, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    def api(self) -> Iterator[client.CustomObjectsApi]:
        with self.kube.api_client() as api_client:
            yield client.CustomObjectsApi(api_client)

    def get(self) -> dict[str, Any]:
        for api in self.api():
            return cast(
                dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
            )
        raise AssertionError("unreachable")

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        for api in self.api():
            return cast(
                dict[str, Any], api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
            )
        raise AssertionError("unreachable")

    def status(self, **changes: Any) -> dict[str, Any]:
        app = self.get()
        app["status"].update(changes)
        for api in self.api():
            return cast(
                dict[str, Any],
                api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name, app),
            )
        raise AssertionError("unreachable")

    def delete(self) -> None:
        for api in self.api():
            api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)


@pytest.fixture
def setup(kube_cluster: KubeCluster, tmp_path: Path) -> Cluster:  # noqa: F811
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    kube_cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n")
    return Cluster(kube_cluster, namespace, f"{SERVICE}-{ENV}")


def expect(d: RunningDaemon, what: str, **values: float) -> None:
    """Wait until every named sample (pair labels unless the name says otherwise) has its value."""

    def now_true() -> bool:
        s = d.samples()
        for key, want in values.items():
            name, _, reason = key.partition("__")
            labels = dict(PAIR)
            if reason:
                labels["reason"] = reason
            if s.get((name, frozenset(labels.items()))) != want:
                return False
        return True

    try:
        wait_until(now_true, SECONDS, message=what)
    except AssertionError:
        s = d.samples()
        got = {
            k: s.get(
                (
                    k.partition("__")[0],
                    frozenset({**PAIR, **({"reason": k.partition("__")[2]} if "__" in k else {})}.items()),
                )
            )
            for k in values
        }
        raise AssertionError(f"{what}: want {values}, got {got}") from None


def self_metric(d: RunningDaemon, name: str) -> float:
    return d.value(name, source="argocd") or 0.0


@pytest.mark.timeout(180)  # about 30 s: dozens of syncs driven through a real API server, in real time
def test_driven_application_is_counted_exactly(setup: Cluster, tmp_path: Path) -> None:
    c = setup
    kube = c.kube
    cfg_path = write_config(tmp_path, kube.kubeconfig, [c.namespace])
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    d = RunningDaemon(cfg_path)
    try:
        # 1. The fixture: its history (ids 7-9), Succeeded, Healthy -> one deployment per history entry
        body = fixture_app(c.name, c.namespace)
        fixture_ids = [h["id"] for h in body["status"]["history"]]
        n, next_id = len(fixture_ids), fixture_ids[-1] + 1
        created = c.create(body)
        uid1 = created["metadata"]["uid"]
        expect(d, "backfill of the fixture's history", dora_deployments_total=n, dora_sync_failing=0, dora_degraded=0)
        assert d.value("dora_exporter_source_up", source="argocd") == 1

        # 2. A sync starts (Running), then retries (Running, finishedAt set, retryCount > 0): not complete
        t1 = base
        c.status(operationState=operation(body, "Running", t1, R2))
        c.status(
            operationState=operation(body, "Running", t1, R2, t1 + timedelta(seconds=10), 1, "retrying: apply failed")
        )
        processed = self_metric(d, "dora_exporter_events_processed_total")
        wait_until(lambda: self_metric(d, "dora_exporter_events_processed_total") >= processed, SECONDS)
        expect(d, "a retrying sync is not a failure", dora_deployments_total=n, dora_sync_failing=0,
               dora_deployment_failures_total__sync_failed=0)  # fmt: skip

        # 3. The final phase is Failed: one failed deployment attempt, sync_failing=1 within seconds
        c.status(
            operationState=operation(
                body, "Failed", t1, R2, t1 + timedelta(seconds=40), 2, "one or more objects failed"
            )
        )
        written = time.monotonic()
        wait_until(lambda: d.value("dora_sync_failing", **PAIR) == 1, SECONDS, interval=0.02)
        assert time.monotonic() - written < 5, "dora_sync_failing must follow a failed sync within seconds"
        expect(d, "failed sync", dora_deployments_total=n + 1, dora_sync_failing=1, dora_failure_open=1,
               dora_deployment_failures_total__sync_failed=1)  # fmt: skip

        # 4. A new sync: its history entry appears while the phase is still Running, then it Succeeds
        t2 = base + timedelta(minutes=5)
        history = [*c.get()["status"]["history"], history_entry(body, next_id, t2, t2 + timedelta(seconds=3), R2)]
        c.status(history=history, operationState=operation(body, "Running", t2, R2))
        expect(d, "history entry before Succeeded", dora_deployments_total=n + 2, dora_sync_failing=1)
        c.status(operationState=operation(body, "Succeeded", t2, R2, t2 + timedelta(seconds=4)))
        expect(d, "restored by a Succeeded sync of a Healthy app", dora_deployments_total=n + 2, dora_sync_failing=0,
               dora_failure_open=0, dora_time_to_restore_seconds_count=1)  # fmt: skip

        # 5. Degraded within the failure window, then Healthy again
        c.status(health={"status": "Degraded", "message": "Deployment exceeded its progress deadline"})
        expect(d, "degraded", dora_degraded=1, dora_failure_open=1, dora_deployment_failures_total__degraded=1)
        c.status(health={"status": "Healthy"})
        expect(d, "healthy again", dora_degraded=0, dora_failure_open=0, dora_time_to_restore_seconds_count=2)

        # 6. A reconciledAt-only change does nothing
        c.status(reconciledAt=iso(datetime.now(UTC)))
        expect(d, "reconciledAt only", dora_deployments_total=n + 2)
    finally:
        d.stop()

    # 7. While the daemon is down: a redeploy of the same revision (next_id + 1) is lost to a history limit
    #    of 1 and next_id + 2 remains: the restart backfills it and counts the gap of one.
    t3 = base + timedelta(minutes=10)
    c.status(
        history=[history_entry(body, next_id + 2, t3, t3 + timedelta(seconds=2), R2)],
        operationState=operation(body, "Succeeded", t3, R2, t3 + timedelta(seconds=3)),
    )
    d = RunningDaemon(cfg_path)
    try:
        expect(d, "restart backfills, nothing doubled", dora_deployments_total=n + 3, dora_sync_failing=0,
               dora_degraded=0, dora_deployment_failures_total__sync_failed=1,
               dora_deployment_failures_total__degraded=1)  # fmt: skip
        assert self_metric(d, "dora_exporter_history_gaps_total") == 1

        # 8. The API server restarts under the watch; a redeploy of the same revision after it is seen once
        kube.restart_apiserver()
        t4 = base + timedelta(minutes=15)
        redeploy = history_entry(body, next_id + 3, t4, t4 + timedelta(seconds=2), R2)
        c.status(
            history=[*c.get()["status"]["history"], redeploy],
            operationState=operation(body, "Succeeded", t4, R2, t4 + timedelta(seconds=3)),
        )
        expect(d, "redeploy of the same revision after an API server restart", dora_deployments_total=n + 4)
        wait_until(lambda: self_metric(d, "dora_exporter_watch_reconnects_total") >= 1, SECONDS, message="reconnect")

        # 9. etcd compacted past the watch's resourceVersion: the next watch gets a real 410 and relists
        relists = self_metric(d, "dora_exporter_watch_relists_total")
        for _ in range(2):  # compaction keeps its own revision: move etcd two past the watch's
            name = f"bump-{uuid.uuid4().hex[:6]}"
            kube.apply(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n")
        kube.compact_etcd()
        wait_until(
            lambda: self_metric(d, "dora_exporter_watch_relists_total") > relists, SECONDS, message="relist after 410"
        )
        expect(d, "a relist adds nothing", dora_deployments_total=n + 4)

        # 10. Delete and recreate under the same name: new uid, ids restart at 0, old rows stay
        c.delete()
        wait_until(lambda: _gone(c), SECONDS, message="app deleted")
        fresh = fixture_app(c.name, c.namespace)
        t5 = base + timedelta(minutes=20)
        fresh["status"]["history"] = [history_entry(fresh, 0, t5, t5 + timedelta(seconds=2), R2)]
        fresh["status"]["operationState"] = operation(fresh, "Succeeded", t5, R2, t5 + timedelta(seconds=3))
        uid2 = c.create(fresh)["metadata"]["uid"]
        assert uid2 != uid1
        expect(d, "recreated app", dora_deployments_total=n + 5, dora_sync_failing=0, dora_degraded=0,
               dora_failure_open=0, dora_deployment_failures_total__sync_failed=1,
               dora_deployment_failures_total__degraded=1, dora_time_to_restore_seconds_count=2)  # fmt: skip
        assert d.value("dora_exporter_source_up", source="argocd") == 1
        assert d.value("dora_exporter_unmatched_total", source="argocd", reason="unmapped_app") == 0
    finally:
        d.stop()

    # The report says the same: n + 5 deployments, 2 failed (the failed sync's attempt, the degraded one), 2 restored
    report = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "report", "--config", str(cfg_path), "--since", "2024-01-01T00:00:00Z",
         "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    [row] = [r for r in json.loads(report.stdout)["rows"] if r["service"] == SERVICE]
    assert (row["deployments"], row["failed_deployments"], row["restored_failures"]) == (n + 5, 2, 2)

    # The store holds exactly what was driven
    store = Store(tmp_path / "dora.db")
    try:
        deps = store.deployments(SERVICE, ENV)
        assert len(deps) == n + 5
        history_rows = sorted(
            (uid, hid) for uid, hid in store.conn.execute("SELECT uid, history_id FROM argocd_history")
        )
        uid1_ids = [*fixture_ids, next_id, next_id + 2, next_id + 3]
        assert history_rows == sorted([(uid1, i) for i in uid1_ids] + [(uid2, 0)])
        failures = store.failures(SERVICE, ENV)
        assert sorted(f.reason.value for f in failures) == ["degraded", "sync_failed"]
        assert all(f.restored_at is not None for f in failures)
        sync_failed = next(f for f in failures if f.reason.value == "sync_failed")
        assert sync_failed.started_at == base + timedelta(seconds=40)  # the failed operation's finishedAt
        by_key = {d.deployed_at: d for d in deps}
        assert by_key[base + timedelta(minutes=5)].version  # next_id, timed at its deployStartedAt
    finally:
        store.close()


def _gone(c: Cluster) -> bool:
    try:
        c.get()
    except client.exceptions.ApiException as exc:
        return exc.status == 404
    return False


def test_unmapped_app_is_counted_once(setup: Cluster, tmp_path: Path) -> None:
    c = setup
    cfg_path = write_config(
        tmp_path, c.kube.kubeconfig, [c.namespace], mapping={"name_templates": ["{service}-{environment}"]}
    )
    d = RunningDaemon(cfg_path)
    try:
        body = fixture_app("nodash", c.namespace)
        c.name = "nodash"
        c.create(body)
        wait_until(
            lambda: d.value("dora_exporter_unmatched_total", source="argocd", reason="unmapped_app") == 1, SECONDS
        )
        c.status(health={"status": "Degraded"})
        wait_until(lambda: self_metric(d, "dora_exporter_events_processed_total") >= 2, SECONDS)
        assert d.value("dora_exporter_unmatched_total", source="argocd", reason="unmapped_app") == 1
    finally:
        d.stop()
