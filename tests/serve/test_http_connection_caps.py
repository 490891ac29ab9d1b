# SPDX-License-Identifier: Apache-2.0
"""Unauthenticated senders cannot pin more than a stated number of threads or bytes.

Resource assertions: handler threads counted in-process, memory traced with ``tracemalloc``, the
listen backlog read from the kernel. The attackers are the scripted ones in ``tests/support``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import tracemalloc
import urllib.request

import pytest

from tests.serve.conftest import Served
from tests.support.attackers import big_bodies, half_sent_requests, refused, request_head
from tests.support.waiting import wait_until

MAX_CONNECTIONS = 32  # the default cap per listener (docs/limits.md)
BODY_BUDGET = 64 * 1024 * 1024  # the webhook listener's default budget for request bodies
HALF_SENT = {
    "main": b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    "webhooks": b"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n",
}


def scrape(address: tuple[str, int]) -> int:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/metrics", timeout=5) as resp:
        return int(resp.status)


@pytest.mark.parametrize("listener", ["main", "webhooks"])
def test_half_sent_requests_beyond_the_cap_are_refused_without_a_thread_each(served: Served, listener: str) -> None:
    address = served.main if listener == "main" else served.webhooks
    attackers = MAX_CONNECTIONS + 16
    baseline = threading.active_count()
    with half_sent_requests(*address, count=attackers, head=HALF_SENT[listener]) as socks:
        turned_away: set[int] = set()

        def settled() -> bool:
            turned_away.update(i for i, s in enumerate(socks) if i not in turned_away and refused(s))
            return threading.active_count() - baseline + len(turned_away) >= attackers

        wait_until(settled, 10, message="every connection has a thread or was turned away")
        held = threading.active_count() - baseline
        assert held <= MAX_CONNECTIONS
        assert len(turned_away) >= attackers - MAX_CONNECTIONS
        if listener == "webhooks":
            assert scrape(served.main) == 200  # a full webhook listener leaves /metrics alone
    wait_until(lambda: threading.active_count() <= baseline, 10, message="handler threads gone after the close")


def test_the_cap_answers_a_fast_503(served: Served) -> None:
    with half_sent_requests(*served.webhooks, count=MAX_CONNECTIONS, head=HALF_SENT["webhooks"]):
        wait_until(lambda: served.app.listener("webhooks").active >= MAX_CONNECTIONS, 10)
        with socket.create_connection(served.webhooks, timeout=5) as sock:
            sock.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.0 503 ")
    assert b"Retry-After:" in answer
    wait_until(lambda: served.app.listener("webhooks").active == 0, 10, message="slots released on close")


def test_big_unsigned_bodies_cannot_make_the_listener_hold_more_than_its_body_budget(served: Served) -> None:
    # Each declares 20 MB (under GitHub's 25 MB cap), sends 4 MB of it, and then stalls.
    head = request_head(
        "POST",
        "/webhooks/github",
        {"Content-Length": str(20_000_000), "X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"},
    )
    part = b"x" * 4_000_000
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with big_bodies(*served.webhooks, count=12, head=head, part=part) as outcomes:
            _, peak = tracemalloc.get_traced_memory()
            held = served.app.listener("webhooks").body_bytes
    finally:
        tracemalloc.stop()
    assert peak - before < BODY_BUDGET
    assert held <= BODY_BUDGET
    assert sum(1 for o in outcomes if o.status == 503 or o.cut_off) >= 12 - BODY_BUDGET // 20_000_000


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a listen backlog")
def test_both_listeners_take_a_burst_of_128_connections_in_their_backlog(served: Served) -> None:
    for _, port in (served.main, served.webhooks):
        out = subprocess.run(
            ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.split()
        assert out[0] == "LISTEN"
        assert int(out[2]) == 128  # Send-Q of a listening socket is its backlog
