# SPDX-License-Identifier: Apache-2.0
"""Done means: only a GitOps repo and a GitHub token, and ``report`` gives squash-aware lead times
and incident-based failures and restores. The CLI runs for real, as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support.cli import cli
from tests.support.fakegithub import TOKEN, FakeGitHub, iso
from tests.support.gitrepo import HOUR, T0, GitRepo, manifest, values_yaml

DAY = 24 * HOUR


def test_ingest_and_report_with_only_a_gitops_repo_and_a_github_token(tmp_path: Path, fake: FakeGitHub) -> None:
    shop = fake.repo("acme/shop")
    base = shop.commit("initial", ["services/shop/main.py"], T0)
    merged = T0 + 4 * DAY
    squash = shop.squash_pr(
        7, [(merged - 3 * DAY, ["services/shop/a.py"]), (merged - HOUR, ["services/shop/b.py"])], merged
    )
    ops = fake.repo("acme/ops")
    ops.issue(1, "Checkout down", ["incident", "service:shop"], merged + 3 * HOUR, closed=merged + 4 * HOUR)

    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit(f"Promote to production: {base}", T0 + HOUR, {manifest("shop"): values_yaml(base)})
    gitops.commit(f"Promote to production: {squash}", merged + 2 * HOUR, {manifest("shop"): values_yaml(squash)})

    (tmp_path / "token").write_text(TOKEN + "\n")
    cfg = {
        "store": {"path": "dora.db"},
        "gitops": [
            {
                "repo": gitops.url,
                "manifests": [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}],
            }
        ],
        "services": [{"name": "shop", "repo": "github:acme/shop", "paths": ["services/shop"]}],
        "change_start": "pr_first_commit",
        "github": {
            "enabled": True,
            "base_url": fake.base_url,
            "incidents": {"repos": ["acme/ops"], "services": [{"service": "shop", "label": "service:shop"}]},
        },
    }
    (tmp_path / "dora.yaml").write_text(yaml.safe_dump(cfg))
    env = {"DORA_GITHUB_TOKEN_FILE": str(tmp_path / "token")}

    ingest = cli("ingest", "--config", "dora.yaml", cwd=tmp_path, env=env)
    assert ingest.returncode == 0, ingest.stderr
    assert TOKEN not in ingest.stdout + ingest.stderr
    report = cli(
        "report",
        "--config",
        "dora.yaml",
        "--format",
        "json",
        "--since",
        iso(T0),
        "--until",
        iso(T0 + 10 * DAY),
        cwd=tmp_path,
        env=env,
    )
    assert report.returncode == 0, report.stderr
    [row] = [r for r in json.loads(report.stdout)["rows"] if r["environment"] == "prod"]
    assert row["deployments"] == 2 and row["changes"] == 1
    assert row["lead_time_median_seconds"] == 3 * DAY + 2 * HOUR  # from the PR's first commit, not the squash
    assert row["failed_deployments"] == 1 and row["change_failure_rate"] == 0.5
    assert row["restored_failures"] == 1 and row["time_to_restore_median_seconds"] == HOUR
