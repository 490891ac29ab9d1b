# SPDX-License-Identifier: Apache-2.0
"""What a relist and a restart must not lose (issue 14 item 4, issue 20 item 3), on a real kube-apiserver.

Application status is written the way Argo CD's controller writes it (whole ``operationState``,
``history`` appended, ``health`` with ``lastTransitionTime``), with the daemon stopped and restarted
and the API server restarted in the middle. Each test reads the daemon's ``/metrics`` and, where the
times matter, the store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.store import Store
from tests.support.argocd import RunningDaemon, fixture_app, history_entry, iso, operation, write_config
from tests.support.argocd_objects import REV_A, REV_B, Apps, app_body
from tests.support.kube import KubeCluster
from tests.support.kube_fixtures import kube_cluster  # noqa: F401
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

SECONDS = 15.0


@pytest.fixture
def apps(kube_cluster: KubeCluster) -> Apps:  # noqa: F811
    namespace = f"argocd-{uuid.uuid4().hex[:6]}"
    kube_cluster.apply(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n")
    return Apps(kube_cluster, namespace)


def metric(d: RunningDaemon, name: str, service: str, **labels: str) -> float | None:
    return d.value(name, service=service, environment="prod", **labels)


def expect(d: RunningDaemon, what: str, service: str, **values: float | None) -> None:
    """Wait until each named sample of ``service`` in prod has its value (``name__reason`` adds a reason label)."""

    def read() -> dict[str, float | None]:
        out = {}
        for key in values:
            name, _, reason = key.partition("__")
            out[key] = metric(d, name, service, **({"reason": reason} if reason else {}))
        return out

    try:
        wait_until(lambda: read() == values, SECONDS, message=what)
    except AssertionError:
        raise AssertionError(f"{what}: want {values}, got {read()}") from None


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_apps_deleted_while_the_exporter_was_down_close_their_state_on_restart(apps: Apps, tmp_path: Path) -> None:
    """A failing app deleted and a degraded app deleted and recreated (new uid) while the daemon was
    stopped: the restart's list lacks their old uids, so their live state goes to 0 and their own open
    failures are restored at the relist; the series stay, at 0."""
    cfg_path = write_config(tmp_path, apps.kube.kubeconfig, [apps.namespace])
    t0 = now() - timedelta(minutes=20)
    d = RunningDaemon(cfg_path)
    try:
        apps.create(app_body("shop-api-prod", apps.namespace, [(1, t0, REV_A)]))
        uid_cart = apps.create(app_body("cart-prod", apps.namespace, [(1, t0, REV_A)]))
        expect(d, "listed", "shop-api", dora_deployments_total=1, dora_sync_failing=0)
        t1 = now() - timedelta(minutes=5)
        failed = operation(fixture_app("x", "y"), "Failed", t1, REV_B, t1 + timedelta(seconds=30), 2, "objects failed")
        apps.status("shop-api-prod", operationState=failed)
        apps.status("cart-prod", health={"status": "Degraded", "lastTransitionTime": iso(t0 + timedelta(minutes=3))})
        expect(d, "failing", "shop-api", dora_sync_failing=1, dora_failure_open=1)
        expect(d, "degraded", "cart", dora_degraded=1, dora_failure_open=1, dora_deployment_failures_total__degraded=1)
    finally:
        d.stop()

    apps.delete("shop-api-prod")
    apps.delete("cart-prod")
    t2 = now() - timedelta(minutes=1)
    uid_cart2 = apps.create(app_body("cart-prod", apps.namespace, [(0, t2, REV_A)]))
    assert uid_cart2 != uid_cart

    d = RunningDaemon(cfg_path)
    try:
        expect(d, "deleted while down: failure restored, not failing", "shop-api", dora_sync_failing=0,
               dora_failure_open=0, dora_time_to_restore_seconds_count=1,
               dora_deployment_failures_total__sync_failed=1)  # fmt: skip
        expect(d, "deleted and recreated while down", "cart", dora_degraded=0, dora_failure_open=0,
               dora_deployments_total=2, dora_time_to_restore_seconds_count=1)  # fmt: skip
        # the API server restarts under the watch: the relist that follows adds and removes nothing
        apps.kube.restart_apiserver()
        wait_until(lambda: (d.value("dora_exporter_watch_reconnects_total", source="argocd") or 0) >= 1, SECONDS)
        expect(d, "after an API server restart", "cart", dora_degraded=0, dora_failure_open=0, dora_deployments_total=2)
        expect(d, "after an API server restart", "shop-api", dora_sync_failing=0, dora_failure_open=0)
    finally:
        d.stop()

    store = Store(tmp_path / "dora.db")
    try:
        [failed] = store.failures("shop-api", "prod")
        assert failed.restored_at is not None and failed.restored_by is None
        assert failed.restored_at >= failed.started_at
        assert "restored: application deleted (missing_from_list)" in failed.detail
        [degraded] = store.failures("cart", "prod")
        assert degraded.started_at == t0 + timedelta(minutes=3)  # the lastTransitionTime, not the observation
        assert degraded.restored_at is not None
        live = store.conn.execute("SELECT uid, deleted FROM argocd_apps ORDER BY uid").fetchall()
        assert dict(live)[uid_cart] == 1 and dict(live)[uid_cart2] == 0
    finally:
        store.close()


def test_a_failing_app_deleted_while_watched_restores_its_failure(apps: Apps, tmp_path: Path) -> None:
    """Deleted under a watch that survived an API server restart: the DELETED event closes it at once."""
    cfg_path = write_config(tmp_path, apps.kube.kubeconfig, [apps.namespace])
    t0 = now() - timedelta(minutes=10)
    d = RunningDaemon(cfg_path)
    try:
        apps.create(app_body("shop-api-prod", apps.namespace, [(1, t0, REV_A)]))
        t1 = now() - timedelta(minutes=2)
        errored = operation(fixture_app("x", "y"), "Error", t1, REV_B, t1 + timedelta(seconds=20), 1, "ComparisonError")
        apps.status("shop-api-prod", operationState=errored)
        expect(d, "failing", "shop-api", dora_sync_failing=1, dora_failure_open=1)
        apps.kube.restart_apiserver()
        apps.delete("shop-api-prod")
        expect(d, "deleted while watched", "shop-api", dora_sync_failing=0, dora_failure_open=0,
               dora_time_to_restore_seconds_count=1, dora_deployment_failures_total__sync_failed=1)  # fmt: skip
    finally:
        d.stop()
    store = Store(tmp_path / "dora.db")
    try:
        [failed] = store.failures("shop-api", "prod")
        assert failed.restored_by is None and "restored: application deleted" in failed.detail
    finally:
        store.close()


def test_health_is_timed_by_its_last_transition_time_across_restarts(apps: Apps, tmp_path: Path) -> None:
    """Deployed 80 minutes ago, Degraded 70 minutes ago (seen at a restart), healed 50 minutes ago
    (seen at the next restart): a failure of 20 minutes, not unattributed and not as long as the outage."""
    cfg_path = write_config(tmp_path, apps.kube.kubeconfig, [apps.namespace])
    t_deploy = now() - timedelta(minutes=80)
    apps.create(app_body("shop-api-prod", apps.namespace, [(1, t_deploy, REV_A)]))
    d = RunningDaemon(cfg_path)
    try:
        expect(d, "listed", "shop-api", dora_deployments_total=1, dora_degraded=0)
    finally:
        d.stop()
    degraded_at, healed_at = t_deploy + timedelta(minutes=10), t_deploy + timedelta(minutes=30)
    apps.status("shop-api-prod", health={"status": "Degraded", "lastTransitionTime": iso(degraded_at)})
    d = RunningDaemon(cfg_path)
    try:
        expect(d, "degraded within the window of the deployment, by when it happened", "shop-api",
               dora_degraded=1, dora_failure_open=1, dora_deployment_failures_total__degraded=1)  # fmt: skip
    finally:
        d.stop()
    apps.status("shop-api-prod", health={"status": "Healthy", "lastTransitionTime": iso(healed_at)})
    d = RunningDaemon(cfg_path)
    try:
        expect(d, "healed during the outage", "shop-api", dora_degraded=0, dora_failure_open=0,
               dora_time_to_restore_seconds_count=1, dora_time_to_restore_seconds_sum=20 * 60.0)  # fmt: skip
    finally:
        d.stop()


def test_an_app_in_an_unconfigured_environment_is_unmapped_once(apps: Apps, tmp_path: Path) -> None:
    """``cert-manager`` under ``{service}-{environment}`` is not service ``cert`` in ``manager``."""
    cfg_path = write_config(tmp_path, apps.kube.kubeconfig, [apps.namespace])
    t0 = now() - timedelta(minutes=10)
    d = RunningDaemon(cfg_path)
    try:
        apps.create(app_body("cert-manager", apps.namespace, [(1, t0, REV_A)]))
        apps.create(app_body("shop-api-prod", apps.namespace, [(1, t0, REV_A)]))
        expect(d, "the configured pair is served", "shop-api", dora_deployments_total=1)
        wait_until(
            lambda: d.value("dora_exporter_unmatched_total", source="argocd", reason="unmapped_app") == 1, SECONDS
        )
        apps.status("cert-manager", health={"status": "Degraded"})
        apps.status("shop-api-prod", reconciledAt=iso(now()))
        wait_until(lambda: (d.value("dora_exporter_events_processed_total", source="argocd") or 0) >= 4, SECONDS)
        assert d.value("dora_exporter_unmatched_total", source="argocd", reason="unmapped_app") == 1
        assert not [k for k in d.samples() if ("service", "cert") in k[1]]
    finally:
        d.stop()


def test_a_rollback_to_an_earlier_history_revision_without_git(apps: Apps, tmp_path: Path) -> None:
    """No Git repository configured: A, then B, then ``argocd app rollback`` to A's entry (a new entry
    with A's revision) fails B's deployment (rollback) and makes the third one rework; a redeploy of
    the same revision after it is no rollback; the restart's backfill judges nothing twice."""
    cfg_path = write_config(tmp_path, apps.kube.kubeconfig, [apps.namespace])
    t0 = now() - timedelta(hours=2)
    d = RunningDaemon(cfg_path)
    try:
        apps.create(app_body("shop-api-prod", apps.namespace, [(1, t0, REV_A), (2, t0 + timedelta(minutes=30), REV_B)]))
        expect(d, "two deployments", "shop-api", dora_deployments_total=2, dora_deployment_failures_total__rollback=0)
        body = apps.get("shop-api-prod")
        t3 = t0 + timedelta(minutes=60)
        history = [*body["status"]["history"], history_entry(body, 3, t3, t3 + timedelta(seconds=2), REV_A)]
        apps.status("shop-api-prod", history=history, operationState=operation(body, "Succeeded", t3, REV_A, t3))
        expect(d, "rolled back", "shop-api", dora_deployments_total=3, dora_deployment_failures_total__rollback=1,
               dora_failure_open=0, dora_time_to_restore_seconds_sum=30 * 60.0)  # fmt: skip
        t4 = t0 + timedelta(minutes=90)
        history = [*history, history_entry(body, 4, t4, t4 + timedelta(seconds=2), REV_A)]
        apps.status("shop-api-prod", history=history, operationState=operation(body, "Succeeded", t4, REV_A, t4))
        expect(d, "a redeploy is no rollback", "shop-api", dora_deployments_total=4,
               dora_deployment_failures_total__rollback=1)  # fmt: skip
    finally:
        d.stop()
    d = RunningDaemon(cfg_path)
    try:
        expect(d, "restart", "shop-api", dora_deployments_total=4, dora_deployment_failures_total__rollback=1)
    finally:
        d.stop()
    store = Store(tmp_path / "dora.db")
    try:
        deps = store.deployments("shop-api", "prod")
        assert [dep.rework for dep in deps] == [False, False, True, False]
        [rb] = store.failures("shop-api", "prod")
        assert (rb.deployment_id, rb.restored_by, rb.detail) == (deps[1].id, deps[2].id, "earlier_history_revision")
    finally:
        store.close()
