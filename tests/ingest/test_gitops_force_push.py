# SPDX-License-Identifier: Apache-2.0
"""A force-push that moves a pair back, on real repositories: what the rewritten head declares is
what runs, so a value the pair had before is deployed again (and judged by the rollback rules).

The moment a branch was force-updated is nowhere in git: the deployment is timed when the poll
sees it, here a fixed clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from exporter.ingest.gitops import GitOpsIngester, IngestResult
from exporter.ingest.repos import Repos
from exporter.model import FailureReason
from tests.support.gitrepo import HOUR, T0, Exporter, GitRepo, bare_remote, manifest, values_yaml

API = manifest("api")
SEEN = T0 + 5 * HOUR  # when the poll after the force-push runs


@pytest.fixture
def opened() -> Iterator[list[Exporter]]:
    exporters: list[Exporter] = []
    yield exporters
    for e in exporters:
        e.close()


def poll_at(e: Exporter, now: int) -> IngestResult:
    """One poll, as the daemon runs it, with the clock at ``now``."""
    repos = Repos(e.cfg, None)
    try:
        ingester = GitOpsIngester(
            e.cfg, e.cfg.gitops[0], e.store, repos, clock=lambda: datetime.fromtimestamp(now, tz=UTC)
        )
        return ingester.poll()
    finally:
        repos.close()


def pushed(tmp_path: Path) -> GitRepo:
    work = GitRepo(tmp_path / "work")
    work.add_remote("origin", bare_remote(tmp_path / "remote.git"))
    return work


def failures(e: Exporter) -> list[tuple[FailureReason, int, int, int | None, int | None, str]]:
    return [
        (
            f.reason,
            f.deployment_id,
            int(f.started_at.timestamp()),
            int(f.restored_at.timestamp()) if f.restored_at else None,
            f.restored_by,
            f.detail,
        )
        for f in e.store.failures()
    ]


def test_a_reset_to_an_earlier_bump_deploys_its_value_again_as_a_rollback(
    tmp_path: Path, opened: list[Exporter]
) -> None:
    source = GitRepo(tmp_path / "source")
    s1 = source.commit("first feature", T0 - 10 * HOUR, {"app/main.py": "1\n"})
    s2 = source.commit("second feature", T0 - 5 * HOUR, {"app/main.py": "2\n"})
    s3 = source.commit("third feature", T0 - 4 * HOUR, {"app/main.py": "3\n"})
    work = pushed(tmp_path)
    c1 = work.commit("Deploy api", T0, {API: values_yaml(s1[:7])})
    c2 = work.commit("Release s2", T0 + HOUR, {API: values_yaml(s2[:7])})
    c3 = work.commit("Release s3", T0 + 2 * HOUR, {API: values_yaml(s3[:7])})
    work.push()
    services = [{"name": "api", "repo": source.url, "paths": ["app/"]}]
    e = Exporter(tmp_path, str(tmp_path / "remote.git"), services=services)
    opened.append(e)
    assert poll_at(e, T0 + 3 * HOUR).deployments == 3

    work.reset_hard(c2)
    work.push(force=True)
    result = poll_at(e, SEEN)

    assert (result.force_push, result.deployments) == (True, 1)
    assert e.deployments("api") == [
        (s1[:7], T0, c1, s1, True, False),
        (s2[:7], T0 + HOUR, c2, s2, False, False),
        (s3[:7], T0 + 2 * HOUR, c3, s3, False, False),
        (s2[:7], SEEN, c2, s2, False, True),  # declared at the new head: deployed again, a rollback
    ]
    d3, d4 = e.store.deployments("api")[2:]
    assert failures(e) == [(FailureReason.ROLLBACK, d3.id, T0 + 2 * HOUR, SEEN, d4.id, "ancestor")]
    assert e.change_shas("api") == [[], [s2], [s3], []]

    again = poll_at(e, SEEN + HOUR)
    assert (again.commits, again.deployments, again.force_push) == (0, 0, False)
    assert len(e.store.deployments()) == 4


def test_a_rewritten_head_setting_an_earlier_value_deploys_it_again(tmp_path: Path, opened: list[Exporter]) -> None:
    """The rewritten commit re-applies v2 (its old deployment is re-linked to it), but the pair
    ran v3 until the push: v2 is deployed again, a rollback to a lower version."""
    work = pushed(tmp_path)
    c1 = work.commit("Deploy api", T0, {API: values_yaml("v1")})
    work.commit("Release v2", T0 + HOUR, {API: values_yaml("v2")})
    c3 = work.commit("Release v3", T0 + 2 * HOUR, {API: values_yaml("v3")})
    work.push()
    e = Exporter(tmp_path, str(tmp_path / "remote.git"))
    opened.append(e)
    assert poll_at(e, T0 + 3 * HOUR).deployments == 3

    work.reset_hard(c1)
    c2b = work.commit("Release v2 (rewritten)", T0 + 3 * HOUR, {API: values_yaml("v2")})
    work.push(force=True)
    result = poll_at(e, SEEN)

    assert (result.force_push, result.deployments) == (True, 1)
    assert e.deployments("api") == [
        ("v1", T0, c1, None, True, False),
        ("v2", T0 + HOUR, c2b, None, False, False),  # re-linked to the rewritten commit
        ("v3", T0 + 2 * HOUR, c3, None, False, False),
        ("v2", SEEN, c2b, None, False, True),
    ]
    d3, d4 = e.store.deployments("api")[2:]
    assert failures(e) == [(FailureReason.ROLLBACK, d3.id, T0 + 2 * HOUR, SEEN, d4.id, "lower_version")]
