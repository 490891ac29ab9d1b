# SPDX-License-Identifier: Apache-2.0
"""Incident issues as failures: attribution inside and outside the window, restores, reopening."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.core import snapshot
from exporter.core.levels import PRESETS
from exporter.ingest.github_cache import StoreCache
from exporter.ingest.github_incidents import IncidentIngester
from exporter.model import FailureReason, PairKey
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, T0, Exporter, GitRepo, manifest, values_yaml

DAY = 24 * HOUR
INCIDENTS = {
    "repos": ["acme/ops"],
    "services": [
        {"service": "shop", "label": "service:shop"},
        {"service": "cart", "title_pattern": "(?i)\\bcart\\b"},
    ],
}


@pytest.fixture
def setup(tmp_path: Path, fake: FakeGitHub) -> tuple[Exporter, IncidentIngester]:
    gitops = GitRepo(tmp_path / "gitops")
    for i, (service, when) in enumerate([("shop", T0), ("cart", T0), ("shop", T0 + DAY), ("cart", T0 + HOUR)]):
        gitops.commit(f"deploy {i}", when + i, {manifest(service): values_yaml(f"v{i}")})
    e = Exporter(
        tmp_path,
        gitops.url,
        services=[{"name": "shop"}, {"name": "cart"}],
        github={"enabled": True, "base_url": fake.base_url, "incidents": INCIDENTS},
    )
    e.poll()
    return e, IncidentIngester(e.cfg, e.store, client_for(fake, StoreCache(e.store)))


def _failures(e: Exporter, service: str) -> list[tuple[int | None, int, int | None, str]]:
    return [
        (
            f.deployment_id,
            int(f.started_at.timestamp()),
            int(f.restored_at.timestamp()) if f.restored_at else None,
            f.detail,
        )
        for f in e.store.failures(service, "prod")
        if f.reason is FailureReason.INCIDENT
    ]


def test_incidents_are_attributed_inside_the_window_and_unattributed_outside(
    setup: tuple[Exporter, IncidentIngester], fake: FakeGitHub
) -> None:
    e, ing = setup
    ops = fake.repo("acme/ops")
    shop_deploy = e.store.deployments("shop", "prod")[-1]
    opened = int(shop_deploy.deployed_at.timestamp()) + 2 * HOUR
    ops.issue(1, "Checkout returns 500", ["incident", "service:shop"], opened)
    ops.issue(2, "Cart is down", ["incident"], T0 + 5 * DAY)  # cart last deployed 5 days earlier
    ops.issue(3, "Fix the cart incident", ["incident"], T0 + 2 * HOUR, pull_request=True)  # a PR: ignored
    ops.issue(4, "Something is slow", ["incident"], T0 + 2 * HOUR)  # no service: unmapped
    ops.issue(5, "Cart typo", ["bug"], T0 + 2 * HOUR)  # not an incident

    result = ing.poll()
    assert (result.issues, result.new, result.unattributed, result.unmapped) == (3, 2, 1, 1)
    assert _failures(e, "shop") == [(shop_deploy.id, opened, None, "acme/ops#1")]
    assert _failures(e, "cart") == [(None, T0 + 5 * DAY, None, "acme/ops#2")]
    assert e.store.unmatched_counts() == {("github", "incident_unattributed"): 1, ("github", "incident_unmapped"): 1}
    assert [r.query.get("labels") for r in fake.hits("/issues")] == ["incident"]

    snap = snapshot.build(
        e.store.histories("commit_time"),
        known_pairs=[],
        now=datetime.fromtimestamp(T0 + 6 * DAY, tz=UTC),
        windows=[("7d", 7 * DAY)],
        thresholds=PRESETS["dora-2023"],
    )
    shop, cart = snap.pair("shop", "prod"), snap.pair("cart", "prod")
    assert shop is not None and cart is not None
    assert shop.failures_by_reason[FailureReason.INCIDENT] == 1 and shop.failure_open
    assert cart.failures_by_reason[FailureReason.INCIDENT] == 1  # unattributed still counts
    assert shop.windows["7d"].change_failure_rate == 0.5  # one of shop's two deployments failed

    # a second pass with nothing new changes nothing and counts nothing twice
    again = ing.poll()
    assert again.new == 0 and again.unattributed == 0
    assert len(_failures(e, "shop")) == 1
    e.close()


def test_close_restores_reopen_reopens_and_close_again_restores(
    setup: tuple[Exporter, IncidentIngester], fake: FakeGitHub
) -> None:
    e, ing = setup
    ops = fake.repo("acme/ops")
    opened = T0 + DAY + 3 * HOUR
    ops.issue(7, "Shop outage", ["incident", "service:shop"], opened)
    ing.poll()
    ops.update_issue(7, opened + HOUR, closed=opened + HOUR)
    ing.poll()
    assert _failures(e, "shop")[0][2] == opened + HOUR
    ops.update_issue(7, opened + 2 * HOUR, closed=None)  # reopened
    ing.poll()
    assert _failures(e, "shop")[0][2] is None
    ops.update_issue(7, opened + 5 * HOUR, closed=opened + 5 * HOUR)
    ing.poll()
    [(dep, started, restored, _)] = _failures(e, "shop")
    assert dep == e.store.deployments("shop", "prod")[-1].id  # attribution kept through the edits
    assert restored is not None and restored - started == 5 * HOUR
    history = e.store.histories("commit_time")[PairKey("shop", "prod")]
    assert [f.restored_at is not None for f in history.failures] == [True]
    e.close()


def test_issues_updated_after_the_gitops_horizon_wait_for_the_next_pass(
    setup: tuple[Exporter, IncidentIngester], fake: FakeGitHub
) -> None:
    e, ing = setup
    ops = fake.repo("acme/ops")
    ops.issue(1, "Shop down", ["incident", "service:shop"], T0 + DAY + HOUR)
    ops.issue(2, "Shop down again", ["incident", "service:shop"], T0 + 3 * DAY)
    first = ing.poll(horizon=datetime.fromtimestamp(T0 + 2 * DAY, tz=UTC))
    assert (first.new, first.deferred) == (1, 1)
    assert [f[3] for f in _failures(e, "shop")] == ["acme/ops#1"]
    second = ing.poll(horizon=datetime.fromtimestamp(T0 + 4 * DAY, tz=UTC))
    assert (second.new, second.deferred) == (1, 0)
    assert [f[3] for f in _failures(e, "shop")] == ["acme/ops#1", "acme/ops#2"]
    e.close()


def test_a_spent_budget_stops_the_incident_pass_without_losing_an_issue(
    setup: tuple[Exporter, IncidentIngester], fake: FakeGitHub
) -> None:
    e, ing = setup
    fake.repo("acme/ops").issue(1, "Shop down", ["incident", "service:shop"], T0 + DAY + HOUR)
    with ing.client.budget(0):
        spent = ing.poll()
    assert spent.stopped and spent.issues == 0 and fake.hits("/issues") == []
    assert ing.poll().new == 1 and len(_failures(e, "shop")) == 1
    e.close()


def test_removing_the_label_closes_the_incident_then_and_putting_it_back_reopens_it(
    setup: tuple[Exporter, IncidentIngester], fake: FakeGitHub
) -> None:
    e, ing = setup
    ops = fake.repo("acme/ops")
    opened = T0 + DAY + 3 * HOUR
    ops.issue(7, "Shop outage", ["incident", "service:shop"], opened)
    ops.issue(8, "Shop slow", ["incident", "service:shop"], opened + HOUR)
    assert ing.poll().new == 2
    ops.relabel(7, ["service:shop"], opened + 2 * HOUR)  # a false alarm: the incident label goes
    ops.update_issue(7, opened + 3 * HOUR, closed=opened + 3 * HOUR)  # closed later: no longer listed
    result = ing.poll()
    assert result.withdrawn == 1
    assert [(f[3], f[2]) for f in _failures(e, "shop")] == [("acme/ops#7", opened + 3 * HOUR), ("acme/ops#8", None)]
    # only open incidents the list did not show are read one by one (#8 is listed again, in the overlap)
    assert [r.path for r in fake.hits("/issues/")] == ["/repos/acme/ops/issues/7"]
    assert ing.poll().withdrawn == 0 and len(fake.hits("/issues/7")) == 1
    ops.relabel(7, ["incident", "service:shop"], opened + 4 * HOUR)
    ops.update_issue(7, opened + 4 * HOUR, closed=None)  # back as an incident, open
    ing.poll()
    assert _failures(e, "shop")[0][2] is None
    e.close()
