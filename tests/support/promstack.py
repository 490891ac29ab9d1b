# SPDX-License-Identifier: Apache-2.0
"""A real Prometheus and Alertmanager on free loopback ports, for end-to-end alerting tests.

Both come from Debian's packages (``bash .ci/install-prometheus.sh``), with the flags set below.
``PromStack.start`` starts Alertmanager first, so that
Prometheus can deliver from its first evaluation, then Prometheus with 1 s scrape and evaluation
intervals. Each waits for ``/-/ready`` within a bounded time and fails fast, with the tail of its
log, if the process exits. ``stop`` (also registered with ``atexit``) kills both process groups.
"""

from __future__ import annotations

import atexit
import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml

from tests.support.kube import ClusterError, _Process, free_ports, tail, wait_until

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"
INSTALL_HINT = "run `bash .ci/install-prometheus.sh` (Debian packages prometheus and prometheus-alertmanager)"
READY_TIMEOUT = 30.0
HTTP_TIMEOUT = 10.0
INTERVAL = "1s"


def missing_binaries() -> list[str]:
    """The executables of the stack that are not on ``PATH``."""
    return [name for name in (PROMETHEUS, ALERTMANAGER) if shutil.which(name) is None]


def _http(url: str, data: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """GET (or POST a form when ``data`` is given); returns status and body, also for HTTP errors."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _ready(process: _Process, url: str) -> bool:
    process.check_alive()
    try:
        status, _ = _http(f"{url}/-/ready")
    except OSError:
        return False
    return status == 200


@dataclass
class PromStack:
    """Running Alertmanager and Prometheus; ``prometheus_url``/``alertmanager_url`` are http URLs."""

    workdir: Path
    prometheus_url: str = ""
    alertmanager_url: str = ""
    processes: list[_Process] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        scrape_target: str,
        rule_files: Sequence[str],
        webhook_url: str,
        job: str = "dora-exporter",
        scrape_options: Mapping[str, Any] | None = None,
        more_jobs: Sequence[Mapping[str, Any]] = (),
    ) -> Self:
        """Start Alertmanager (routing everything to ``webhook_url``), then Prometheus scraping
        ``scrape_target`` (``host:port``) as ``job`` with ``honor_labels: true`` and loading ``rule_files``.

        ``scrape_options`` go into that job's scrape config as they are (``scheme: https``,
        ``tls_config``, ``basic_auth``); ``more_jobs`` are further whole scrape configs."""
        missing = missing_binaries()
        if missing:
            raise ClusterError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
        workdir.mkdir(parents=True, exist_ok=True)
        stack = cls(workdir)
        atexit.register(stack.stop)
        try:
            am_port, prom_port = free_ports(2)
            stack.alertmanager_url = stack._start_alertmanager(am_port, webhook_url)
            scrape = {
                "job_name": job,
                "honor_labels": True,
                "static_configs": [{"targets": [scrape_target]}],
                **(scrape_options or {}),
            }
            stack.prometheus_url = stack._start_prometheus(prom_port, am_port, [scrape, *more_jobs], rule_files)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _start_alertmanager(self, port: int, webhook_url: str) -> str:
        config = {
            "route": {
                "receiver": "webhook",
                "group_by": ["alertname", "service", "environment"],
                "group_wait": INTERVAL,
                "group_interval": INTERVAL,
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
        }
        config_path = self.workdir / "alertmanager.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        url = f"http://127.0.0.1:{port}"
        self._run(
            "alertmanager",
            [
                ALERTMANAGER,
                f"--config.file={config_path}",
                f"--storage.path={self.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            url,
        )
        return url

    def _start_prometheus(
        self, port: int, am_port: int, scrape_configs: Sequence[Mapping[str, Any]], rule_files: Sequence[str]
    ) -> str:
        config = {
            "global": {"scrape_interval": INTERVAL, "scrape_timeout": INTERVAL, "evaluation_interval": INTERVAL},
            "rule_files": list(rule_files),
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [dict(c) for c in scrape_configs],
        }
        config_path = self.workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        url = f"http://127.0.0.1:{port}"
        self._run(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--rules.alert.resend-delay=1s",
            ],
            url,
        )
        return url

    def _run(self, name: str, argv: list[str], url: str) -> None:
        process = _Process(name, argv, self.workdir / f"{name}.log", self.workdir)
        self.processes.append(process)
        process.start()
        wait_until(
            lambda: _ready(process, url),
            timeout=READY_TIMEOUT,
            what=f"{name} at {url}/-/ready",
            on_timeout=lambda: tail(process.log_path),
        )

    def stop(self) -> None:
        """Kill Prometheus, then Alertmanager; idempotent."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        atexit.unregister(self.stop)

    def logs(self) -> str:
        """The tails of both logs, for assertion messages."""
        return "\n".join(tail(self.workdir / f"{name}.log") for name in ("alertmanager", "prometheus"))

    # -- Prometheus HTTP API -------------------------------------------------------------------

    def api(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``/api/v1/<path>``: a POSTed form when ``params`` is given, else a GET; the decoded JSON,
        whose ``status`` is "success" or "error" (with ``errorType`` and ``error``)."""
        status, body = _http(f"{self.prometheus_url}/api/v1/{path}", params)
        try:
            decoded: dict[str, Any] = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ClusterError(f"/api/v1/{path}: HTTP {status}, not JSON: {body[:300]!r}") from exc
        return decoded

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query at the current time."""
        return self.api("query", {"query": expr})

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        return self.api("query_range", {"query": expr, "start": str(start), "end": str(end), "step": str(step)})

    def label_values(self, label: str, match: str) -> dict[str, Any]:
        """What Grafana's ``label_values(<match>, <label>)`` runs."""
        query = urllib.parse.urlencode({"match[]": match})
        return self.api(f"label/{urllib.parse.quote(label)}/values?{query}")

    def vector(self, expr: str) -> list[dict[str, Any]]:
        """The samples of an instant query; raises if the query fails."""
        result = self.query(expr)
        if result.get("status") != "success":
            raise ClusterError(f"query {expr!r} failed: {result.get('errorType')}: {result.get('error')}")
        samples: list[dict[str, Any]] = result["data"]["result"]
        return samples
