# SPDX-License-Identifier: Apache-2.0
"""The demo's output directory: claimed with a marker file, so a re-run may overwrite only its own.

``demo --dir`` deletes a store and rewrites ``dora.yaml`` and ``minishop/``; pointed by mistake at a
deployment's directory it would destroy its history. A directory the demo did not make is refused
unless the operator says ``--force``.
"""

from __future__ import annotations

from pathlib import Path

from exporter.errors import DoraError

__all__ = ["MARKER", "NotADemoDir", "claim"]

MARKER = ".dora-demo"
_LEFTOVERS = ("dora.db", "dora.db-wal", "dora.db-shm")
# what a demo from before the marker left: recognised only when all of it is there and nothing else
_WRITTEN = frozenset({"minishop", "dora.yaml", "ground-truth.json", *_LEFTOVERS})
_UNMARKED_DEMO = frozenset({"minishop", "ground-truth.json"})


class NotADemoDir(DoraError):
    """``--dir`` is a file, or a non-empty directory the demo did not create."""


def claim(out: Path, *, force: bool) -> None:
    """Make ``out`` the demo's (creating it and its marker) and remove an earlier demo's store."""
    if out.exists() and not out.is_dir():
        raise NotADemoDir(f"{out} is not a directory")
    if out.is_dir() and not force and not _ours(out):
        raise NotADemoDir(
            f"{out} is not empty and was not created by the demo (no {MARKER} file); "
            "choose a new or empty directory, or pass --force to overwrite its dora.yaml, dora.db and minishop/"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("created by `dora-exporter demo`, which may overwrite this directory\n")
    # a new demo is a new history: a store left by an earlier run would describe the old one
    for leftover in _LEFTOVERS:
        (out / leftover).unlink(missing_ok=True)


def _ours(out: Path) -> bool:
    names = {p.name for p in out.iterdir()}
    return not names or MARKER in names or (_UNMARKED_DEMO <= names <= _WRITTEN)
