# SPDX-License-Identifier: Apache-2.0
"""GitHub webhook deliveries as GitHub sends them: signed over the raw body, posted with its headers."""

from __future__ import annotations

import hashlib
import hmac
import urllib.error
import urllib.request

__all__ = ["SECRET", "headers", "post", "sign"]

SECRET = "It's a Secret to Everybody"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(base: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(f"{base}/webhooks/github", data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode().strip()
    except urllib.error.HTTPError as exc:
        with exc:  # an error response holds its connection until closed
            return exc.code, exc.read().decode().strip()


def headers(delivery: str, signature: str | None, event: str = "issues") -> dict[str, str]:
    out = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    if signature is not None:
        out["X-Hub-Signature-256"] = signature
    return out
