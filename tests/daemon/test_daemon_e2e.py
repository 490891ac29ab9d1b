# SPDX-License-Identifier: Apache-2.0
"""End to end, real parts only: the demo generator's repository, the CLI as subprocesses, the daemon
scraped over loopback, ``promtool`` on its output, and the ground truth the generator wrote."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.serve.api import LIMIT_MAX
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

DEMO_ARGS = ("--seed", "11", "--days", "60", "--end", "2026-06-01T12:00:00Z")
REASONS = ("sync_failed", "degraded", "rollback", "incident")
ROW_KEYS = {
    "service",
    "environment",
    "deployments",
    "deployments_per_day",
    "changes",
    "lead_time_median_seconds",
    "failed_deployments",
    "change_failure_rate",
    "restored_failures",
    "time_to_restore_median_seconds",
    "rework_deployments",
    "rework_rate",
    "levels",
}
LEVEL_KEYS = {"deployment_frequency", "lead_time", "change_failure_rate", "time_to_restore"}
# DESIGN §3, with the type each family must be exposed as
FAMILIES = {
    "dora_deployments_total": "counter",
    "dora_deployment_failures_total": "counter",
    "dora_changes_total": "counter",
    "dora_lead_time_seconds": "histogram",
    "dora_time_to_restore_seconds": "histogram",
    "dora_deployment_frequency_per_day": "gauge",
    "dora_lead_time_median_seconds": "gauge",
    "dora_change_failure_ratio": "gauge",
    "dora_time_to_restore_median_seconds": "gauge",
    "dora_rework_ratio": "gauge",
    "dora_performance_level": "gauge",
    "dora_last_deployment_timestamp_seconds": "gauge",
    "dora_sync_failing": "gauge",
    "dora_degraded": "gauge",
    "dora_failure_open": "gauge",
    "dora_exporter_source_up": "gauge",
    "dora_exporter_source_last_success_timestamp_seconds": "gauge",
    "dora_exporter_source_errors_total": "counter",
    "dora_exporter_unmatched_total": "counter",
    "dora_exporter_build_info": "gauge",
}
START_TIMEOUT = 30.0  # the first poll of an already ingested store takes milliseconds
STOP_TIMEOUT = 10.0


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DORA_")}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(*args: str) -> str:
    p = cli(*args)
    assert p.returncode == 0, f"{args}: exit {p.returncode}\n{p.stderr}"
    return p.stdout


@dataclass(frozen=True)
class Demo:
    dir: Path
    config: Path
    truth: dict[str, Any]

    @property
    def pairs(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(p["service"], p["environment"]): p for p in self.truth["pairs"].values()}

    @property
    def services(self) -> list[str]:
        return sorted({s for s, _ in self.pairs})

    def report(self) -> dict[str, Any]:
        start = datetime.fromisoformat(self.truth["start"])
        end = datetime.fromisoformat(self.truth["end"])
        since, until = (start - timedelta(days=1)).isoformat(), (end + timedelta(days=1)).isoformat()
        out = ok("report", "--config", str(self.config), "--since", since, "--until", until, "--format", "json")
        doc: dict[str, Any] = json.loads(out)
        return doc


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo")
    ok("demo", "--dir", str(out), *DEMO_ARGS, "--no-run")
    truth = json.loads((out / "ground-truth.json").read_text())
    assert sum(p["rollbacks"] for p in truth["pairs"].values()) > 0, "the seed should produce rollbacks"
    return Demo(out, out / "dora.yaml", truth)


def polled_commits(log: str) -> int:
    """GitOps commits ingested according to the ``gitops.polled`` events of a JSON log."""
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return sum(e["commits"] for e in events if e.get("event") == "gitops.polled")


@dataclass(frozen=True)
class Ingested:
    report: dict[str, Any]
    commits: int


@pytest.fixture(scope="module")
def ingested(demo: Demo) -> Ingested:
    """One full ingest of the demo repository, and the report right after it."""
    p = cli("ingest", "--config", str(demo.config))
    assert p.returncode == 0, p.stderr
    commits = polled_commits(p.stderr)
    assert commits > 0
    return Ingested(demo.report(), commits)


@pytest.fixture(scope="module")
def first_report(ingested: Ingested) -> dict[str, Any]:
    return ingested.report


def test_report_matches_ground_truth(demo: Demo, first_report: dict[str, Any]) -> None:
    doc = first_report
    assert set(doc) == {"since", "until", "production_environment", "rows"}
    assert doc["production_environment"] == "prod"
    since, until = datetime.fromisoformat(doc["since"]), datetime.fromisoformat(doc["until"])
    assert since == datetime.fromisoformat(demo.truth["start"]) - timedelta(days=1)
    assert until == datetime.fromisoformat(demo.truth["end"]) + timedelta(days=1)
    days = (until - since) / timedelta(days=1)
    rows = {(r["service"], r["environment"]): r for r in doc["rows"]}
    assert len(rows) == len(doc["rows"]) == 15
    assert set(rows) == set(demo.pairs)
    for key, truth in demo.pairs.items():
        row = rows[key]
        assert set(row) == ROW_KEYS, key
        assert set(row["levels"]) == LEVEL_KEYS, key
        assert set(row["levels"].values()) <= {"elite", "high", "medium", "low", None}, key
        got = (row["deployments"], row["failed_deployments"], row["changes"], row["lead_time_median_seconds"])
        expected = (truth["deployments"], truth["rollbacks"], truth["changes"], truth["lead_time_median_seconds"])
        assert got == expected, key
        # every rollback restores the release it replaces, and is rework
        assert (row["restored_failures"], row["rework_deployments"]) == (truth["rollbacks"], truth["rollbacks"]), key
        assert row["deployments_per_day"] == truth["deployments"] / days, key
        assert row["change_failure_rate"] == truth["rollbacks"] / truth["deployments"], key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


class Daemon:
    """``dora-exporter run`` as a subprocess on a free loopback port."""

    def __init__(self, demo: Demo, workdir: Path, store: Path | None = None) -> None:
        self.port = _free_port()
        raw = yaml.safe_load(demo.config.read_text())
        raw["http"]["listen"] = f"127.0.0.1:{self.port}"
        if store is not None:
            raw["store"]["path"] = str(store)
        self.store = Path(raw["store"]["path"])
        self.config = workdir / f"run-{self.port}.yaml"
        self.config.write_text(yaml.safe_dump(raw, sort_keys=False))
        self.stderr_path = workdir / f"run-{self.port}.log"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "exporter.cli", "run", "--config", str(self.config)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr_path.read_text()

    def get(self, path: str) -> tuple[int, str, str]:
        return _get(self.base + path)

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"daemon exited {self.proc.returncode}:\n{self.log()}"
            return self.get("/readyz")[0] == 200

        wait_until(ready, START_TIMEOUT, message="/readyz == 200")

    def stop(self) -> int:
        """SIGTERM, and the exit code within ``STOP_TIMEOUT``."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._stderr.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts; any still running at the end are killed (by their own pid)."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _totals(text: str, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[float | None, ...]]:
    sc = _samples(text)

    def at(name: str, **labels: str) -> float | None:
        return sc.get((name, frozenset(labels.items())))

    return {
        (s, e): (
            at("dora_deployments_total", service=s, environment=e),
            at("dora_changes_total", service=s, environment=e),
            *(at("dora_deployment_failures_total", service=s, environment=e, reason=r) for r in REASONS),
            at("dora_lead_time_seconds_count", service=s, environment=e),
            at("dora_lead_time_seconds_sum", service=s, environment=e),
        )
        for s, e in pairs
    }


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed: run .ci/install-prometheus.sh (Debian package `prometheus`)")
    return path


