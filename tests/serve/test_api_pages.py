# SPDX-License-Identifier: Apache-2.0
"""``/api/deployments`` one page at a time, over real HTTP on a store of 20,000 deployments written
through the store's own API: pages chain to exactly every row, filters select, bad parameters are
400, and eight unfiltered calls at once hold a bounded amount of memory (issue 13: each returned the
whole history, 23 MB on 30k deployments, and eight at once peaked at 1 GB)."""

from __future__ import annotations

import hashlib
import json
import threading
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from prometheus_client import CollectorRegistry

from exporter.core import snapshot
from exporter.model import DeploymentSource, FailureReason
from exporter.serve import Health, HttpApp
from exporter.serve.api import LIMIT_DEFAULT, LIMIT_MAX
from exporter.serve.explain import explain_page
from exporter.store import Store

pytestmark = pytest.mark.slow

DEPLOYMENTS = 20_000
PAIRS = [("shop", "prod"), ("shop", "staging"), ("cart", "prod"), ("cart", "staging")]
T0 = 1_700_000_000.0
PARALLEL = 8
# what 8 parallel unfiltered calls may allocate at their peak, all threads together: 8 pages of
# 100 deployments with their changes, as objects and as JSON, measured at 2 MiB
PARALLEL_PEAK_BOUND = 8 * 1024 * 1024


@dataclass(frozen=True)
class Row:
    id: int
    service: str
    environment: str
    deployed_at: float


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()  # a commit id, not a secret


def _deployed_at(i: int) -> float:
    """Two deployments share each time (the id breaks the tie), and every third one is off the
    microsecond grid, so a cursor must carry the stored time exactly."""
    return T0 + (i // 2) * 60 + (0.0000004 if i % 3 == 0 else 0.0)


def _fill(store: Store) -> list[Row]:
    rows: list[Row] = []
    with store.transaction() as tx:
        for i in range(DEPLOYMENTS):
            service, environment = PAIRS[i % len(PAIRS)]
            at = _deployed_at(i)
            dep_id, _ = tx.add_deployment(
                natural_key=f"test:{i}",
                service=service,
                environment=environment,
                version=f"v{i}",
                deployed_at=at,
                source=DeploymentSource.GITOPS,
                manifest_repo="gitops",
                manifest_commit=_sha(f"manifest {i}"),
                commit=_sha(f"commit {i}"),
                message=f"deploy v{i}",
                baseline=i < len(PAIRS),
            )
            tx.add_change_rows(
                dep_id,
                service,
                environment,
                [(_sha(f"{i}{k}"), at - 3600, at - 1800, f"change {k} of {i}") for k in "ab"],
            )
            rows.append(Row(dep_id, service, environment, at))
        for n, r in enumerate(rows[len(PAIRS) : -len(PAIRS) : 97]):
            restorer = rows[rows.index(r) + len(PAIRS)]  # the pair's next deployment
            tx.add_failure(
                natural_key=f"failure:{n}",
                service=r.service,
                environment=r.environment,
                reason=FailureReason.ROLLBACK,
                started_at=r.deployed_at,
                deployment_id=r.id,
                restored_at=restorer.deployed_at,
                restored_by=restorer.id,
            )
    return rows


@dataclass(frozen=True)
class Api:
    base: str
    rows: list[Row]
    store: Store


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    store = Store(tmp_path_factory.mktemp("pages") / "dora.db")
    rows = _fill(store)
    app = HttpApp(
        CollectorRegistry(),
        Health({}),
        lambda: snapshot.Snapshot(datetime.now(UTC)),
        lambda request: explain_page(store, "first_commit", request),
        "prod",
        "30d",
    )
    host, port = app.serve("127.0.0.1", 0)
    try:
        yield Api(f"http://{host}:{port}", rows, store)
    finally:
        app.shutdown()
        store.close()


def get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), json.loads(exc.read())


def chain(api: Api, query: dict[str, str], *, follow_link: bool = False) -> list[dict[str, Any]]:
    """Every page of a query, from the first to the one without a next cursor."""
    items: list[dict[str, Any]] = []
    url = f"{api.base}/api/deployments?{urlencode(query)}"
    for _ in range(DEPLOYMENTS + 1):
        status, headers, body = get(url)
        assert status == 200, body
        items.extend(body["deployments"])
        if body["next_cursor"] is None:
            assert "Link" not in headers
            return items
        link = headers["Link"]
        assert link.endswith('>; rel="next"') and f"cursor={body['next_cursor']}" in link
        if follow_link:
            url = api.base + link[1 : link.index(">")]
        else:
            url = f"{api.base}/api/deployments?{urlencode({**query, 'cursor': body['next_cursor']})}"
    raise AssertionError("the pages never ended")


