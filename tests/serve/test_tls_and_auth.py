# SPDX-License-Identifier: Apache-2.0
"""TLS and basic auth on both listeners, over real sockets with certificates made per test: the
right credentials pass (and bcrypt runs once, then the cache answers), wrong ones get 401, the
health probes stay open, a client certificate is required when configured, and certificates
replaced on disk are presented by the next connection without a restart."""

from __future__ import annotations

import base64
import gzip
import http.client
import shutil
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.core import snapshot
from exporter.errors import ConfigError
from exporter.serve import Health, HttpApp
from exporter.serve.api import Page
from exporter.serve.tls import TlsContext
from exporter.settings import ListenerSecurity, TlsConfig
from tests.support.certs import CA, Pair
from tests.support.sample_histories import build, health

USER, PASSWORD = "prometheus", "s3cret pass"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()  # a low cost keeps tests quick
TOKEN = "argocd token"
OPEN = ListenerSecurity()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Certs:
    def __init__(self, folder: Path) -> None:
        self.ca = CA(folder / "ca")
        self.server = self.ca.issue("server", server=True, into=folder)
        self.client = self.ca.issue("client", server=False, into=folder)
        self.stranger = CA(folder / "other", name="other CA").issue("stranger", server=False)

    def tls(self, **kwargs: Any) -> TlsConfig:
        return TlsConfig(cert_file=self.server.cert, key_file=self.server.key, **kwargs)

    def client_context(self, client: Pair | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca.cert))
        if client is not None:
            context.load_cert_chain(client.cert, client.key)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


Start = Callable[..., tuple[HttpApp, tuple[str, int], tuple[str, int]]]


@pytest.fixture
def start() -> Iterator[Start]:
    apps: list[HttpApp] = []

    def run(
        main: ListenerSecurity, webhooks: ListenerSecurity = OPEN, **kwargs: Any
    ) -> tuple[HttpApp, tuple[str, int], tuple[str, int]]:
        app = HttpApp(
            CollectorRegistry(),
            Health({}),
            lambda: snapshot.Snapshot(datetime.now(UTC)),
            lambda request: Page([], None),
            "prod",
            "30d",
            **kwargs,
        )
        apps.append(app)
        app.add_webhook("/webhooks/argocd", TOKEN, lambda body: (202, "recorded"))
        return app, app.serve("127.0.0.1", 0, main), app.serve_webhooks("127.0.0.1", 0, webhooks)

    yield run
    for app in apps:
        app.shutdown()


