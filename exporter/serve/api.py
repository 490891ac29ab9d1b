# SPDX-License-Identifier: Apache-2.0
"""The JSON debug API under ``/api/``: why a number is what it is, for a person or a script.

Each endpoint answers from the store through the injected ``Explain`` (indexed queries), never
from a remote source, so it is as cheap and as safe to call as ``/metrics``. ``/api/deployments``
answers one page at a time: unbounded, one call on a three-year history was 23 MB and eight at
once held a gigabyte (issue 13). A page is at most ``LIMIT_MAX`` deployments, the next one is
named by an opaque cursor (keyset pagination on (deployed_at, id): a page costs the same however
deep it is, and rows added meanwhile are neither skipped nor repeated).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog

from exporter.errors import StoreError

__all__ = ["LIMIT_DEFAULT", "LIMIT_MAX", "ApiReply", "BadRequest", "Explain", "Page", "PageRequest", "deployments"]

log = structlog.get_logger(__name__)

LIMIT_DEFAULT = 100  # about 100 kB of JSON with a few changes each: a screenful for a person
LIMIT_MAX = 1000  # about 1 MB of JSON a page, whatever the size of the history


@dataclass(frozen=True, kw_only=True)
class PageRequest:
    """One page of ``/api/deployments``: the filters, where the page starts and its size."""

    service: str | None = None
    environment: str | None = None
    since: float | None = None  # deployed at or after (POSIX seconds)
    until: float | None = None  # deployed before
    after: tuple[float, int] | None = None  # the (deployed_at, id) the previous page ended with
    limit: int = LIMIT_DEFAULT


@dataclass(frozen=True)
class Page:
    """The explained deployments of a page, and the key the next page starts after (or ``None``)."""

    items: list[dict[str, Any]]
    next_after: tuple[float, int] | None


Explain = Callable[[PageRequest], Page]
# (status, body, content type, extra headers)
ApiReply = tuple[HTTPStatus, bytes, str, dict[str, str]]


class BadRequest(ValueError):
    """A query parameter that cannot be used; its message is the 400's body."""


def deployments(explain: Explain, path: str, query: str) -> ApiReply:
    """``GET /api/deployments?service=&environment=&since=&until=&limit=&cursor=``: one page of the
    matching deployments, explained, oldest first; ``next_cursor`` (and a ``Link: rel="next"``
    header) name the next page while there is one."""
    params = dict(parse_qsl(query))
    try:
        request = parse(params)
    except BadRequest as exc:
        body = json.dumps({"error": str(exc)}).encode()
        return HTTPStatus.BAD_REQUEST, body, "application/json", {}
    try:
        page = explain(request)
    except StoreError as exc:  # busy or failing: the caller may retry; the log has the cause
        log.error("api.store_failed", kind=exc.kind, error=str(exc))
        body = json.dumps({"error": "store unavailable"}).encode()
        return HTTPStatus.SERVICE_UNAVAILABLE, body, "application/json", {"Retry-After": "5"}
    cursor = None if page.next_after is None else encode_cursor(page.next_after)
    body = json.dumps({"deployments": page.items, "next_cursor": cursor}, indent=1).encode()
    headers = {}
    if cursor is not None:
        headers["Link"] = f'<{path}?{urlencode({**params, "cursor": cursor})}>; rel="next"'
    return HTTPStatus.OK, body, "application/json", headers


def parse(params: dict[str, str]) -> PageRequest:
    """The page a query asks for; ``BadRequest`` names the parameter that is wrong."""
    raw_limit = params.get("limit", str(LIMIT_DEFAULT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIMIT_MAX:
        raise BadRequest(f"limit must be an integer from 1 to {LIMIT_MAX}, not {raw_limit[:40]!r}")
    cursor = params.get("cursor")
    return PageRequest(
        service=params.get("service") or None,
        environment=params.get("environment") or None,
        since=_time(params, "since"),
        until=_time(params, "until"),
        after=None if cursor is None else decode_cursor(cursor),
        limit=int(raw_limit),
    )


def _time(params: dict[str, str], name: str) -> float | None:
    """An ISO-8601 time (a time without an offset is UTC) as POSIX seconds."""
    raw = params.get(name)
    if raw is None:
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 time such as 2026-01-31T12:00:00Z, not {raw[:40]!r}") from None
    return (t if t.tzinfo is not None else t.replace(tzinfo=UTC)).timestamp()


def encode_cursor(key: tuple[float, int]) -> str:
    """Opaque to a client; the stored time itself (``repr`` of a float reads back exactly)."""
    return base64.urlsafe_b64encode(json.dumps([key[0], key[1]]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, ident = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("cursor is not one this server gave out") from None
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise BadRequest("cursor is not one this server gave out")
    if isinstance(ident, bool) or not isinstance(ident, int):
        raise BadRequest("cursor is not one this server gave out")
    return float(at), ident