def ordered(rows: list[Row]) -> list[int]:
    return [r.id for r in sorted(rows, key=lambda r: (r.deployed_at, r.id))]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat()


def test_pages_chain_to_exactly_every_deployment(api: Api) -> None:
    items = chain(api, {"limit": str(LIMIT_MAX)})
    ids = [x["id"] for x in items]
    assert len(ids) == len(set(ids)) == DEPLOYMENTS
    assert ids == ordered(api.rows)


def test_a_filtered_query_chains_through_its_link_headers(api: Api) -> None:
    items = chain(api, {"service": "shop", "environment": "prod", "limit": "337"}, follow_link=True)
    assert [x["id"] for x in items] == ordered([r for r in api.rows if (r.service, r.environment) == ("shop", "prod")])
    assert {(x["service"], x["environment"]) for x in items} == {("shop", "prod")}


def test_the_default_page_and_the_item_shape(api: Api) -> None:
    status, _, body = get(f"{api.base}/api/deployments")
    assert status == 200
    assert set(body) == {"deployments", "next_cursor"}
    assert len(body["deployments"]) == LIMIT_DEFAULT
    first = body["deployments"][0]
    assert set(first) == {
        "id", "service", "environment", "version", "commit", "manifest_commit", "deployed_at", "source",
        "message", "baseline", "rework", "failed", "failures", "restores_failures", "changes", "explanation",
    }  # fmt: skip
    assert first["baseline"] is True and len(first["changes"]) == 2


def test_failures_and_restores_are_those_of_the_page(api: Api) -> None:
    items = chain(api, {"service": "cart", "environment": "staging", "limit": "50"})
    by_id = {x["id"]: x for x in items}
    failed = [x for x in items if x["failed"]]
    assert failed
    for x in failed:
        (failure,) = x["failures"]
        restorer = by_id[failure["restored_by_deployment"]]
        assert restorer["restores_failures"], restorer
        assert failure["restored_at"] == restorer["deployed_at"]
    assert sum(len(x["restores_failures"]) for x in items) == len(failed)


def test_since_and_until_select_a_time_range(api: Api) -> None:
    since, until = _deployed_at(5000), _deployed_at(5400)
    items = chain(api, {"since": iso(since).replace("+00:00", "Z"), "until": iso(until), "limit": "250"})
    # the ISO times have microseconds: the rows off the grid at the bounds are compared as stored
    lo, hi = datetime.fromisoformat(iso(since)).timestamp(), datetime.fromisoformat(iso(until)).timestamp()
    assert [x["id"] for x in items] == ordered([r for r in api.rows if lo <= r.deployed_at < hi])
    assert len(items) > 300


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(LIMIT_MAX + 1)}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "WzEsICJ4Il0"}, "cursor"),  # [1, "x"]
        ({"cursor": "Ww"}, "cursor"),  # [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(api: Api, query: dict[str, str], names: str) -> None:
    status, headers, body = get(f"{api.base}/api/deployments?{urlencode(query)}")
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert body["error"].startswith(names)


def test_eight_parallel_unfiltered_calls_hold_bounded_memory(api: Api) -> None:
    url = f"{api.base}/api/deployments"
    get(url)  # the pool's readers and the server's first thread, opened before measuring
    errors: list[BaseException] = []
    start = threading.Barrier(PARALLEL)

    def call() -> None:
        try:
            start.wait(timeout=10)
            with urllib.request.urlopen(url, timeout=60) as resp:
                assert resp.status == 200
                while resp.read(64 * 1024):  # read and dropped: the client's copy is not measured
                    pass
        except BaseException as exc:
            errors.append(exc)

    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        threads = [threading.Thread(target=call) for _ in range(PARALLEL)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not errors
    assert peak - base < PARALLEL_PEAK_BOUND, f"peak {(peak - base) / 2**20:.1f} MiB"


def test_a_store_that_fails_is_a_503_not_a_dropped_connection(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = Store(tmp_path_factory.mktemp("closed") / "dora.db")
    app = HttpApp(
        CollectorRegistry(),
        Health({}),
        lambda: snapshot.Snapshot(datetime.now(UTC)),
        lambda request: explain_page(store, "first_commit", request),
        "prod",
        "30d",
    )
    host, port = app.serve("127.0.0.1", 0)
    store.close()  # every read now fails with a StoreError
    try:
        status, headers, body = get(f"http://{host}:{port}/api/deployments")
    finally:
        app.shutdown()
    assert (status, body) == (503, {"error": "store unavailable"})
    assert headers["Retry-After"] == "5"
