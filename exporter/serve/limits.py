# SPDX-License-Identifier: Apache-2.0
"""Every limit the HTTP listeners enforce, in one place (``docs/limits.md`` says why each value).

They are module constants for now; a config key for each will follow, mapped onto ``Limits`` by
the daemon's wiring. Tests pass their own ``Limits`` (short deadlines) to ``HttpApp``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HEADER_TIMEOUT",
    "JSON_MAX_DEPTH",
    "LISTEN_BACKLOG",
    "MAX_CONNECTIONS",
    "MAX_HEADER_BYTES",
    "REQUEST_TIMEOUT",
    "SIGNED_MAX_BODY",
    "WEBHOOK_BODY_BUDGET",
    "WEBHOOK_MAX_BODY",
    "Limits",
]

HEADER_TIMEOUT = 10.0
"""Seconds from a connection's accept to the end of its request headers. A real client sends them
in one packet; a sender trickling them (slowloris) is closed when this passes."""

REQUEST_TIMEOUT = 30.0
"""Seconds from accept to the end of the whole request, body and answer included. GitHub gives a
delivery 10 s; a 25 MB body at a slow 1 MB/s still fits."""

MAX_CONNECTIONS = 32
"""Connections served at once per listener, one thread each; more are answered a fast 503 by the
accepting thread and closed. A few Prometheus replicas, probes and webhook senders need far less."""

MAX_HEADER_BYTES = 64 * 1024
"""Bytes read before the request headers end (request line included); more gets 431."""

LISTEN_BACKLOG = 128
"""The kernel's queue of connections not accepted yet, so a burst of scrapers is not dropped."""

WEBHOOK_MAX_BODY = 64 * 1024
"""Body of a bearer-token webhook (an Argo CD notification is about 1 KB)."""

SIGNED_MAX_BODY = 25 * 1024 * 1024
"""Body of a self-authenticating webhook: GitHub caps a webhook payload at 25 MB."""

WEBHOOK_BODY_BUDGET = 64 * 1024 * 1024
"""Body bytes the webhook listener holds at once, over all connections. A request reserves its
``Content-Length`` before any byte is read; without room it gets 503 (GitHub's delivery is then
lost, and the next poll catches up). This, not connections × 25 MB, bounds the listener's memory."""

JSON_MAX_DEPTH = 64
"""Nesting of arrays and objects in a webhook's JSON body; GitHub's payloads nest about 8 deep.
Deeper gets 400 before the parser, which would otherwise fail on the recursion limit."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The limits of one ``HttpApp``; the defaults are the constants above."""

    header_timeout: float = HEADER_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    max_header_bytes: int = MAX_HEADER_BYTES
    listen_backlog: int = LISTEN_BACKLOG
    webhook_max_body: int = WEBHOOK_MAX_BODY
    signed_max_body: int = SIGNED_MAX_BODY
    webhook_body_budget: int = WEBHOOK_BODY_BUDGET
    json_max_depth: int = JSON_MAX_DEPTH
