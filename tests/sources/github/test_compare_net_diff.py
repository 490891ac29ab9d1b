# SPDX-License-Identifier: Apache-2.0
"""A compare's ``files`` are the net diff from the merge base, with renames: the path filter still
finds the commits that touched a service's paths, as ``git log -- paths`` does on a clone."""

from __future__ import annotations

from pathlib import Path

from exporter.sources.git.repository import Git
from exporter.sources.github.client import MemoryCache
from exporter.sources.github.repos import GitHubRepo
from tests.support.fakegithub import FakeGitHub
from tests.support.github import client_for
from tests.support.gitrepo import HOUR, T0, GitRepo

SHOP = ["services/shop"]


def _both(tmp_path: Path, fake: FakeGitHub) -> tuple[Git, GitHubRepo, dict[str, tuple[str, str]]]:
    """One history twice: a real repository, and the fake's copy of it. Name -> (clone SHA, fake SHA)."""
    real = GitRepo(tmp_path / "shop")
    hub = fake.repo("acme/shop")
    shas: dict[str, tuple[str, str]] = {}
    start = {"services/shop/main.py": "v1\n", "services/shop/old.py": "o\n", "services/cart/main.py": "c1\n"}
    shas["base"] = (real.commit("initial", T0, start), hub.commit("initial", sorted(start), T0, contents=dict(start)))
    shas["change"] = (
        real.commit("shop change", T0 + HOUR, {"services/shop/main.py": "v2\n"}),
        hub.commit("shop change", ["services/shop/main.py"], T0 + HOUR, contents={"services/shop/main.py": "v2\n"}),
    )
    shas["revert"] = (
        real.commit('Revert "shop change"', T0 + 2 * HOUR, {"services/shop/main.py": "v1\n"}),
        hub.revert(shas["change"][1], T0 + 2 * HOUR),
    )
    shas["cart"] = (
        real.commit("cart change", T0 + 3 * HOUR, {"services/cart/main.py": "c2\n"}),
        hub.commit("cart change", ["services/cart/main.py"], T0 + 3 * HOUR, contents={"services/cart/main.py": "c2\n"}),
    )
    shas["move"] = (
        real.move("services/shop/old.py", "lib/old.py", T0 + 4 * HOUR, "move old.py to lib"),
        hub.commit("move old.py to lib", [], T0 + 4 * HOUR, renames={"lib/old.py": "services/shop/old.py"}),
    )
    return Git(real.path), GitHubRepo(client_for(fake, MemoryCache()), "acme/shop", False), shas


def test_the_compare_lists_the_net_diff_and_a_rename_with_its_previous_name(tmp_path: Path, fake: FakeGitHub) -> None:
    _, gh, shas = _both(tmp_path, fake)
    base, cart, move = shas["base"][1], shas["cart"][1], shas["move"][1]
    # GitHub's compare: the changed-then-reverted shop file is not in the net diff
    body = gh.client.get_json(f"/repos/acme/shop/compare/{base}...{cart}")
    assert [(f["filename"], f["status"]) for f in body["files"]] == [("services/cart/main.py", "modified")]
    body = gh.client.get_json(f"/repos/acme/shop/compare/{cart}...{move}")
    assert [(f["filename"], f["status"], f.get("previous_filename")) for f in body["files"]] == [
        ("lib/old.py", "renamed", "services/shop/old.py")
    ]


def test_the_github_path_filter_agrees_with_the_clone_on_reverts_and_renames(tmp_path: Path, fake: FakeGitHub) -> None:
    clone, gh, shas = _both(tmp_path, fake)
    clone_name = {real: name for name, (real, _) in shas.items()}
    hub_name = {hub: name for name, (_, hub) in shas.items()}
    for base, head in [("base", "cart"), ("base", "move"), ("cart", "move"), ("revert", "cart")]:
        on_clone = [clone_name[c.sha] for c in clone.changes(shas[head][0], [shas[base][0]], SHOP)]
        on_github = [hub_name[c.sha] for c in gh.changes(shas[head][1], [shas[base][1]], SHOP)]
        assert on_github == on_clone, (base, head)
    # the shop file changed and reverted within the range: both commits touched the service's paths
    assert [hub_name[c.sha] for c in gh.changes(shas["cart"][1], [shas["base"][1]], SHOP)] == ["change", "revert"]
    # a file moved out of the service's paths counts by its previous name
    assert [hub_name[c.sha] for c in gh.changes(shas["move"][1], [shas["cart"][1]], SHOP)] == ["move"]
    assert gh.changes(shas["cart"][1], [shas["revert"][1]], SHOP) == []
