# SPDX-License-Identifier: Apache-2.0
"""GitHub's signed webhook deliveries: which events matter and the signature check.

``X-Hub-Signature-256`` is HMAC-SHA256 of the raw body with the shared secret; it is checked in
constant time before the body is parsed, so an unsigned sender never reaches the JSON parser.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["GITHUB_EVENTS", "valid_signature"]

GITHUB_EVENTS = frozenset({"push", "issues", "pull_request", "deployment_status"})


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """``header`` is ``sha256=<hex>`` over ``body``; compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())
