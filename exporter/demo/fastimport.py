# SPDX-License-Identifier: Apache-2.0
"""A minimal ``git fast-import`` writer: thousands of commits per second with fixed dates.

Used by the demo and the benchmarks; ``sha()`` asks fast-import for a commit's id mid-stream
(``get-mark``), which is what lets later commits reference earlier ones as image tags.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType


class FastImport:
    def __init__(self, repo: Path, branch: str = "main") -> None:
        self.repo = repo
        self.branch = branch
        repo.mkdir(parents=True, exist_ok=True)
        if not (repo / ".git").exists():
            subprocess.run(["git", "init", "-q", "-b", branch, str(repo)], check=True)
        self._proc = subprocess.Popen(
            ["git", "-C", str(repo), "fast-import", "--quiet", "--done"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._mark = 0
        self._pending_merge: str | None = None

    def __enter__(self) -> FastImport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: BaseException | TracebackType | None) -> None:
        self.close(checkout=exc_type is None)

    def _w(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)

    def commit(
        self,
        message: str,
        when: int,
        files: dict[str, str | None],
        author: str = "MiniShop CI <ci@minishop.example>",
        ref: str | None = None,
        parents: list[str] | None = None,
    ) -> str:
        """Write one commit (``None`` content deletes a file); returns its mark (``:N``)."""
        self._mark += 1
        mark = f":{self._mark}"
        msg = message.encode()
        out = [
            f"commit {ref or 'refs/heads/' + self.branch}\nmark {mark}\n".encode(),
            f"author {author} {when} +0000\ncommitter {author} {when} +0000\n".encode(),
            f"data {len(msg)}\n".encode() + msg + b"\n",
        ]
        if parents:
            out.append(f"from {parents[0]}\n".encode())
            out.extend(f"merge {p}\n".encode() for p in parents[1:])
        for path, content in sorted(files.items()):
            if content is None:
                out.append(f"D {path}\n".encode())
            else:
                body = content.encode()
                out.append(f"M 100644 inline {path}\ndata {len(body)}\n".encode() + body + b"\n")
        out.append(b"\n")
        self._w(b"".join(out))
        return mark

    def sha(self, mark: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._w(f"get-mark {mark}\n".encode())
        self._proc.stdin.flush()
        return self._proc.stdout.readline().decode().strip()

    def reset(self, ref: str, to: str) -> None:
        self._w(f"reset {ref}\nfrom {to}\n\n".encode())

    def close(self, checkout: bool = True) -> None:
        assert self._proc.stdin is not None
        self._w(b"done\n")
        self._proc.stdin.close()
        returncode = self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        if returncode != 0:
            raise RuntimeError(f"git fast-import failed in {self.repo}")
        if checkout:
            subprocess.run(["git", "-C", str(self.repo), "checkout", "-q", "-f", self.branch], check=True)
