# SPDX-License-Identifier: Apache-2.0
"""The chart's private Git (``git.ssh``, ``git.https``, ``git.caBundle``) and per-listener TLS and
basic auth: what reaches the Deployment and the ConfigMap, and that no credential lands in the
ConfigMap. The credential helper the chart renders is run by a real ``git credential fill``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import bcrypt

from exporter import config as exporter_config
from tests.artifacts.test_helm_chart import FULLNAME, container, objects, one, render, rendered_config

HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
PRIVATE = {
    "git": {
        "ssh": {"existingSecret": "git-ssh"},
        "https": {"existingSecret": "git-token"},
        "caBundle": {"existingConfigMap": "corp-ca"},
    },
    "tls": {"http": {"existingSecret": "dora-tls", "clientAuthType": "RequireAndVerifyClientCert"}},
    "basicAuthUsers": {"http": {"prometheus": HASH}},
}


def _objs(values: dict[str, Any]) -> list[dict[str, Any]]:
    return objects(render(values))


def _env(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(objs)["env"]}


def _mounts(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container(objs)["volumeMounts"]}


def _volumes(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}


def test_nothing_private_is_rendered_by_default() -> None:
    objs = _objs({})
    assert not {"git-ssh", "git-https", "git-ca", "tls-http", "tls-webhooks"} & set(_volumes(objs))
    assert not {"GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "GIT_SSL_CAINFO"} & set(_env(objs))
    assert "tls" not in rendered_config(objs)["http"]
    assert "scheme" not in container(objs)["livenessProbe"]["httpGet"]


def test_the_deploy_key_and_known_hosts_are_mounted_and_used_with_strict_host_checking() -> None:
    objs = _objs(PRIVATE)
    mount = _mounts(objs)["git-ssh"]
    ssh = _env(objs)["GIT_SSH_COMMAND"]
    assert f"-i {mount}/identity" in ssh and f"UserKnownHostsFile={mount}/known_hosts" in ssh
    assert "StrictHostKeyChecking=yes" in ssh and "IdentitiesOnly=yes" in ssh
    assert _volumes(objs)["git-ssh"]["secret"]["secretName"] == "git-ssh"


def test_the_token_and_the_ca_bundle_are_files_from_a_secret_and_a_configmap() -> None:
    objs = _objs(PRIVATE)
    env, volumes = _env(objs), _volumes(objs)
    assert env["DORA_GIT_TOKEN_FILE"].startswith(_mounts(objs)["git-https"] + "/")
    assert env["GIT_CONFIG_KEY_0"] == "credential.helper" and env["GIT_CONFIG_COUNT"] == "1"
    assert volumes["git-https"]["secret"]["secretName"] == "git-token"
    assert volumes["git-ca"]["configMap"]["name"] == "corp-ca"
    assert env["GIT_SSL_CAINFO"] == _mounts(objs)["git-ca"] + "/ca.crt"


def test_tls_and_users_reach_the_config_and_the_probes_speak_https(tmp_path: Path) -> None:
    objs = _objs(PRIVATE)
    http = rendered_config(objs)["http"]
    mount = _mounts(objs)["tls-http"]
    assert http["tls"] == {
        "cert_file": f"{mount}/tls.crt",
        "key_file": f"{mount}/tls.key",
        "client_ca_file": f"{mount}/ca.crt",
        "client_auth_type": "RequireAndVerifyClientCert",
        "min_version": "TLS12",
    }
    assert http["basic_auth_users"] == {"prometheus": HASH}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container(objs)[probe]["httpGet"]["scheme"] == "HTTPS"
    path = tmp_path / "dora.yaml"
    path.write_text(one(objs, "ConfigMap", FULLNAME)["data"]["dora.yaml"])
    exporter_config.load(path, environ={})  # the daemon accepts what the chart renders


def test_no_credential_or_secret_name_reaches_a_configmap() -> None:
    for obj in _objs(PRIVATE):
        if obj["kind"] == "ConfigMap":
            text = str(obj.get("data", {}))
            for needle in ("git-ssh", "git-token", "identity", "GIT_SSH_COMMAND", "credential", "dora-tls"):
                assert needle not in text, (obj["metadata"]["name"], needle)


def test_the_rendered_credential_helper_hands_git_the_mounted_token(tmp_path: Path) -> None:
    env = _env(_objs(PRIVATE))
    token = tmp_path / "token"
    token.write_text("t0ken-from-secret\n")
    run_env = {
        **{k: v for k, v in env.items() if k.startswith(("GIT_CONFIG_", "DORA_GIT_"))},
        "DORA_GIT_TOKEN_FILE": str(token),
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    out = subprocess.run(
        ["git", "credential", "fill"],
        input="protocol=https\nhost=git.example.internal\n\n",
        capture_output=True,
        text=True,
        env=run_env,
        check=True,
        timeout=30,
    ).stdout
    assert "username=x-access-token\n" in out and "password=t0ken-from-secret\n" in out
