# SPDX-License-Identifier: Apache-2.0
"""A request is bounded in time as a whole: a sender trickling its headers or its body is cut off
at the deadline, however closely it spaces its bytes, and its connection slot comes back.

The deadlines are shortened through ``Limits``; what is asserted is the outcome (cut off before
the attacker finished, the slot free again), not how long it took.
"""

from __future__ import annotations

import pytest

from exporter.serve.limits import Limits
from tests.serve.conftest import TOKEN, ServeFactory
from tests.support.attackers import request_head, slow_body, slow_headers
from tests.support.waiting import wait_until

SHORT = Limits(header_timeout=0.5, request_timeout=1.5)
# about 300 bytes: at one byte per 50 ms, 15 s to send, far past both deadlines
HEAD = request_head("GET", "/metrics", {"X-Pad": "a" * 250})


@pytest.mark.parametrize("listener", ["http", "webhooks"])
def test_headers_sent_byte_by_byte_are_cut_off_at_the_header_deadline(serve_app: ServeFactory, listener: str) -> None:
    served = serve_app(limits=SHORT)
    address = served.main if listener == "http" else served.webhooks
    outcome = slow_headers(*address, head=HEAD, interval=0.05, give_up_after=8)
    assert outcome.cut_off
    assert outcome.sent < len(HEAD)
    assert outcome.status is None  # closed, never answered as if the request were complete
    wait_until(lambda: served.app.listener(listener).active == 0, 5, message="the slot is free again")


@pytest.mark.parametrize(
    ("path", "headers", "size"),
    [
        ("/webhooks/argocd", {"Authorization": f"Bearer {TOKEN}"}, 1_000),
        ("/webhooks/github", {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"}, 1_000_000),
    ],
)
def test_a_body_trickled_after_prompt_headers_is_cut_off_at_the_request_deadline(
    serve_app: ServeFactory, path: str, headers: dict[str, str], size: int
) -> None:
    served = serve_app(limits=SHORT)
    head = request_head("POST", path, {**headers, "Content-Length": str(size)})
    outcome = slow_body(*served.webhooks, head=head, body=b"x" * size, interval=0.05, give_up_after=8)
    assert outcome.cut_off
    assert outcome.sent < len(head) + size
    assert outcome.status == 408
    listener = served.app.listener("webhooks")
    wait_until(lambda: listener.active == 0 and listener.body_bytes == 0, 5, message="slot and bytes given back")


def test_a_prompt_request_is_served_within_the_same_limits(serve_app: ServeFactory) -> None:
    served = serve_app(limits=SHORT)
    head = request_head("POST", "/webhooks/argocd", {"Authorization": f"Bearer {TOKEN}", "Content-Length": "2"})
    outcome = slow_body(*served.webhooks, head=head, body=b"{}", interval=0.05, give_up_after=8)
    assert outcome.status == 202
    assert served.argocd_bodies == [b"{}"]
