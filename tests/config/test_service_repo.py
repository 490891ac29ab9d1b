# SPDX-License-Identifier: Apache-2.0
"""A service without ``repo:`` is read from the (single) GitOps repository; one that can count no change
is said loudly: a warning at start, a line from ``check-config``, the ``services_without_changes`` gauge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from structlog.testing import capture_logs

from exporter import config
from exporter.daemon.runtime import Daemon
from exporter.demo import generate
from tests.support.cli import cli


def _demo(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "demo"
    generate.generate(out, seed=3, days=6)
    raw: dict[str, Any] = yaml.safe_load(generate.write_config(out, "127.0.0.1:0").read_text())
    return raw


def _ingest(tmp_path: Path, raw: dict[str, Any], name: str) -> tuple[dict[str, float], float | None, list[Any]]:
    """Changes per service and environment after one ingest pass, the gauge, and the log events."""
    raw = {**raw, "store": {"path": str(tmp_path / f"{name}.db")}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    with capture_logs() as logs:
        daemon = Daemon(config.load(path))
        try:
            daemon.ingest_once()
            changes: dict[str, float] = {}
            gauge = None
            for family in daemon.registry.collect():
                for s in family.samples:
                    if s.name == "dora_changes_total":
                        changes[f"{s.labels['service']}/{s.labels['environment']}"] = s.value
                    if s.name == "dora_exporter_services_without_changes":
                        gauge = s.value
        finally:
            daemon.close()
    return changes, gauge, logs


def test_services_without_repo_are_read_from_the_single_gitops_repository(tmp_path: Path) -> None:
    raw = _demo(tmp_path)
    explicit, _, _ = _ingest(tmp_path, raw, "explicit")
    for s in raw["services"]:
        del s["repo"]

    defaulted, gauge, logs = _ingest(tmp_path, raw, "defaulted")

    assert sum(explicit.values()) > 0
    assert defaulted == explicit
    assert gauge == 0
    assert not [e for e in logs if e["event"] == "config.service_without_changes"]


def test_a_service_whose_paths_exist_nowhere_is_warned_about_and_counted(tmp_path: Path) -> None:
    raw = _demo(tmp_path)
    raw["services"].append({"name": "ghost-service", "paths": ["services/ghost-service/"]})

    _, gauge, logs = _ingest(tmp_path, raw, "ghost")

    warned = [e for e in logs if e["event"] == "config.service_without_changes"]
    assert [e["service"] for e in warned] == ["ghost-service"]
    assert warned[0]["log_level"] == "warning"
    assert "services/ghost-service/" in warned[0]["reason"]
    assert gauge == 1


def test_without_a_gitops_repository_a_service_without_repo_is_warned_about(tmp_path: Path) -> None:
    raw = {
        "store": {"path": str(tmp_path / "dora.db")},
        "services": [{"name": "a", "paths": ["a/"]}, {"name": "b", "repo": "."}],
    }
    path = tmp_path / "dora.yaml"
    path.write_text(yaml.safe_dump(raw))

    _, gauge, logs = _ingest(tmp_path, raw, "nogitops")
    p = cli("check-config", "--config", str(path))

    assert p.returncode == 0, p.stderr
    lines = [line for line in p.stderr.splitlines() if "no lead time" in line]
    assert len(lines) == 1 and "service a " in lines[0] and "no GitOps repository" in lines[0], p.stderr
    assert [e["service"] for e in logs if e["event"] == "config.service_without_changes"] == ["a"]
    assert gauge == 1


def test_the_default_repo_is_the_gitops_repository_only_when_there_is_one(tmp_path: Path) -> None:
    rule = {"path": "{service}/{environment}.yaml", "yaml_key": "image.tag"}
    one = {
        "gitops": [{"repo": "/srv/gitops", "manifests": [rule]}],
        "services": [{"name": "a", "paths": ["a/"]}, {"name": "b", "repo": "/srv/b"}, {"name": "c"}],
    }
    two = {**one, "gitops": [*one["gitops"], {"repo": "/srv/other", "manifests": [rule]}]}

    assert [s.repo for s in config.parse(one, environ={}, base_dir=tmp_path).services] == [
        "/srv/gitops",
        "/srv/b",
        None,
    ]
    assert [s.repo for s in config.parse(two, environ={}, base_dir=tmp_path).services] == [None, "/srv/b", None]
