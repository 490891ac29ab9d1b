# SPDX-License-Identifier: Apache-2.0
"""The Helm chart under ``helm/dora-exporter``, rendered by Helm's own engine and checked for real.

- Helm v4's engine (``helm-python-sdk``): lint, render, schema validation, packaging.
- ``kubernetes-validate --strict``: every built-in object against the offline Kubernetes schemas.
- A real kube-apiserver (``tests/support/kube.py``) under ``--authorization-mode=RBAC``: server dry-run of
  every rendered object with the CRDs the chart expects installed, then the chart's RBAC objects applied
  for real and the ServiceAccount's permissions checked with ``kubectl auth can-i`` and a bound token.

The alert rules and dashboards are not copied into the chart: ``helm/dora-exporter/alerts`` and
``.../dashboards`` are symlinks to the repository's directories, which Helm's loader follows. The tests
below prove the embedded objects equal those files and that a packaged chart carries their bytes.

Tools missing make the tests fail (not skip) with the install step: ``.ci/install-helm-tools.sh``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    import helm_python
except ImportError as exc:  # fail the module with the install step instead of a bare ImportError
    raise ImportError("helm-python-sdk is not installed: run .ci/install-helm-tools.sh") from exc

from exporter import config as exporter_config
from tests.support.kube import KubeCluster, wait_until
from tests.support.kube_fixtures import APPLICATION_CRD, find_kube_apiserver
from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
CHART = ROOT / "helm" / "dora-exporter"
EXAMPLES = ROOT / "examples"
TEST_CRDS = ROOT / "tests" / "data" / "crds"
INSTALL_HINT = "run .ci/install-helm-tools.sh"

RELEASE = "dora-exporter"
NAMESPACE = "dora"
FULLNAME = "dora-exporter"
SERVICE_ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{FULLNAME}"
KUBERNETES_VALIDATE_VERSION = "1.33.0"
BUILTIN_GROUPS = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1"}
ARGOCD_RULE = {"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["get", "list", "watch"]}
CHART_FILES = {
    ".helmignore",
    "Chart.yaml",
    "README.md",
    "values.yaml",
    "values.schema.json",
    "alerts",
    "dashboards",
    "templates",
}


# --- helpers -------------------------------------------------------------------------------------------


def tool(name: str) -> str:
    """A command-line tool from the venv (pip-installed) or PATH; fail with the install step if absent."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}", pytrace=False)
    return found


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path
    return data


VALUES_SETS: dict[str, Path | None] = {
    "default": None,
    "full": EXAMPLES / "values-full.yaml",
    "trial": EXAMPLES / "values-trial.yaml",
    "argocd-example": EXAMPLES / "argocd" / "values.yaml",
}


def values_of(set_name: str) -> dict[str, Any]:
    path = VALUES_SETS[set_name]
    return {} if path is None else load_yaml(path)


