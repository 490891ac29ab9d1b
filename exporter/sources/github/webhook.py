# SPDX-License-Identifier: Apache-2.0
"""GitHub's signed webhook deliveries: which events matter, the signature check and the payload.

``X-Hub-Signature-256`` is HMAC-SHA256 of the raw body with the shared secret; it is checked in
constant time before the body is parsed, so an unsigned sender never reaches the JSON parser.

A hook's content type is ``application/json`` or ``application/x-www-form-urlencoded``, the
latter being GitHub's default: the JSON document is then the value of the form field ``payload``
(GitHub's "Creating webhooks" and "Webhook events and payloads" pages). The signature is over the
raw body either way, so the form is decoded only after it was verified.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs

__all__ = ["FORM_CONTENT_TYPE", "GITHUB_EVENTS", "PayloadError", "delivery_document", "valid_signature"]

GITHUB_EVENTS = frozenset({"push", "issues", "pull_request", "deployment_status"})
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class PayloadError(ValueError):
    """A verified delivery whose body does not hold a JSON document where its content type says."""


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """``header`` is ``sha256=<hex>`` over ``body``; compared in constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def delivery_document(body: bytes, content_type: str | None) -> bytes:
    """The JSON document of a verified delivery: the body itself, or for a form-encoded hook the
    decoded ``payload`` field. Raises ``PayloadError`` when a form has no single ``payload``."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM_CONTENT_TYPE:
        return body
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False, max_num_fields=16)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"form body not readable: {exc}") from None
    values = fields.get("payload", [])
    if len(values) != 1:
        raise PayloadError("form body without one payload field (or set the hook's content type to application/json)")
    return values[0].encode()
