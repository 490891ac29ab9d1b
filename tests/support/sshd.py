# SPDX-License-Identifier: Apache-2.0
"""Debian's OpenSSH server on a free loopback port, serving Git to one deploy key.

Everything lives in a folder of the test: a host key made for this server, a deploy key whose
public half is the only line of ``AuthorizedKeysFile`` (with ``restrict``: no pty, no forwarding),
and a config that listens on 127.0.0.1 only, allows only the current user, and no password at all.
``StrictModes no`` lets it read keys in a temporary folder; ``UsePAM no`` keeps it self-contained.
``known_hosts`` (the right host key) and ``wrong_known_hosts`` (another key for the same address)
are written beside them for the clients.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.kube import ClusterError, _Process, free_ports, tail, wait_until

SSHD = "/usr/sbin/sshd"
INSTALL_HINT = "apt-get install -y --no-install-recommends openssh-server openssh-client"


def missing_binaries() -> list[str]:
    found = {"sshd": Path(SSHD).exists(), "ssh": shutil.which("ssh"), "ssh-keygen": shutil.which("ssh-keygen")}
    return [name for name, there in found.items() if not there]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def _listening(process: _Process, port: int) -> bool:
    process.check_alive()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class Sshd:
    folder: Path
    port: int = 0
    user: str = field(default_factory=getpass.getuser)
    process: _Process | None = None

    @property
    def deploy_key(self) -> Path:
        return self.folder / "deploy_key"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def wrong_known_hosts(self) -> Path:
        return self.folder / "wrong_known_hosts"

    def url(self, path: Path) -> str:
        """The ``ssh://`` clone URL of a repository at ``path`` on this server."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{path}"

    def ssh_command(self, known_hosts: Path | None = None) -> str:
        """The ``GIT_SSH_COMMAND`` the chart sets, for this server's deploy key and ``known_hosts``."""
        return (
            f"ssh -i {self.deploy_key} -o UserKnownHostsFile={known_hosts or self.known_hosts}"
            " -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
        )

    @classmethod
    def start(cls, folder: Path) -> Sshd:
        if missing := missing_binaries():
            raise ClusterError(f"{', '.join(missing)} not installed: {INSTALL_HINT}")
        folder.mkdir(parents=True, exist_ok=True)
        (port,) = free_ports(1)
        server = cls(folder, port)
        host_key = _keygen(folder / "host_key")
        other_key = _keygen(folder / "other_host_key")
        deploy = _keygen(server.deploy_key)
        (folder / "authorized_keys").write_text(f"restrict {deploy}\n")
        server.known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        server.wrong_known_hosts.write_text(f"[127.0.0.1]:{port} {other_key}\n")
        config = folder / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nPidFile {folder / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nAllowUsers {server.user}\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nX11Forwarding no\n"
            "AllowTcpForwarding no\nAllowAgentForwarding no\nPermitTTY no\nLogLevel VERBOSE\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # its privilege separation directory
        server.process = _Process("sshd", [SSHD, "-D", "-e", "-f", str(config)], folder / "sshd.log", folder)
        server.process.start()
        try:
            wait_until(
                lambda: _listening(server.process, port),  # type: ignore[arg-type]
                timeout=15,
                what=f"sshd on 127.0.0.1:{port}",
                on_timeout=lambda: tail(folder / "sshd.log"),
            )
        except BaseException:
            server.stop()
            raise
        return server

    def log(self) -> str:
        return tail(self.folder / "sshd.log")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