def render(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    with helm_python.Chart.load(CHART) as chart:
        return chart.render(values, name=release, namespace=namespace)


@functools.cache
def _rendered_set(set_name: str) -> str:
    return json.dumps(render(values_of(set_name)))


def rendered(set_name: str) -> dict[str, str]:
    """Templates of a named values set, rendered once per session."""
    result: dict[str, str] = json.loads(_rendered_set(set_name))
    return result


def objects(templates: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object in the rendered templates (NOTES.txt excluded)."""
    out: list[dict[str, Any]] = []
    for path, text in sorted(templates.items()):
        if path.endswith("NOTES.txt"):
            continue
        out.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return out


def set_objects(set_name: str) -> list[dict[str, Any]]:
    return objects(rendered(set_name))


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def rendered_config(objs: list[dict[str, Any]]) -> dict[str, Any]:
    cm = one(objs, "ConfigMap", FULLNAME)
    config: dict[str, Any] = yaml.safe_load(cm["data"]["dora.yaml"])
    return config


def rule_files() -> list[Path]:
    """Prometheus rule files of the repository: alerts/*.y*ml with top-level ``groups`` (not promtool tests)."""
    out = []
    for path in sorted([*(ROOT / "alerts").glob("*.yaml"), *(ROOT / "alerts").glob("*.yml")]):
        doc = yaml.safe_load(path.read_text())
        if isinstance(doc, dict) and "groups" in doc and "tests" not in doc:
            out.append(path)
    return out


def dashboard_files() -> list[Path]:
    return sorted((ROOT / "dashboards").glob("*.json"))


def as_stream(objs: list[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.safe_dump(o, sort_keys=False) for o in objs)


# --- chart layout and lint -----------------------------------------------------------------------------


def test_rules_and_dashboards_are_links_not_copies() -> None:
    for name in ("alerts", "dashboards"):
        link = CHART / name
        assert link.is_symlink(), f"{link} must be a symlink to the repository's {name}/ (no second copy)"
        assert os.readlink(link) == f"../../{name}"
        assert link.resolve() == (ROOT / name).resolve()
    # Nothing else in the chart could hold a stale copy of rules or dashboards.
    assert {p.name for p in CHART.iterdir()} == CHART_FILES
    for template in (CHART / "templates").iterdir():
        text = template.read_text()
        assert "alert:" not in text and '"panels"' not in text, f"{template} embeds rules or a dashboard"


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_helm_lint_strict(set_name: str) -> None:
    report = helm_python.lint(CHART, values_of(set_name), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], json.dumps(report, indent=2)


def test_chart_metadata() -> None:
    with helm_python.Chart.load(CHART) as chart:
        assert chart.name == "dora-exporter"
        assert chart.metadata["apiVersion"] == "v2"
        assert chart.schema is not None, "values.schema.json must ship with the chart"
    # The package's version comes from the git tag (setuptools-scm); the release workflow sets the chart's
    # version and appVersion from the same tag. Between releases both hold the last released version.
    meta = load_yaml(CHART / "Chart.yaml")
    assert isinstance(meta["appVersion"], str) and meta["version"] == meta["appVersion"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"]), meta["version"]


# --- what the chart renders ----------------------------------------------------------------------------


def test_default_values_render_the_core_objects_only() -> None:
    kinds = sorted(o["kind"] for o in set_objects("default"))
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Role", "RoleBinding", "Service", "ServiceAccount"]
    )


def test_full_values_turn_every_optional_part_on() -> None:
    objs = set_objects("full")
    kinds = {o["kind"] for o in objs}
    assert {"Ingress", "ServiceMonitor", "PrometheusRule", "PersistentVolumeClaim", "Role", "NetworkPolicy"} <= kinds
    assert len(of_kind(objs, "PrometheusRule")) == len(rule_files()) >= 1
    dashboards = [o for o in of_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]
    assert len(dashboards) == len(dashboard_files()) >= 1
    assert not of_kind(objs, "Secret"), "the chart must never render a Secret"


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_deployment_is_a_single_hardened_pod(set_name: str) -> None:
    objs = set_objects(set_name)
    deployment = one(objs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["fsGroup"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # The daemon stops within 10 s of SIGTERM: the grace period must leave it that, with margin.
    assert pod["terminationGracePeriodSeconds"] >= 15
    c = container(objs)
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    # Probes: liveness on heartbeats, readiness on first ingest, startup covering a long first ingest.
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    # Writable paths: only /data and /tmp; git gets HOME=/tmp.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert {"/data", "/tmp", "/etc/dora-exporter"} <= set(mounts)
    assert mounts["/etc/dora-exporter"]["readOnly"] is True
    writable = {p for p, m in mounts.items() if not m.get("readOnly")}
    assert writable == {"/data", "/tmp"}
    assert {"name": "HOME", "value": "/tmp"} in c["env"]
    assert c["args"] == ["run", "--config", "/etc/dora-exporter/dora.yaml"]


def test_persistence_pvc_or_emptydir() -> None:
    volumes = {v["name"]: v for v in one(set_objects("default"), "Deployment")["spec"]["template"]["spec"]["volumes"]}
    pvc = one(set_objects("default"), "PersistentVolumeClaim")
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    trial = set_objects("trial")
    assert not of_kind(trial, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(trial, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}
    existing = objects(render({"persistence": {"existingClaim": "my-store"}}))
    assert not of_kind(existing, "PersistentVolumeClaim")
    volumes = {v["name"]: v for v in one(existing, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "my-store"


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_config_is_rendered_from_values(set_name: str) -> None:
    objs = set_objects(set_name)
    config = rendered_config(objs)
    with helm_python.Chart.load(CHART) as chart:
        merged = chart.merge_values(values_of(set_name))["config"]
    # The user's config passes through unchanged ...
    for key, value in merged.items():
        assert config[key] == value, key
    # ... and the chart owns the keys that must agree with the pod: data dir, store, ports.
    assert config["data_dir"] == "/data"
    assert config["store"]["path"].startswith("/data/")
    ports = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    assert config["http"] == {
        "listen": f"0.0.0.0:{ports['metrics']}",
        "webhook_listen": f"0.0.0.0:{ports['webhooks']}",
    }


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_rendered_config_is_accepted_by_the_daemon(set_name: str, tmp_path: Path) -> None:
    """The ConfigMap's dora.yaml passes the daemon's own validation (what ``check-config`` runs)."""
    path = tmp_path / "dora.yaml"
    path.write_text(one(set_objects(set_name), "ConfigMap", FULLNAME)["data"]["dora.yaml"])
    exporter_config.load(path, environ={})


def test_config_change_rolls_the_pod() -> None:
    def checksum(values: dict[str, Any]) -> str:
        objs = objects(render(values))
        annotation: str = one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return annotation

    base = checksum({})
    assert len(base) == 64
    assert checksum({"config": {"failure_window": "2h"}}) != base
    assert checksum({"resources": {"requests": {"cpu": "200m"}}}) == base


def test_rbac_namespaced_grants_only_reading_applications() -> None:
    objs = set_objects("full")
    namespaces = values_of("full")["config"]["argocd"]["namespaces"]
    roles = of_kind(objs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == sorted(namespaces)
    for role in roles:
        assert role["rules"] == [ARGOCD_RULE]
    for binding in of_kind(objs, "RoleBinding"):
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": FULLNAME}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}]
    assert not of_kind(objs, "ClusterRole") and not of_kind(objs, "ClusterRoleBinding")


def test_rbac_cluster_scope_is_selectable() -> None:
    objs = set_objects("trial")
    assert one(objs, "ClusterRole")["rules"] == [ARGOCD_RULE]
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"]["kind"] == "ClusterRole"
    assert not of_kind(objs, "Role")


def test_no_rbac_and_no_token_without_argocd() -> None:
    objs = objects(render({"config": {"argocd": {"enabled": False}}}))
    assert not [o for o in objs if o["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}]
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert one(objs, "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_no_role_mentions_secrets_or_wildcards(set_name: str) -> None:
    for role in [o for o in set_objects(set_name) if o["kind"] in {"Role", "ClusterRole"}]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field]
            assert "secrets" not in rule["resources"]
            assert set(rule["verbs"]) <= {"get", "list", "watch"}


def test_service_ports_and_webhook_only_ingress() -> None:
    objs = set_objects("full")
    service = one(objs, "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {"metrics", "webhooks"}
    assert ports["metrics"]["port"] != ports["webhooks"]["port"]
    ingress = one(objs, "Ingress")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert paths, "the ingress routes nothing"
    for path in paths:
        assert path["path"].startswith("/webhooks")
        assert path["backend"]["service"] == {"name": service["metadata"]["name"], "port": {"name": "webhooks"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "dora-webhooks-tls"


def test_service_monitor_scrapes_metrics_port_with_the_rules_job_name() -> None:
    monitor = one(set_objects("full"), "ServiceMonitor")
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "dora-exporter",
        "app.kubernetes.io/instance": RELEASE,
    }
    # job="dora-exporter" is what the alert rules use; honorLabels keeps the exporter's `service` label.
    assert spec["jobLabel"] == "app.kubernetes.io/name"
    endpoint = spec["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics" and endpoint["honorLabels"] is True
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "scheme" not in endpoint and "basicAuth" not in endpoint  # plain HTTP unless TLS is on


def test_service_monitor_scrapes_over_tls_with_basic_auth_when_the_listener_has_them() -> None:
    values = {
        **values_of("full"),
        "tls": {"http": {"existingSecret": "dora-tls"}},
        "serviceMonitor": {
            **values_of("full")["serviceMonitor"],
            "tlsConfig": {"ca": {"secret": {"name": "dora-tls", "key": "ca.crt"}}, "serverName": "dora-exporter"},
            "basicAuth": {
                "username": {"name": "dora-scrape", "key": "username"},
                "password": {"name": "dora-scrape", "key": "password"},
            },
        },
    }
    endpoint = one(objects(render(values)), "ServiceMonitor")["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["serverName"] == "dora-exporter"
    assert endpoint["basicAuth"]["password"] == {"name": "dora-scrape", "key": "password"}


def _env(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(objs)["env"]}


def test_github_token_and_webhook_secrets_come_from_secret_references() -> None:
    objs = set_objects("full")
    env = _env(objs)
    assert env["DORA_GITHUB_TOKEN_FILE"]["value"] == "/var/run/secrets/dora-exporter/github-token/token"
    assert env["DORA_ARGOCD_WEBHOOK_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "dora-exporter-webhooks", "key": "argocd-token"}
    }
    assert env["DORA_GITHUB_WEBHOOK_SECRET"]["valueFrom"] == {
        "secretKeyRef": {"name": "dora-exporter-webhooks", "key": "github-secret"}
    }
    assert "DORA_GITHUB_TOKEN" not in env
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["github-token"]["secret"]["secretName"] == "dora-exporter-github"
    mounts = {m["name"]: m for m in container(objs)["volumeMounts"]}
    assert mounts["github-token"] == {
        "name": "github-token",
        "mountPath": "/var/run/secrets/dora-exporter/github-token",
        "readOnly": True,
    }


def test_github_app_key_is_mounted_from_a_secret() -> None:
    objs = set_objects("trial")
    env = _env(objs)
    assert env["DORA_GITHUB_APP_ID"]["value"] == "123456"
    assert (
        env["DORA_GITHUB_APP_PRIVATE_KEY_FILE"]["value"] == "/var/run/secrets/dora-exporter/github-app/private-key.pem"
    )
    volumes = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["github-app"]["secret"]["secretName"] == "dora-exporter-github-app"


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_no_secret_value_is_ever_inline(set_name: str) -> None:
    objs = set_objects(set_name)
    for name, entry in _env(objs).items():
        secretish = any(word in name for word in ("TOKEN", "SECRET", "PASSWORD")) and not name.endswith("_FILE")
        if secretish:
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], name
    config = rendered_config(objs)
    text = json.dumps(config)
    for word in ('"token"', '"private_key"', '"webhook_secret"', '"password"'):
        assert word not in text


def test_notes_render() -> None:
    notes = rendered("full")["dora-exporter/templates/NOTES.txt"]
    assert "https://dora-webhooks.example.com/webhooks/github" in notes
    assert "rollout status deployment/dora-exporter" in notes
    assert "emptyDir" in rendered("trial")["dora-exporter/templates/NOTES.txt"]


# --- image, extra volumes, NetworkPolicy, examples ------------------------------------------------------

DIGEST = "sha256:" + "ab" * 32


def app_version() -> str:
    version: str = load_yaml(CHART / "Chart.yaml")["appVersion"]
    return version


def test_default_image_is_the_released_one_at_the_app_version() -> None:
    assert container(set_objects("default"))["image"] == f"ghcr.io/dora-exporter/dora-exporter:{app_version()}"
    tagged = container(objects(render({"image": {"tag": "9.9.9"}})))["image"]
    assert tagged == "ghcr.io/dora-exporter/dora-exporter:9.9.9"
    both = container(objects(render({"image": {"tag": "9.9.9", "digest": DIGEST}})))["image"]
    assert both == f"ghcr.io/dora-exporter/dora-exporter@{DIGEST}", "the digest wins over the tag"


def test_examples_are_pinned_to_the_app_version() -> None:
    version = app_version()
    assert values_of("argocd-example")["image"]["tag"] == version
    assert container(set_objects("argocd-example"))["image"].endswith(f":{version}")
    app = load_yaml(EXAMPLES / "argocd" / "application.yaml")
    chart_source = next(s for s in app["spec"]["sources"] if s.get("path") == "helm/dora-exporter")
    assert chart_source["targetRevision"] == f"v{version}"
    for set_name in VALUES_SETS:
        image = values_of(set_name).get("image", {})
        assert image.get("digest") or image.get("tag", version) == version, set_name


def test_extra_volumes_and_mounts_are_added_after_the_charts_own() -> None:
    objs = set_objects("full")
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    full = values_of("full")
    assert pod["volumes"][-len(full["extraVolumes"]) :] == full["extraVolumes"]
    mounts = container(objs)["volumeMounts"]
    assert mounts[-len(full["extraVolumeMounts"]) :] == full["extraVolumeMounts"]
    assert {"name": "TZ", "value": "UTC"} in container(objs)["env"]
    names = [v["name"] for v in pod["volumes"]]
    assert len(names) == len(set(names))


def _policy(values: dict[str, Any]) -> dict[str, Any]:
    return one(objects(render(values)), "NetworkPolicy")


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(p["port"], p["protocol"]) for p in rule["ports"]}


def test_network_policy_is_off_by_default() -> None:
    for set_name in ("default", "trial", "argocd-example"):
        assert not of_kind(set_objects(set_name), "NetworkPolicy"), set_name


def test_network_policy_ingress_and_egress() -> None:
    objs = set_objects("full")
    policy = one(objs, "NetworkPolicy")["spec"]
    np = values_of("full")["networkPolicy"]
    pod_labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    # Ingress: each named port from its own peers only.
    by_port = {rule["ports"][0]["port"]: rule for rule in policy["ingress"]}
    assert set(by_port) == {"metrics", "webhooks"}
    assert by_port["metrics"]["from"] == np["ingress"]["metrics"]["from"]
    assert by_port["webhooks"]["from"] == np["ingress"]["webhooks"]["from"]
    # Egress: DNS, the API server, Git/GitHub/GitLab, then the extra rules.
    dns, api, git, *extra = policy["egress"]
    assert _ports(dns) == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert [peer["ipBlock"]["cidr"] for peer in api["to"]] == ["10.0.0.0/28"]
    assert _ports(api) == {(443, "TCP"), (6443, "TCP")}
    assert [peer["ipBlock"]["cidr"] for peer in git["to"]] == ["10.20.0.0/16", "140.82.112.0/20"]
    assert _ports(git) == {(443, "TCP"), (22, "TCP")}
    assert extra == np["extraEgress"]


def test_network_policy_closes_ports_without_peers_and_skips_the_api_without_argocd() -> None:
    policy = _policy(
        {
            "networkPolicy": {"enabled": True, "ingress": {"metrics": {"from": []}}},
            "config": {"argocd": {"enabled": False}},
        }
    )["spec"]
    assert policy["ingress"] == [], "no peers: nothing may connect (an empty `from` would mean everyone)"
    _dns, git = policy["egress"]
    assert _ports(git) == {(443, "TCP"), (22, "TCP")}
    assert [peer["ipBlock"]["cidr"] for peer in git["to"]] == ["0.0.0.0/0"]
    # The defaults open the metrics port to Prometheus in `monitoring` only.
    api_values = {"networkPolicy": {"enabled": True, "egress": {"kubernetesApi": {"cidrs": ["192.168.0.1/32"]}}}}
    default = _policy(api_values)["spec"]
    assert [r["ports"][0]["port"] for r in default["ingress"]] == ["metrics"]
    assert default["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
    }


# --- bad values fail at install ------------------------------------------------------------------------

SCHEMA_FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"replicaCount": 2}, "additional properties 'replicaCount'"),
    "token inline in config": ({"config": {"github": {"enabled": True, "token": "ghp_x"}}}, "/config/github"),
    "secret value inline": ({"secrets": {"github": {"token": {"value": "ghp_x"}}}}, "/secrets/github/token"),
    "chart-owned http": ({"config": {"http": {"listen": "0.0.0.0:1"}}}, "/config/http"),
    "chart-owned data_dir": ({"config": {"data_dir": "/elsewhere"}}, "/config/data_dir"),
    "bad duration": ({"config": {"failure_window": "one hour"}}, "/config/failure_window"),
    "bad log level": ({"config": {"log": {"level": "verbose"}}}, "/config/log/level"),
    "bad rbac scope": ({"rbac": {"scope": "everything"}}, "/rbac/scope"),
    "root allowed": ({"podSecurityContext": {"runAsNonRoot": False}}, "/podSecurityContext/runAsNonRoot"),
    "writable root fs": ({"securityContext": {"readOnlyRootFilesystem": False}}, "/securityContext"),
    "short grace period": ({"terminationGracePeriodSeconds": 5}, "/terminationGracePeriodSeconds"),
    "port out of range": ({"service": {"ports": {"metrics": 70000}}}, "/service/ports/metrics"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "bad digest": ({"image": {"digest": "latest"}}, "/image/digest"),
    "secret in extraEnv": ({"extraEnv": [{"name": "DORA_GITHUB_TOKEN", "value": "x"}]}, "/extraEnv/0"),
    "argocd namespace not a name": ({"config": {"argocd": {"enabled": True, "namespaces": ["Argo CD"]}}}, "/config"),
    "bad cidr": ({"networkPolicy": {"egress": {"git": {"cidrs": ["github.com"]}}}}, "/networkPolicy/egress/git/cidrs"),
    "unknown policy key": ({"networkPolicy": {"ingres": {}}}, "/networkPolicy"),
    "mount without path": ({"extraVolumeMounts": [{"name": "x"}]}, "/extraVolumeMounts/0"),
}


@pytest.mark.parametrize("case", list(SCHEMA_FAILURES))
def test_schema_rejects_bad_values(case: str) -> None:
    values, where = SCHEMA_FAILURES[case]
    with helm_python.Chart.load(CHART) as chart:
        with pytest.raises(helm_python.HelmValuesError) as validated:
            chart.validate_schema(values)
        assert where in str(validated.value)
        with pytest.raises(helm_python.HelmValuesError):
            chart.render(values, name=RELEASE, namespace=NAMESPACE)


TEMPLATE_FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "github on without credentials": (
        {"config": {"github": {"enabled": True}}},
        "config.github.enabled needs secrets.github.token.existingSecret",
    ),
    "token and app both": (
        {"secrets": {"github": {"token": {"existingSecret": "a"}, "app": {"id": "1", "existingSecret": "b"}}}},
        "not both",
    ),
    "app without id": ({"secrets": {"github": {"app": {"existingSecret": "b"}}}}, "secrets.github.app.id"),
    "public webhooks without authentication": (
        {"ingress": {"enabled": True, "host": "x.example.com"}},
        "ingress.enabled exposes the webhooks",
    ),
    "ingress without host": (
        {"ingress": {"enabled": True}, "secrets": {"argocdWebhookToken": {"existingSecret": "w"}}},
        "ingress.host is required",
    ),
    "network policy without the API server's address": (
        {"networkPolicy": {"enabled": True}},
        "networkPolicy.egress.kubernetesApi.cidrs is required",
    ),
}


@pytest.mark.parametrize("case", list(TEMPLATE_FAILURES))
def test_inconsistent_values_fail_to_render(case: str) -> None:
    values, message = TEMPLATE_FAILURES[case]
    with pytest.raises(helm_python.HelmRenderError, match=message):
        render(values)


# --- rules and dashboards: the repository's files, not copies ------------------------------------------


def test_prometheus_rules_equal_the_alerts_files() -> None:
    files = rule_files()
    assert files, "alerts/ has no Prometheus rules file"
    rules = {
        o["metadata"]["annotations"]["dora-exporter/source-file"]: o
        for o in of_kind(set_objects("full"), "PrometheusRule")
    }
    assert set(rules) == {f"alerts/{f.name}" for f in files}
    for path in files:
        assert rules[f"alerts/{path.name}"]["spec"] == yaml.safe_load(path.read_text()), path


def test_dashboard_configmaps_equal_the_dashboard_files() -> None:
    files = dashboard_files()
    assert files, "dashboards/ has no dashboard JSON"
    label = values_of("full")["dashboards"]["label"]
    cms = [o for o in of_kind(set_objects("full"), "ConfigMap") if o["metadata"]["labels"].get(label) == "1"]
    embedded = {k: v for cm in cms for k, v in cm["data"].items()}
    assert embedded == {f.name: f.read_text() for f in files}
    for cm in cms:
        assert len(cm["data"]) == 1
        assert cm["metadata"]["annotations"] == {"grafana_folder": "DORA"}


def test_packaged_chart_carries_the_rule_and_dashboard_bytes(tmp_path: Path) -> None:
    archive = Path(helm_python.package(CHART, destination=tmp_path))
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for path in [*rule_files(), *dashboard_files()]:
            member = members.get(f"dora-exporter/{path.parent.name}/{path.name}")
            assert member is not None and member.isfile(), f"{path.name} missing from {sorted(members)}"
            data = tar.extractfile(member)
            assert data is not None and data.read() == path.read_bytes()
        assert not [n for n in members if "/alerts/tests/" in n], "promtool tests must not ship in the chart"


# --- offline schema validation -------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_kubernetes_validate_strict(set_name: str, tmp_path: Path) -> None:
    objs = set_objects(set_name)
    builtin = [o for o in objs if o["apiVersion"] in BUILTIN_GROUPS]
    custom = [o for o in objs if o["apiVersion"] not in BUILTIN_GROUPS]
    assert {o["apiVersion"] for o in custom} <= {"monitoring.coreos.com/v1"}, "unexpected API group"
    files = []
    for i, obj in enumerate(builtin):
        path = tmp_path / f"{i:02d}-{obj['kind']}.yaml"
        path.write_text(yaml.safe_dump(obj))
        files.append(str(path))
    result = subprocess.run(
        [tool("kubernetes-validate"), "-k", KUBERNETES_VALIDATE_VERSION, "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(builtin), output


# --- the real API server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rbac_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """kube-apiserver + etcd with RBAC on and every CRD in ``tests/data/crds``: the project's Argo CD Application
    CRD and the stub monitoring CRDs."""
    crds = sorted(TEST_CRDS.glob("*.yaml"))
    assert APPLICATION_CRD in crds, f"{APPLICATION_CRD} must be among the CRDs applied"
    binary = find_kube_apiserver()
    with KubeCluster.start(tmp_path_factory.mktemp("kube-rbac"), binary, authorization_mode="RBAC") as cluster:
        for crd in crds:
            cluster.apply(crd)
        for name in (
            "applications.argoproj.io",
            "servicemonitors.monitoring.coreos.com",
            "prometheusrules.monitoring.coreos.com",
        ):
            cluster.wait_for_crd(name)
        # kubectl validates custom resources against the server's OpenAPI document, which picks up a new CRD
        # a little after it is Established: wait for it, or a misspelt field could slip through.
        wait_until(
            lambda: _openapi_has(cluster, OPENAPI_DEFINITIONS),
            timeout=60,
            what=f"{OPENAPI_DEFINITIONS} in /openapi/v2",
        )
        for namespace in (NAMESPACE, "argocd", "argocd-apps", "dora-trial", "team-a"):
            cluster.kubectl("create", "namespace", namespace)
        yield cluster


OPENAPI_DEFINITIONS = (
    "io.argoproj.v1alpha1.Application",
    "com.coreos.monitoring.v1.ServiceMonitor",
    "com.coreos.monitoring.v1.PrometheusRule",
)


def _openapi_has(cluster: KubeCluster, names: tuple[str, ...]) -> bool:
    document = cluster.get_json("/openapi/v2") or {}
    definitions = document.get("definitions", {})
    return all(name in definitions for name in names)


def dry_run(cluster: KubeCluster, manifest: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "apply", "--dry-run=server", "-f", "-"],
        input=manifest,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("set_name", list(VALUES_SETS))
def test_api_server_accepts_every_rendered_object(rbac_cluster: KubeCluster, set_name: str) -> None:
    objs = set_objects(set_name)
    result = dry_run(rbac_cluster, as_stream(objs))
    assert result.returncode == 0, result.stderr
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objs), result.stdout
    if set_name == "full":
        assert any(line.startswith("networkpolicy.networking.k8s.io/") for line in accepted), result.stdout


@pytest.mark.slow
def test_api_server_dry_run_catches_a_wrong_field(rbac_cluster: KubeCluster) -> None:
    """The dry run has teeth: a misspelt field in a stub-CRD object or a Deployment is rejected."""
    objs = copy.deepcopy(set_objects("full"))
    monitor = one(objs, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["honourLabels"] = True
    result = dry_run(rbac_cluster, as_stream([monitor]))
    assert result.returncode != 0 and "honourLabels" in result.stderr, result.stderr
    deployment = one(objs, "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    result = dry_run(rbac_cluster, as_stream([deployment]))
    assert result.returncode != 0 and "imagePullPolcy" in result.stderr, result.stderr


def can_i(cluster: KubeCluster, verb: str, resource: str, namespace: str | None, subject: str) -> bool:
    scope = ["--all-namespaces"] if namespace is None else ["-n", namespace]
    answer = cluster.kubectl("auth", "can-i", verb, resource, f"--as={subject}", *scope, check=False).strip()
    assert answer in {"yes", "no"}, answer
    return answer == "yes"


def apply_identity(cluster: KubeCluster, objs: list[dict[str, Any]]) -> None:
    """Create the ServiceAccount and RBAC objects for real (not a dry run)."""
    wanted = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    cluster.apply(as_stream([o for o in objs if o["kind"] in wanted]))


def get_as(cluster: KubeCluster, token: str, path: str) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(cluster.server + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.mark.slow
def test_service_account_reads_applications_and_nothing_else(rbac_cluster: KubeCluster) -> None:
    apply_identity(rbac_cluster, set_objects("full"))
    for namespace in ("argocd", "argocd-apps"):
        for verb in ("get", "list", "watch"):
            assert can_i(rbac_cluster, verb, "applications.argoproj.io", namespace, SERVICE_ACCOUNT), (verb, namespace)
        for verb in ("create", "update", "patch", "delete"):
            assert not can_i(rbac_cluster, verb, "applications.argoproj.io", namespace, SERVICE_ACCOUNT), verb
        assert not can_i(rbac_cluster, "list", "appprojects.argoproj.io", namespace, SERVICE_ACCOUNT)
    for namespace in (NAMESPACE, "argocd", "argocd-apps", "kube-system"):
        for verb in ("get", "list", "watch"):
            assert not can_i(rbac_cluster, verb, "secrets", namespace, SERVICE_ACCOUNT), (verb, namespace)
    assert not can_i(rbac_cluster, "list", "applications.argoproj.io", "team-a", SERVICE_ACCOUNT)
    assert not can_i(rbac_cluster, "list", "applications.argoproj.io", None, SERVICE_ACCOUNT)


@pytest.mark.slow
def test_service_account_token_lists_and_watches_applications(rbac_cluster: KubeCluster) -> None:
    """The same with a real bound token (TokenRequest API), as the pod would present it."""
    apply_identity(rbac_cluster, set_objects("full"))
    app = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "user-service-prod", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git.example.com/minishop.git", "path": "infra/helm-charts/user-service"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "minishop-prod"},
        },
    }
    rbac_cluster.apply(yaml.safe_dump(app))
    token = rbac_cluster.service_account_token(NAMESPACE, FULLNAME)
    status, body = get_as(rbac_cluster, token, "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications")
    assert status == 200 and [i["metadata"]["name"] for i in body["items"]] == ["user-service-prod"]
    status, _ = get_as(
        rbac_cluster, token, "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications?watch=1&timeoutSeconds=1"
    )
    assert status == 200
    for namespace in (NAMESPACE, "argocd"):
        status, body = get_as(rbac_cluster, token, f"/api/v1/namespaces/{namespace}/secrets")
        assert status == 403, body
    status, _ = get_as(rbac_cluster, token, "/apis/argoproj.io/v1alpha1/namespaces/team-a/applications")
    assert status == 403


@pytest.mark.slow
def test_cluster_scope_reads_applications_everywhere_but_no_secrets(rbac_cluster: KubeCluster) -> None:
    values = values_of("trial")
    objs = objects(render(values, release="dora-trial", namespace="dora-trial"))
    apply_identity(rbac_cluster, objs)
    subject = "system:serviceaccount:dora-trial:dora-trial-dora-exporter"
    assert can_i(rbac_cluster, "watch", "applications.argoproj.io", None, subject)
    assert can_i(rbac_cluster, "list", "applications.argoproj.io", "team-a", subject)
    assert not can_i(rbac_cluster, "list", "secrets", None, subject)
    assert not can_i(rbac_cluster, "get", "secrets", "dora-trial", subject)
    assert not can_i(rbac_cluster, "delete", "applications.argoproj.io", "argocd", subject)


# --- the Argo CD example -------------------------------------------------------------------------------


@pytest.mark.slow
def test_argocd_application_example_is_accepted(rbac_cluster: KubeCluster) -> None:
    app = load_yaml(EXAMPLES / "argocd" / "application.yaml")
    chart_source = next(s for s in app["spec"]["sources"] if s.get("path") == "helm/dora-exporter")
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    values_ref = next(s["ref"] for s in app["spec"]["sources"] if "ref" in s)
    assert chart_source["helm"]["valueFiles"][0].startswith(f"${values_ref}/")
    result = dry_run(rbac_cluster, (EXAMPLES / "argocd" / "application.yaml").read_text())
    assert result.returncode == 0, result.stderr


def test_argocd_example_secrets_match_the_values() -> None:
    ref = values_of("argocd-example")["secrets"]["github"]["token"]
    sealed = load_yaml(EXAMPLES / "argocd" / "sealed-secret.yaml")
    assert sealed["kind"] == "SealedSecret"
    assert sealed["spec"]["template"]["metadata"]["name"] == ref["existingSecret"]
    assert set(sealed["spec"]["encryptedData"]) == {ref["key"]}
    external = load_yaml(EXAMPLES / "argocd" / "external-secret.yaml")
    assert external["kind"] == "ExternalSecret"
    assert external["spec"]["target"]["name"] == ref["existingSecret"]
    assert [d["secretKey"] for d in external["spec"]["data"]] == [ref["key"]]
    env = _env(set_objects("argocd-example"))
    assert env["DORA_GITHUB_TOKEN_FILE"]["value"].endswith("/" + ref["key"])


def test_values_table_in_readme_covers_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    with helm_python.Chart.load(CHART) as chart:
        defaults = chart.values

    def leaves(prefix: str, node: Any) -> Iterator[str]:
        if isinstance(node, dict) and node and prefix != "config":
            for key, value in node.items():
                yield from leaves(f"{prefix}.{key}" if prefix else key, value)
        else:
            yield prefix

    missing = [key for key in leaves("", defaults) if f"`{key}`" not in readme]
    assert not missing, f"README.md values table lacks {missing}"


def test_checksum_is_the_rendered_config() -> None:
    templates = rendered("default")
    annotation = one(objects(templates), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert annotation == hashlib.sha256(templates["dora-exporter/templates/configmap.yaml"].encode()).hexdigest()
