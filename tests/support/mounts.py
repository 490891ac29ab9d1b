# SPDX-License-Identifier: Apache-2.0
"""Real filesystems for the store's fault tests: a small tmpfs (a disk that fills up) and a
read-only one. Mounting needs root (the tests run as root in CI); elsewhere the tests skip."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = ["read_only", "remount", "tmpfs"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)


@contextmanager
def tmpfs(path: Path, *, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` for the block; unmounted after, whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        if _run("umount", str(path)).returncode != 0:
            _run("umount", "-l", str(path))  # something still open: detach it now, freed when closed


def remount(path: Path, *, readonly: bool) -> None:
    """Switch the filesystem mounted at ``path`` to read-only or back."""
    done = _run("mount", "-o", f"remount,{'ro' if readonly else 'rw'}", str(path))
    assert done.returncode == 0, done.stderr


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` and everything in it read-only while inside: a read-only bind mount onto itself
    as root (root writes through any file mode), file modes otherwise."""
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
