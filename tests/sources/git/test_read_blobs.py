# SPDX-License-Identifier: Apache-2.0
"""``Git.read_blobs`` (pipelined) answers exactly as ``read_blob`` does, missing objects included."""

from __future__ import annotations

from pathlib import Path

from exporter.demo.fastimport import FastImport
from exporter.sources.git.repository import Git


def test_read_blobs_matches_read_blob(tmp_path: Path) -> None:
    with FastImport(tmp_path / "repo") as fi:
        for n in range(50):  # sizes from empty to larger than a pipe buffer
            fi.commit(f"c{n}", 1_700_000_000 + n, {f"f{n}.txt": "x" * (n * 3000)})
    with Git(tmp_path / "repo") as git:
        blobs = git.run("rev-list", "--objects", "--all").split()
        blobs = [b for b in blobs if len(b) == 40 and git.run("cat-file", "-t", b).strip() == "blob"]
        wanted = [*blobs, "0" * 40, blobs[0]]
        got = git.read_blobs(wanted)
        assert got == {b: git.read_blob(b) for b in wanted}
        assert got["0" * 40] is None
        assert git.read_blobs([]) == {}
        # more requests than a pipe holds: written by the writer thread while the answers are read
        many = wanted * 40
        assert len("".join(f"{sha}\n" for sha in many)) > 65536
        assert git.read_blobs(many) == got
