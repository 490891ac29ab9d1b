# SPDX-License-Identifier: Apache-2.0
"""Private Git over SSH, for real: Debian's sshd on loopback serves a bare repository to a deploy
key, and the daemon clones and polls it through ``GIT_SSH_COMMAND`` (what the chart sets) with
strict host key checking. A ``known_hosts`` holding another key fails the poll at once, as a
``host_key`` source error that says what to check, instead of prompting or hanging."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from exporter import config
from exporter.daemon.runtime import Daemon
from exporter.demo.generate import generate, write_config
from exporter.sources.git.repository import SSH_DEFAULTS, git_env
from tests.support.sshd import INSTALL_HINT, Sshd, missing_binaries


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if missing := missing_binaries():
        pytest.fail(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
    server = Sshd.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare copy of the demo's monorepo: the GitOps repository and every service's source."""
    demo = tmp_path_factory.mktemp("demo")
    generate(demo, days=5, end=datetime.now(UTC) - timedelta(hours=1))
    bare = demo / "minishop.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(demo / "minishop"), str(bare)], check=True)
    return bare


def _daemon(tmp_path: Path, remote: Path, sshd: Sshd) -> Daemon:
    """The demo's config with every repository read through the SSH URL (mirrors in ``tmp_path``)."""
    path = write_config(tmp_path, "127.0.0.1:0")
    doc = yaml.safe_load(path.read_text())
    url = sshd.url(remote)
    for section in (*doc["gitops"], *doc["services"]):
        section["repo"] = url
    path.write_text(yaml.safe_dump(doc))
    return Daemon(config.load(path))


def test_the_daemon_clones_and_polls_over_ssh_with_a_deploy_key(
    tmp_path: Path, remote: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", sshd.ssh_command())
    d = _daemon(tmp_path, remote, sshd)
    try:
        (first,) = d.ingest_once()
        assert first is not None and first.deployments > 0, sshd.log()
        assert list((tmp_path / "mirrors").glob("*.git")), "the remote was cloned as a mirror"
        (again,) = d.ingest_once()  # a fetch over SSH, nothing new
        assert again is not None and again.deployments == 0
        _, errors = d.health.copy()
        assert not errors
    finally:
        d.close()


def test_a_wrong_host_key_fails_the_poll_fast_with_a_host_key_error(
    tmp_path: Path, remote: Path, sshd: Sshd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSH_COMMAND", sshd.ssh_command(known_hosts=sshd.wrong_known_hosts))
    d = _daemon(tmp_path, remote, sshd)
    try:
        started = time.monotonic()
        assert d.ingest_once() == [None]
        assert time.monotonic() - started < 20
        states, errors = d.health.copy()
        assert errors.get(("gitops", "host_key")) == 1, errors
        assert "host key is not the one in known_hosts" in states["gitops"].last_error
        assert not list((tmp_path / "mirrors").glob("*.git")), "nothing was cloned"
    finally:
        d.close()


def test_ssh_never_prompts_and_the_operators_own_options_come_first() -> None:
    env = git_env({"GIT_SSH_COMMAND": "ssh -i /k -o ConnectTimeout=5", "PATH": "/usr/bin"})
    assert env["GIT_SSH_COMMAND"] == f"ssh -i /k -o ConnectTimeout=5 {SSH_DEFAULTS}"  # ssh keeps the first value
    assert "BatchMode=yes" in git_env({})["GIT_SSH_COMMAND"]
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert "GIT_SSH_COMMAND" not in git_env({"GIT_SSH": "/usr/local/bin/my-ssh"})
