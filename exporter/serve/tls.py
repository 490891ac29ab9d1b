# SPDX-License-Identifier: Apache-2.0
"""A listener's TLS context, rebuilt when its certificate, key or client CA files change on disk.

Certificates are rotated by replacing files (cert-manager updates a Secret, the kubelet swaps the
mounted files through a symlink): every new connection stats the files (three ``os.stat`` calls)
and a change of inode, size or mtime loads a new context, so the next handshake presents the new
certificate without a restart. A set of files that does not load (the key written before its
certificate) keeps the previous context and is retried at the next connection.
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import structlog

from exporter.errors import ConfigError
from exporter.settings import TlsConfig

__all__ = ["TlsContext"]

log = structlog.get_logger(__name__)

_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_VERIFY = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
Stamp = tuple[tuple[int, int, int, int], ...]


class TlsContext:
    """The current ``ssl.SSLContext`` of one listener; ``key`` (``http.tls``) names it in errors."""

    def __init__(self, config: TlsConfig, *, key: str) -> None:
        self.config = config
        self.key = key
        self.loads = 0  # contexts built, the first included
        self._lock = threading.Lock()
        self._stamp = self._files_stamp()
        try:
            self._context = self._build()
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ConfigError(key, f"cannot load the certificate, key or client CA: {exc}") from exc

    def _files(self) -> list[Path]:
        c = self.config
        return [c.cert_file, c.key_file, *([c.client_ca_file] if c.client_ca_file else [])]

    def _files_stamp(self) -> Stamp | None:
        try:
            stats = [f.stat() for f in self._files()]
        except OSError:
            return None  # mid-rotation: keep what works
        return tuple((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)

    def _build(self) -> ssl.SSLContext:
        c = self.config
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _VERSIONS[c.min_version]
        context.load_cert_chain(c.cert_file, c.key_file)
        context.verify_mode = _VERIFY[c.client_auth_type]
        if c.client_ca_file is not None:
            context.load_verify_locations(cafile=c.client_ca_file)
        self.loads += 1
        return context

    def current(self) -> ssl.SSLContext:
        """The context for a new connection: reloaded first if a file changed since the last load."""
        stamp = self._files_stamp()
        with self._lock:
            if stamp is None or stamp == self._stamp:
                return self._context
            try:
                self._context = self._build()
            except (OSError, ValueError) as exc:
                log.warning("http.tls_reload_failed", listener=self.key, error=str(exc))
                return self._context  # retried at the next connection: the stamp is not recorded
            self._stamp = stamp
            log.info("http.tls_reloaded", listener=self.key, cert_file=str(self.config.cert_file))
            return self._context
