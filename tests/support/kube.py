# SPDX-License-Identifier: Apache-2.0
"""A real etcd + kube-apiserver on loopback, for tests that must talk to an actual API server.

Why: watch semantics (resourceVersions, ``410 Gone`` after compaction, reconnects after a server restart)
and RBAC are where fakes lie. The kube-apiserver binary is built once by ``.ci/kube-apiserver.sh``
(see its header for how and why).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Self

from kubernetes import client, config

AuthorizationMode = Literal["AlwaysAllow", "RBAC"]

ADMIN_TOKEN = "test-token"
POLL_INTERVAL = 0.1
ETCD_READY_TIMEOUT = 30.0
APISERVER_READY_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 40


class ClusterError(RuntimeError):
    """A component failed to start, died, or a command against it failed."""


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports the kernel considers free right now.

    All sockets stay bound until every port is chosen, so the ports cannot collide with each other.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` every ``POLL_INTERVAL`` s until true; raise ``ClusterError`` after ``timeout``.

    ``condition`` may raise ``ClusterError`` itself (e.g. the process died) to fail fast.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")
        time.sleep(POLL_INTERVAL)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last lines of a log file, for error messages that explain why a component did not come up."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path}: (missing)"
    return f"--- last {lines} lines of {path}:\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class _Process:
    """A child process with its log file; killed as a whole process group so no helper survives."""

    name: str
    argv: list[str]
    log_path: Path
    cwd: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self._log.write(f"\n=== starting: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        self.popen = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited: waiting longer would only hide the cause."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ClusterError(f"{self.name} exited with code {self.popen.returncode}\n{tail(self.log_path)}")

    def stop(self) -> None:
        popen, self.popen = self.popen, None
        if popen is not None and popen.poll() is None:
            self._signal(popen, signal.SIGTERM)
            try:
                popen.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._signal(popen, signal.SIGKILL)
                popen.wait(timeout=STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal(popen: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, sig)


def _insecure_tls() -> ssl.SSLContext:
    """The apiserver serves a self-signed certificate generated into its cert dir."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class KubeCluster:
    """etcd + kube-apiserver on free loopback ports under ``workdir``; use ``KubeCluster.start``.

    Attributes: ``kubeconfig`` (file for kubectl and the Python client), ``server`` (https URL),
    ``token`` (bearer token of ``admin`` in ``system:masters``), ``etcd_endpoint`` (http URL).

    ``watch_cache`` is off by default so that watches and lists are served straight from etcd and
    ``compact_etcd()`` provokes a real ``410 Gone``. With the cache on (as in production), watches are
    served from memory and never see the compaction; they only get 410 when the resourceVersion
    predates the cache window, e.g. after ``restart_apiserver()``. (1.20 ignores
    ``--watch-cache-sizes`` for custom resources, so the cache cannot be disabled per resource.)
    """

    def __init__(
        self,
        workdir: Path,
        apiserver_binary: Path,
        *,
        authorization_mode: AuthorizationMode = "AlwaysAllow",
        etcd_binary: str = "etcd",
        kubectl_binary: str = "kubectl",
        watch_cache: bool = False,
        extra_apiserver_args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.authorization_mode: AuthorizationMode = authorization_mode
        self.token = ADMIN_TOKEN
        self._kubectl = kubectl_binary
        etcd_client, etcd_peer, etcd_metrics, secure_port = free_ports(4)
        self.etcd_endpoint = f"http://127.0.0.1:{etcd_client}"
        self.server = f"https://127.0.0.1:{secure_port}"
        self.kubeconfig = workdir / "kubeconfig"
        self._etcd = _Process(
            "etcd",
            [
                etcd_binary,
                "--name=t",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_endpoint}",
                f"--advertise-client-urls={self.etcd_endpoint}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=t=http://127.0.0.1:{etcd_peer}",
                f"--listen-metrics-urls=http://127.0.0.1:{etcd_metrics}",
            ],
            workdir / "etcd.log",
            workdir,
        )
        self._apiserver = _Process(
            "kube-apiserver",
            [
                str(apiserver_binary),
                f"--etcd-servers={self.etcd_endpoint}",
                "--bind-address=127.0.0.1",
                f"--secure-port={secure_port}",
                f"--cert-dir={workdir / 'certs'}",
                "--insecure-port=0",
                f"--token-auth-file={workdir / 'tokens.csv'}",
                f"--authorization-mode={authorization_mode}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={workdir / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--advertise-address=127.0.0.1",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                f"--watch-cache={str(watch_cache).lower()}",
                *extra_apiserver_args,
            ],
            workdir / "kube-apiserver.log",
            workdir,
        )

    @classmethod
    def start(
        cls,
        workdir: Path,
        apiserver_binary: Path,
        *,
        authorization_mode: AuthorizationMode = "AlwaysAllow",
        etcd_binary: str = "etcd",
        kubectl_binary: str = "kubectl",
        watch_cache: bool = False,
        extra_apiserver_args: tuple[str, ...] = (),
    ) -> Self:
        """Start etcd then kube-apiserver and return once ``/readyz`` answers ``ok``.

        Processes are stopped again if startup fails, and at interpreter exit as a safety net.
        """
        workdir.mkdir(parents=True, exist_ok=True)
        cluster = cls(
            workdir,
            apiserver_binary,
            authorization_mode=authorization_mode,
            etcd_binary=etcd_binary,
            kubectl_binary=kubectl_binary,
            watch_cache=watch_cache,
            extra_apiserver_args=extra_apiserver_args,
        )
        atexit.register(cluster.stop)
        try:
            cluster._write_credentials()
            cluster._start_etcd()
            cluster._start_apiserver()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the apiserver, then etcd. Idempotent."""
        self._apiserver.stop()
        self._etcd.stop()
        atexit.unregister(self.stop)

    def restart_apiserver(self) -> None:
        """Stop and start kube-apiserver on the same port against the same etcd, then wait until ready.

        Why: clients must survive an apiserver restart (broken watches, fresh watch cache).
        """
        self._apiserver.stop()
        self._start_apiserver()

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True) -> str:
        """Run ``kubectl --kubeconfig`` against this cluster and return stdout; raise on failure if asked."""
        result = subprocess.run(
            [self._kubectl, f"--kubeconfig={self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result.stdout

    def api_client(self) -> client.ApiClient:
        """A Python client configured from ``kubeconfig``, as the exporter loads it; close it when done."""
        api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )
        return api_client

    def apply(self, manifest: Path | str) -> str:
        """``kubectl apply`` a manifest file (``Path``) or YAML text (``str``)."""
        if isinstance(manifest, Path):
            return self.kubectl("apply", "-f", str(manifest))
        return self.kubectl("apply", "-f", "-", input_text=manifest)

    def wait_for_crd(self, name: str, timeout: float = 30.0) -> None:
        """Block until a CRD is ``Established``: until then, creating its objects fails with 404.

        Polls the API directly: ``kubectl wait`` errors out while the CRD has no conditions yet.
        """

        def established() -> bool:
            self._apiserver.check_alive()
            crd = self.get_json(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = (crd or {}).get("status", {}).get("conditions") or []
            return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

        wait_until(established, timeout=timeout, what=f"CRD {name} to be Established")

    def get_json(self, path: str) -> dict[str, Any] | None:
        """GET an API path as the admin user; ``None`` on 404 (e.g. an object not created yet)."""
        request = urllib.request.Request(self.server + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=_insecure_tls()) as response:
                result: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return result

    def service_account_token(self, namespace: str, name: str, duration: str = "1h") -> str:
        """A bound token for a ServiceAccount (TokenRequest API), to test RBAC as the workload would."""
        return self.kubectl("create", "token", name, "-n", namespace, f"--duration={duration}").strip()

    def etcd_revision(self) -> int:
        """Current etcd revision, i.e. the newest resourceVersion the apiserver can have handed out."""
        response = self._etcd_post("/v3/kv/range", {"key": base64.b64encode(b"/").decode(), "limit": 1})
        return int(response["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd to its current revision and return it.

        Why: it makes a watch from an older resourceVersion fail with a real ``410 Gone`` (only while
        the watch cache is off; see the class docstring). Uses etcd 3.4's gRPC gateway, so no
        ``etcdctl`` is needed.
        """
        revision = self.etcd_revision()
        self._etcd_post("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _etcd_post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.etcd_endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.load(response)
        return result

    def _write_credentials(self) -> None:
        (self.workdir / "tokens.csv").write_text(f"{self.token},admin,admin,system:masters\n")
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        openssl = shutil.which("openssl")
        if openssl is None:
            raise ClusterError("openssl not found: run .ci/kube-apiserver.sh, which installs it")
        subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run([openssl, "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "test", "cluster": {"server": self.server, "insecure-skip-tls-verify": True}}
                    ],
                    "users": [{"name": "admin", "user": {"token": self.token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                },
                indent=2,
            )
        )

    def _start_etcd(self) -> None:
        self._etcd.start()
        wait_until(
            lambda: self._probe(self._etcd, self.etcd_endpoint + "/health", None, b'"health":"true"'),
            timeout=ETCD_READY_TIMEOUT,
            what=f"etcd at {self.etcd_endpoint}/health",
            on_timeout=lambda: tail(self._etcd.log_path),
        )

    def _start_apiserver(self) -> None:
        self._apiserver.start()
        wait_until(
            lambda: self._probe(self._apiserver, self.server + "/readyz", _insecure_tls(), b"ok"),
            timeout=APISERVER_READY_TIMEOUT,
            what=f"kube-apiserver at {self.server}/readyz",
            on_timeout=lambda: tail(self._apiserver.log_path) + "\n" + tail(self._etcd.log_path),
        )

    def _probe(self, process: _Process, url: str, tls: ssl.SSLContext | None, expected: bytes) -> bool:
        """One readiness check: false while the server is not up yet, raise if its process died."""
        process.check_alive()
        self._etcd.check_alive()
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=2, context=tls) as response:
                return response.status == 200 and expected in response.read()
        except (urllib.error.URLError, OSError):
            return False
