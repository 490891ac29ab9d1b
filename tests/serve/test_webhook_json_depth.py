# SPDX-License-Identifier: Apache-2.0
"""A deeply nested JSON body is refused with a 400 that says why, and the listener keeps serving."""

from __future__ import annotations

import http.client
import json

from tests.serve.conftest import TOKEN, Served, sign

DEEP = b"[" * 100_000 + b"]" * 100_000  # far past the interpreter's recursion limit
WITHIN = json.dumps({"a": [[[[{"b": [1, "]]]]"]}]]]]}).encode()  # brackets in a string do not count


def post(served: Served, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection(*served.webhooks, timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    text = resp.read().decode().strip()
    conn.close()
    return resp.status, text


def github_headers(body: bytes, delivery: str) -> dict[str, str]:
    return {"X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": sign(body)}


def test_a_signed_deeply_nested_github_delivery_gets_400_and_the_listener_serves_on(served: Served) -> None:
    status, text = post(served, "/webhooks/github", DEEP, github_headers(DEEP, "deep-1"))
    assert status == 400
    assert "nested deeper than" in text
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    assert post(served, "/webhooks/github", body, github_headers(body, "after-deep"))[0] == 202


def test_a_deeply_nested_argocd_notification_gets_400_before_its_handler(served: Served) -> None:
    deep = b"{" + b'"a":{' * 10_000 + b"}" * 10_001
    status, text = post(served, "/webhooks/argocd", deep, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 400
    assert "nested deeper than" in text
    assert served.argocd_bodies == []
    assert post(served, "/webhooks/argocd", WITHIN, {"Authorization": f"Bearer {TOKEN}"})[0] == 202
    assert served.argocd_bodies == [WITHIN]


def test_depth_counts_brackets_outside_strings_only() -> None:
    from exporter.serve.jsondepth import nested_deeper_than

    assert not nested_deeper_than(b'{"a": "[[[[[[[[[[", "b": "\\"[[[[[[[[["}', 2)
    assert nested_deeper_than(b'{"a": [[{"b": "]]]]"}]]}', 3)
    assert not nested_deeper_than(b'{"a": [[{"b": "]]]]"}]]}', 4)
    assert not nested_deeper_than(b"[]" * 1000, 1)  # many, side by side, is not deep
