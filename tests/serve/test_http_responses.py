# SPDX-License-Identifier: Apache-2.0
"""What every answer carries: 405 with ``Allow`` for a method a route does not serve, the security
and caching headers, and a ``Server`` header that gives no version away."""

from __future__ import annotations

import http.client

import pytest

from tests.serve.conftest import Served

MAIN_PATHS = ["/metrics", "/healthz", "/readyz", "/", "/api/deployments", "/no-such-page"]
WEBHOOK_PATHS = ["/webhooks/github", "/webhooks/argocd", "/no-such-hook"]


def request(address: tuple[str, int], method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(*address, timeout=5)
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/", "/api/deployments"])
def test_the_main_listener_answers_405_with_allow_for_other_methods(served: Served, method: str, path: str) -> None:
    resp = request(served.main, method, path, body=b"x" if method in {"POST", "PUT", "PATCH"} else None)
    assert resp.status == 405
    assert resp.getheader("Allow") == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/webhooks/github", "/webhooks/argocd"])
def test_the_webhook_listener_answers_405_with_allow_for_other_methods(served: Served, method: str, path: str) -> None:
    resp = request(served.webhooks, method, path)
    assert resp.status == 405
    assert resp.getheader("Allow") == "POST"


def test_unknown_paths_are_404_whatever_the_method(served: Served) -> None:
    assert request(served.main, "POST", "/no-such-page", body=b"x").status == 404
    assert request(served.webhooks, "GET", "/no-such-hook").status == 404


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_every_answer_of_both_listeners_carries_nosniff_no_store_and_a_versionless_server(
    served: Served, method: str
) -> None:
    answers = [request(served.main, method, p, body=b"x" if method == "POST" else None) for p in MAIN_PATHS]
    answers += [request(served.webhooks, method, p, body=b"{}" if method == "POST" else None) for p in WEBHOOK_PATHS]
    for resp in answers:
        assert resp.getheader("X-Content-Type-Options") == "nosniff", resp.status
        assert resp.getheader("Cache-Control") == "no-store", resp.status
        assert resp.getheader("Server") == "dora-exporter", resp.status


def test_headers_over_the_allowance_get_431_with_the_same_headers(served: Served) -> None:
    import socket

    pad = "a" * 40_000  # two lines under the parser's line limit, together over the 64 KiB allowance
    with socket.create_connection(served.main, timeout=5) as sock:
        sock.sendall(f"GET /metrics HTTP/1.1\r\nX-A: {pad}\r\nX-B: {pad}\r\n\r\n".encode())
        head = sock.recv(4096).decode("latin-1")
    assert head.startswith("HTTP/1.0 431 ")
    assert "X-Content-Type-Options: nosniff\r\n" in head
    assert "Server: dora-exporter\r\n" in head
    assert request(served.main, "GET", "/healthz").status in {200, 503}  # the listener serves on
