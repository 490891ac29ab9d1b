# SPDX-License-Identifier: Apache-2.0
"""Binding a listener: a failure names the config key and the address, and says what to do."""

from __future__ import annotations

import errno
from collections.abc import Callable

from exporter.errors import DoraError

__all__ = ["ListenError", "bind"]

Serve = Callable[[str, int], tuple[str, int]]

_WHAT_TO_DO = {
    errno.EADDRINUSE: "address already in use: another process listens there; stop it or change {key}",
    errno.EADDRNOTAVAIL: "address not available on this host; change {key}",
    errno.EACCES: "permission denied (a port below 1024 needs privileges); change {key}",
}


class ListenError(DoraError):
    """A listener could not bind its configured address."""

    def __init__(self, key: str, address: tuple[str, int], reason: str) -> None:
        super().__init__(f"{key} {address[0]}:{address[1]}: {reason}")
        self.key = key
        self.address = address


def bind(key: str, serve: Serve, address: tuple[str, int]) -> tuple[str, int]:
    """``serve(*address)``; an ``OSError`` becomes a ``ListenError`` about ``key``."""
    try:
        return serve(*address)
    except OSError as exc:
        template = _WHAT_TO_DO.get(exc.errno or 0, "{strerror}; check {key}")
        raise ListenError(key, address, template.format(key=key, strerror=exc.strerror or exc)) from exc