def get(
    address: tuple[str, int],
    path: str,
    *,
    context: ssl.SSLContext | None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(*address, timeout=5)
    else:
        conn = http.client.HTTPSConnection(*address, timeout=5, context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def presented(address: tuple[str, int], certs: Certs) -> bytes:
    """The SHA-256 fingerprint of the certificate a new connection is shown."""
    import hashlib
    import socket

    with (
        socket.create_connection(address, timeout=5) as raw,
        certs.client_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()


def test_tls_with_basic_auth_serves_metrics_to_the_right_credentials_only(start: Start, certs: Certs) -> None:
    _, main, _ = start(ListenerSecurity(tls=certs.tls(), basic_auth_users=((USER, HASH),)))
    ctx = certs.client_context()
    status, _, body = get(main, "/metrics", context=ctx, headers={"Authorization": basic(USER, PASSWORD)})
    assert status == 200, body
    for wrong in (basic(USER, "wrong"), basic("nobody", PASSWORD), "Bearer x", "Basic !!!"):
        status, headers, _ = get(main, "/metrics", context=ctx, headers={"Authorization": wrong})
        assert status == 401, wrong
        assert headers["www-authenticate"].startswith('Basic realm="dora-exporter"')
    assert get(main, "/", context=ctx)[0] == 401
    assert get(main, "/api/deployments", context=ctx)[0] == 401


def test_the_health_probes_need_no_credentials(start: Start, certs: Certs) -> None:
    """A kubelet probe cannot send basic auth; the probes say only "ok" or "ready"."""
    _, main, _ = start(ListenerSecurity(tls=certs.tls(), basic_auth_users=((USER, HASH),)))
    assert get(main, "/healthz", context=certs.client_context())[0] == 200
    assert get(main, "/readyz", context=certs.client_context())[0] in {200, 503}


def test_a_successful_check_is_cached_and_a_failed_one_is_not(start: Start) -> None:
    app, main, _ = start(ListenerSecurity(basic_auth_users=((USER, HASH),)))
    auth = app.listener("http").auth
    assert auth is not None
    for _ in range(5):
        assert get(main, "/metrics", context=None, headers={"Authorization": basic(USER, PASSWORD)})[0] == 200
    assert auth.verifications == 1
    for _ in range(3):
        assert get(main, "/metrics", context=None, headers={"Authorization": basic(USER, "nope")})[0] == 401
    assert auth.verifications == 4


def test_plain_http_is_refused_by_a_tls_listener(start: Start, certs: Certs) -> None:
    app, main, _ = start(ListenerSecurity(tls=certs.tls()))
    with pytest.raises((http.client.HTTPException, OSError)):
        get(main, "/healthz", context=None)
    assert get(main, "/healthz", context=certs.client_context())[0] == 200
    assert app.listener("http").handshake_failures == 1


def test_a_required_client_certificate_refuses_clients_without_one(start: Start, certs: Certs) -> None:
    tls = certs.tls(client_ca_file=certs.ca.cert, client_auth_type="RequireAndVerifyClientCert")
    _, main, _ = start(ListenerSecurity(tls=tls))
    assert get(main, "/metrics", context=certs.client_context(certs.client))[0] == 200
    for client in (None, certs.stranger):  # none at all, or one from a CA not trusted
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            get(main, "/metrics", context=certs.client_context(client))


def test_an_optional_client_certificate_is_verified_when_given(start: Start, certs: Certs) -> None:
    tls = certs.tls(client_ca_file=certs.ca.cert, client_auth_type="VerifyClientCertIfGiven")
    _, main, _ = start(ListenerSecurity(tls=tls))
    assert get(main, "/metrics", context=certs.client_context())[0] == 200
    assert get(main, "/metrics", context=certs.client_context(certs.client))[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        get(main, "/metrics", context=certs.client_context(certs.stranger))


def test_replaced_certificate_files_are_presented_by_the_next_connection(
    start: Start, certs: Certs, tmp_path: Path
) -> None:
    app, main, _ = start(ListenerSecurity(tls=certs.tls()))
    first = presented(main, certs)
    assert first == certs.server.fingerprint()
    renewed = certs.ca.issue("renewed", server=True, into=tmp_path / "next")
    shutil.copyfile(renewed.key, certs.server.key)
    shutil.copyfile(renewed.cert, certs.server.cert)
    assert presented(main, certs) == renewed.fingerprint() != first
    tls = app.listener("http").tls
    assert tls is not None and tls.loads == 2


def test_files_that_do_not_load_keep_the_previous_certificate(start: Start, certs: Certs, tmp_path: Path) -> None:
    """Mid-rotation (a new key beside the old certificate) the old pair keeps serving; the next
    connection after the rotation completes gets the new one."""
    _, main, _ = start(ListenerSecurity(tls=certs.tls()))
    old = certs.server.fingerprint()
    renewed = certs.ca.issue("renewed", server=True, into=tmp_path / "next")
    shutil.copyfile(renewed.key, certs.server.key)  # the certificate does not match this key yet
    assert presented(main, certs) == old
    shutil.copyfile(renewed.cert, certs.server.cert)
    assert presented(main, certs) == renewed.fingerprint()


def test_a_missing_certificate_stops_the_start_naming_the_key(certs: Certs, tmp_path: Path) -> None:
    config = TlsConfig(cert_file=tmp_path / "absent.crt", key_file=certs.server.key)
    with pytest.raises(ConfigError) as raised:
        TlsContext(config, key="http.tls")
    assert raised.value.key == "http.tls"


def test_the_webhook_listener_takes_its_own_tls_and_users(start: Start, certs: Certs) -> None:
    _, _, hooks = start(ListenerSecurity(), ListenerSecurity(tls=certs.tls(), basic_auth_users=((USER, HASH),)))
    ctx = certs.client_context()
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    status, _, _ = get(hooks, "/webhooks/argocd", context=ctx, method="POST", body=b"{}", headers=bearer)
    assert status == 401  # the bearer token alone no longer passes the listener's basic auth
    both = {**bearer, "Authorization": basic(USER, PASSWORD)}
    status, _, _ = get(hooks, "/webhooks/argocd", context=ctx, method="POST", body=b"{}", headers=both)
    assert status == 401  # and basic auth alone does not pass the route's bearer token check


def test_metrics_are_gzipped_when_the_scraper_asks(start: Start) -> None:
    _, main, _ = start(ListenerSecurity())
    status, headers, plain = get(main, "/metrics", context=None)
    assert status == 200 and "content-encoding" not in headers
    status, headers, packed = get(main, "/metrics", context=None, headers={"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip" and headers["vary"] == "Accept-Encoding"
    assert gzip.decompress(packed).split(b"\n")[:3] == plain.split(b"\n")[:3]


def test_the_gzipped_exposition_inflates_to_the_plain_one_and_reuses_the_dora_member() -> None:
    from tests.serve.test_exposition_cache import _pair, _stable

    _, _, exposition, _ = _pair(build())
    first = exposition.gzipped(generate_latest)
    assert _stable(gzip.decompress(first)) == _stable(exposition(generate_latest))
    assert b"dora_deployments_total{" in gzip.decompress(first)
    second = exposition.gzipped(generate_latest)
    dora_member = exposition._gzip_cache[generate_latest][1]
    assert first.startswith(dora_member) and second.startswith(dora_member)
    assert health() is not None
