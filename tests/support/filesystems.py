# SPDX-License-Identifier: Apache-2.0
"""Real filesystem conditions for fault tests: a read-only directory, even for root.

Why a bind mount: the suite runs as root in CI, and root writes through any file mode, so
``chmod 0555`` proves nothing there. A read-only bind mount of the directory onto itself is what
a read-only volume is to the exporter, and the kernel enforces it for root too.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["read_only"]


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` and everything in it read-only while inside."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [directory, *directory.rglob("*")]}
        for p in modes:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    subprocess.run(["mount", "--bind", str(directory), str(directory)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(directory)], check=True)