def test_run_serves_metrics_pages_and_stops_cleanly(
    demo: Demo, first_report: dict[str, Any], daemons: list[Daemon], tmp_path: Path
) -> None:
    d = Daemon(demo, tmp_path)
    daemons.append(d)
    d.wait_ready()

    status, ctype, metrics = d.get("/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    for name, kind in FAMILIES.items():
        assert f"# TYPE {name} {kind}\n" in metrics, name
    check = subprocess.run(
        [_promtool(), "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert (check.stdout + check.stderr).strip() == ""  # no lint findings either

    totals = _totals(metrics, list(demo.pairs))
    for (s, e), truth in demo.pairs.items():
        deployments, changes, sync_failed, degraded, rollback, incident, lead_count, _ = totals[(s, e)]
        assert (deployments, changes, lead_count) == (truth["deployments"], truth["changes"], truth["changes"])
        assert (sync_failed, degraded, rollback, incident) == (0, 0, truth["rollbacks"], 0)
    sc = _samples(metrics)
    assert sc[("dora_exporter_source_up", frozenset({("source", "gitops")}))] == 1.0
    assert sc[("dora_exporter_unmatched_total", frozenset({("source", "gitops"), ("reason", "unresolved_tag")}))] == 0

    status, _, body = d.get("/healthz")
    assert (status, body) == (200, "ok\n")

    status, ctype, page = d.get("/")
    assert status == 200 and ctype.startswith("text/html")
    assert page.startswith("<!doctype html>")
    for service in demo.services:
        assert f"<td>{service}</td>" in page, service

    # a pair's deployments: what they carried adds up to the ground truth
    status, ctype, body = d.get(f"/api/deployments?service=user-service&environment=prod&limit={LIMIT_MAX}")
    assert status == 200 and ctype == "application/json"
    assert json.loads(body)["next_cursor"] is None  # one page holds the pair's whole history
    user = json.loads(body)["deployments"]
    truth = demo.pairs[("user-service", "prod")]
    assert len(user) == truth["deployments"]
    assert user[0]["baseline"] is True and user[0]["changes"] == []
    assert all(x["service"] == "user-service" and x["environment"] == "prod" for x in user)
    leads = [c["lead_time_seconds"] for x in user for c in x["changes"]]
    assert len(leads) == truth["changes"]
    assert statistics.median(leads) == truth["lead_time_median_seconds"]
    assert sum(x["failed"] for x in user) == truth["rollbacks"]

    # a rolled-back release: failed for reason rollback, restored by the deployment that put the old tag back
    rb = demo.truth["rollbacks"][0]
    status, _, body = d.get(f"/api/deployments?service={rb['service']}&environment=prod&limit={LIMIT_MAX}")
    deps = json.loads(body)["deployments"]
    by_id = {x["id"]: x for x in deps}
    failed = [x for x in deps if x["version"] == rb["from"] and x["failed"]]
    assert failed, rb
    bad = failed[0]
    assert [f["reason"] for f in bad["failures"]] == ["rollback"]
    assert bad["failures"][0]["started_at"] == bad["deployed_at"]
    fix = by_id[bad["failures"][0]["restored_by_deployment"]]
    assert (fix["version"], fix["message"], fix["rework"]) == (rb["to"], rb["message"], True)
    assert fix["changes"] == []  # going back delivers nothing new
    assert bad["failures"][0]["restored_at"] == fix["deployed_at"]
    rollbacks = [f for x in deps for f in x["failures"] if f["reason"] == "rollback"]
    assert len(rollbacks) == demo.pairs[(rb["service"], "prod")]["rollbacks"]

    assert d.stop() == 0, d.log()
    wal = Path(f"{d.store}-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the WAL was not checkpointed on shutdown"
    assert "daemon.stopped" in d.log()

    # explain: the latest deployment, exactly as the debug endpoint showed it
    out = ok("explain", "--config", str(d.config), "--service", "user-service", "--environment", "prod")
    latest = json.loads(out)
    assert latest == user[-1]
    assert latest["explanation"].startswith(f"carried {len(latest['changes'])} change(s)")


def test_restart_recounts_nothing(
    demo: Demo, first_report: dict[str, Any], daemons: list[Daemon], tmp_path: Path
) -> None:
    ok("ingest", "--config", str(demo.config))
    ok("ingest", "--config", str(demo.config))
    assert demo.report() == first_report

    pairs = list(demo.pairs)
    seen = []
    for _ in range(2):  # a daemon, stopped, and started again over the same store
        d = Daemon(demo, tmp_path)
        daemons.append(d)
        d.wait_ready()
        seen.append(_totals(d.get("/metrics")[2], pairs))
        assert d.stop() == 0, d.log()
    assert seen[0] == seen[1]
    assert {k: v[0] for k, v in seen[0].items()} == {k: t["deployments"] for k, t in demo.pairs.items()}
    assert demo.report() == first_report


def test_interrupted_first_ingest_resumes_without_double_counting(
    demo: Demo, ingested: Ingested, daemons: list[Daemon], tmp_path: Path
) -> None:
    """SIGTERM as soon as the daemon has started its first ingest (in practice it stops after the
    first commit of the first batch), then ``ingest``: every commit is ingested exactly once across
    the two processes, and the numbers are those of the uninterrupted run, to the row."""
    d = Daemon(demo, tmp_path, store=tmp_path / "interrupted.db")
    daemons.append(d)
    wait_until(lambda: "daemon.started" in d.log() or d.proc.poll() is not None, START_TIMEOUT, message="start")
    assert d.stop() == 0, d.log()
    before = polled_commits(d.log())
    p = cli("ingest", "--config", str(d.config))
    assert p.returncode == 0, p.stderr
    after = polled_commits(p.stderr)
    assert before < ingested.commits, "the daemon was not interrupted"
    assert before + after == ingested.commits, (before, after)
    assert Demo(demo.dir, d.config, demo.truth).report() == ingested.report


def test_credentials_in_a_clone_url_never_reach_the_logs(demo: Demo, tmp_path: Path) -> None:
    """A clone URL with credentials, mirrored for real (``file://`` takes userinfo like ``https://``),
    with a branch that does not exist: the error is logged, the token is not."""
    raw = yaml.safe_load(demo.config.read_text())
    raw["store"]["path"] = str(tmp_path / "dora.db")
    raw["gitops"][0]["repo"] = f"file://user:tok3n@localhost{demo.dir / 'minishop'}"
    raw["gitops"][0]["branch"] = "no-such-branch"
    cfg = tmp_path / "dora.yaml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    p = cli("ingest", "--config", str(cfg))
    assert p.returncode == 1, p.stderr
    assert "branch_missing" in p.stderr
    assert "tok3n" not in p.stdout + p.stderr
