# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus scrapes the daemon over TLS with basic auth and a client certificate.

The daemon's main listener requires both (``RequireAndVerifyClientCert`` and a bcrypt user); three
scrape jobs point at it: one with everything right, one with a wrong password, one without a
client certificate. Only the first is up and brings ``dora_`` series; the second is refused with
401, the third at the handshake. Prometheus asks for gzip on every scrape, so the gzipped body
(two gzip members) is what it parses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import pytest
import yaml

from exporter import config
from exporter.daemon.runtime import STOP_BUDGET_SECONDS, Daemon
from exporter.demo.generate import generate, write_config
from tests.support.certs import CA
from tests.support.kube import free_ports, wait_until
from tests.support.promstack import INSTALL_HINT, PromStack, missing_binaries

pytestmark = pytest.mark.slow

USER, PASSWORD = "prometheus", "scrape-password"
TIMEOUT = 45.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PromStack, Daemon]]:
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    work = tmp_path_factory.mktemp("e2e-prometheus-tls")
    ca = CA(work / "ca")
    server = ca.issue("server", server=True)
    client = ca.issue("client", server=False)
    generate(work / "demo", days=7, end=datetime.now(UTC) - timedelta(hours=1))
    (port,) = free_ports(1)
    path = write_config(work / "demo", f"127.0.0.1:{port}")
    doc = yaml.safe_load(path.read_text())
    doc["http"]["tls"] = {
        "cert_file": str(server.cert),
        "key_file": str(server.key),
        "client_ca_file": str(ca.cert),
        "client_auth_type": "RequireAndVerifyClientCert",
    }
    doc["http"]["basic_auth_users"] = {USER: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()}
    path.write_text(yaml.safe_dump(doc))
    daemon = Daemon(config.load(path))
    daemon.ingest_once()
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False}, name="daemon", daemon=True)
    thread.start()
    target = f"127.0.0.1:{port}"
    tls: dict[str, Any] = {"ca_file": str(ca.cert), "cert_file": str(client.cert), "key_file": str(client.key)}
    auth = {"username": USER, "password": PASSWORD}

    def job(name: str, **options: Any) -> dict[str, Any]:
        return {"job_name": name, "scheme": "https", "static_configs": [{"targets": [target]}], **options}

    stack = PromStack.start(
        work / "stack",
        scrape_target=target,
        rule_files=[],
        webhook_url="http://127.0.0.1:9/unused",
        job="good",
        scrape_options={"scheme": "https", "tls_config": tls, "basic_auth": auth},
        more_jobs=[
            job("wrong-password", tls_config=tls, basic_auth={"username": USER, "password": "not it"}),
            job("no-client-cert", tls_config={"ca_file": str(ca.cert)}, basic_auth=auth),
        ],
    )  # fmt: skip
    try:
        yield stack, daemon
    finally:
        stack.stop()
        daemon.stop.set()
        thread.join(timeout=STOP_BUDGET_SECONDS + 5)


def _targets(stack: PromStack) -> dict[str, dict[str, Any]]:
    active = stack.api("targets")["data"]["activeTargets"]
    return {t["labels"]["job"]: t for t in active}


def test_prometheus_scrapes_over_tls_with_basic_auth_and_a_client_certificate(
    setup: tuple[PromStack, Daemon],
) -> None:
    stack, _ = setup
    wait_until(
        lambda: bool(stack.vector('up{job="good"} == 1')) and bool(stack.vector('dora_deployments_total{job="good"}')),
        timeout=TIMEOUT,
        what="a successful TLS scrape with dora_ series",
        on_timeout=stack.logs,
    )


def test_wrong_credentials_and_a_missing_client_certificate_are_refused(setup: tuple[PromStack, Daemon]) -> None:
    stack, _ = setup
    wait_until(
        lambda: all(_targets(stack)[j]["health"] == "down" for j in ("wrong-password", "no-client-cert")),
        timeout=TIMEOUT,
        what="both refused jobs down",
        on_timeout=stack.logs,
    )
    targets = _targets(stack)
    assert "401" in targets["wrong-password"]["lastError"], targets["wrong-password"]
    assert "401" not in targets["no-client-cert"]["lastError"], targets["no-client-cert"]  # refused at the handshake
    assert stack.vector('up{job="wrong-password"} == 0') and stack.vector('up{job="no-client-cert"} == 0')
    assert not stack.vector('dora_deployments_total{job=~"wrong-password|no-client-cert"}')
