# SPDX-License-Identifier: Apache-2.0
"""Every duration and count in the config has an upper bound: a value past it fails ``check-config``
(exit 2, naming its dotted key) instead of passing and then crashing every start with an
``OverflowError`` traceback. Run through the real CLI in a subprocess, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import json_schema
from tests.support.gitrepo import T0, VALUES_RULE, GitRepo, manifest, values_yaml
from tests.support.paths import PROJECT_ROOT

# one value past each bound, at the dotted key check-config must name
TOO_LARGE: list[tuple[str, dict[str, Any]]] = [
    ("windows[0]", {"windows": ["1000000d"]}),
    ("windows[1]", {"windows": ["1d", "3651d"]}),
    ("failure_window", {"failure_window": "366d"}),
    ("rollback_min_age", {"rollback_min_age": "366d"}),
    ("gitops[0].poll_interval", {"gitops": [{"poll_interval": "2d"}]}),
    ("gitops[0].max_manifest_bytes", {"gitops": [{"max_manifest_bytes": 1 << 40}]}),
    ("gitops[0].max_manifest_bytes", {"gitops": [{"max_manifest_bytes": 0}]}),
    (
        "levels.custom.lead_time.medium",
        {"levels": {"preset": "custom", "custom": {"lead_time": {"elite": "1d", "high": "7d", "medium": "100000d"}}}},
    ),
    (
        "levels.custom.deployment_frequency.elite",
        {
            "levels": {
                "preset": "custom",
                "custom": {"deployment_frequency": {"elite": 1e300, "high": 1, "medium": 0.1}},
            }
        },
    ),
    ("github.poll_interval", {"github": {"poll_interval": "1000d"}}),
    ("github.budget", {"github": {"budget": "2h"}}),
    ("github.timeout", {"github": {"timeout": "1e12"}}),
    ("github.retries", {"github": {"retries": 11}}),
    ("github.max_rate_limit_wait", {"github": {"max_rate_limit_wait": "2h"}}),
    ("github.incidents.failure_window", {"github": {"incidents": {"failure_window": "400d"}}}),
    ("github.deployments.poll_interval", {"github": {"deployments": {"poll_interval": "2d"}}}),
    ("github.deployments.match_window", {"github": {"deployments": {"match_window": "2d"}}}),
    ("github.deployments.backfill", {"github": {"deployments": {"backfill": "100000d"}}}),
    ("github.deployments.pending_max_age", {"github": {"deployments": {"pending_max_age": "400d"}}}),
    ("argocd.timeouts.connect", {"argocd": {"timeouts": {"connect": "2h"}}}),
    ("argocd.timeouts.read", {"argocd": {"timeouts": {"read": "2h", "watch": "60s"}}}),
    ("argocd.timeouts.watch", {"argocd": {"timeouts": {"read": "3h", "watch": "2h"}}}),
    ("argocd.backoff[2]", {"argocd": {"backoff": ["1s", "2s", "1000000d"]}}),
    ("failure_window", {"failure_window": float("inf")}),  # YAML .inf
    ("failure_window", {"failure_window": float("nan")}),  # YAML .nan
]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if key == "gitops":
            out["gitops"] = [{**base["gitops"][0], **value[0]}]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _base(tmp_path: Path, repo: str) -> dict[str, Any]:
    return {
        "store": {"path": str(tmp_path / "dora.db")},
        "gitops": [{"repo": repo, "branch": "main", "manifests": [VALUES_RULE]}],
    }


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("DORA_")}
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(("key", "extra"), TOO_LARGE, ids=[f"{k}={json.dumps(e)[-24:]}" for k, e in TOO_LARGE])
def test_a_value_past_its_bound_fails_check_config_naming_its_key(
    tmp_path: Path, key: str, extra: dict[str, Any]
) -> None:
    config = tmp_path / "dora.yaml"
    config.write_text(yaml.safe_dump(_merge(_base(tmp_path, str(tmp_path / "gitops")), extra)))
    proc = _cli("check-config", config=config)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line.removeprefix("dora-exporter: config error: ") for line in proc.stderr.splitlines()]
    assert any(line.startswith(f"{key}: must be at") for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr


def _durations(node: Any) -> Iterator[dict[str, Any]]:
    """Every number branch of a duration in the schema (a duration is a string or a number)."""
    if isinstance(node, dict):
        branches = node.get("anyOf", [])
        if any(b.get("type") == "string" and "(ms|s|m|h|d|w)" in b.get("pattern", "") for b in branches):
            yield from (b for b in branches if b.get("type") == "number")
        for value in node.values():
            yield from _durations(value)
    elif isinstance(node, list):
        for item in node:
            yield from _durations(item)


def _numbers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            yield path, node
        for key, value in node.items():
            yield from _numbers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _numbers(item, f"{path}/{i}")


def test_every_duration_and_number_in_the_schema_has_a_maximum() -> None:
    schema = json_schema()
    durations = list(_durations(schema))
    assert len(durations) >= 20  # the walk reaches every section
    assert all("maximum" in d for d in durations), durations
    unbounded = [p for p, n in _numbers(schema) if "maximum" not in n and "app_installation_id" not in p]
    assert not unbounded, unbounded  # an installation id is a name, not a quantity


def test_the_largest_window_works_end_to_end(tmp_path: Path) -> None:
    """``windows: [3650d]``: ingest (which computes the snapshot over it) and a report over it."""
    gitops = GitRepo(tmp_path / "gitops")
    gitops.commit("Deploy api", T0, {manifest("api"): values_yaml("a" * 40)})
    gitops.commit("Deploy api", T0 + 60, {manifest("api"): values_yaml("b" * 40)})
    config = tmp_path / "dora.yaml"
    config.write_text(yaml.safe_dump({**_base(tmp_path, gitops.url), "windows": ["1d", "3650d"]}))
    assert _cli("check-config", config=config).returncode == 0
    ingest = _cli("ingest", config=config)
    assert ingest.returncode == 0 and "Traceback" not in ingest.stderr, ingest.stderr
    report = _cli("report", "--window", "3650d", "--format", "json", config=config)
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["rows"]
    assert [(r["service"], r["environment"], r["deployments"]) for r in rows] == [("api", "prod", 2)]
