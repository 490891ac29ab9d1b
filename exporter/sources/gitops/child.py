# SPDX-License-Identifier: Apache-2.0
"""Reading a long GitOps history in a child process.

A first ingest of a long history spends a quarter of its time reading manifests: the diff stream,
the blobs and the YAML. In the ingesting process that work competes with SQLite and the commit
graph for one interpreter lock (a reader thread made it slower). In a child process it runs on the
other core, and the ingester only unpickles finished ``CommitValues``. It pays a process start
(a few hundred milliseconds), so it is used only for ranges of at least ``CHILD_MIN_COMMITS``.

The child is ``python -m exporter.sources.gitops.child``: its job comes pickled on stdin, its
results go back as a stream of pickles on stdout, and anything it prints or logs goes to stderr.
Both ends are this module, from the same installation.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import subprocess
import sys
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any

import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.settings import GitOpsRepo, Names
from exporter.sources import gitops
from exporter.sources.git.repository import Git

log = structlog.get_logger(__name__)

CHILD_MIN_COMMITS = 20_000
_BATCH = 512  # commits per message: pickling many small objects at once is cheaper
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding ``exporter``


def worth_a_child(git: Git, rev_range: str) -> bool:
    """Whether ``rev_range`` holds at least ``CHILD_MIN_COMMITS`` first-parent commits (counted
    only up to that number: cheap on any history)."""
    out = git.run("rev-list", "--count", "--first-parent", f"--max-count={CHILD_MIN_COMMITS}", rev_range)
    return int(out.strip() or 0) >= CHILD_MIN_COMMITS


def read_commits(
    repo_path: Path, repo: GitOpsRepo, names: Names, rev_range: str
) -> Generator[gitops.CommitValues, None, None]:
    """``gitops.read_commits`` run in a child process, yielded here in order.

    The pipe bounds how far the child runs ahead. A failure in the child is raised here as the
    ``SourceError`` it was; closing the iterator early stops the child."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "exporter.sources.gitops.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
    except OSError as exc:
        raise SourceError("gitops", ErrorKind.READER_FAILED, f"cannot start the GitOps reader: {exc}") from exc
    assert child.stdin is not None and child.stdout is not None
    try:
        pickle.dump((str(repo_path), repo, names, rev_range), child.stdin)
        child.stdin.close()
        while True:
            try:
                kind, payload = pickle.load(child.stdout)  # noqa: S301 - our own child, over a private pipe
            except (EOFError, pickle.UnpicklingError) as exc:
                raise SourceError("gitops", ErrorKind.READER_FAILED, "the GitOps reader process ended early") from exc
            if kind == "commits":
                yield from payload
            elif kind == "error":
                source, error_kind, message = payload
                raise SourceError(source, ErrorKind(error_kind), message)
            else:
                log.debug("gitops.reader_finished", peak_rss_mb=round(payload, 1))
                return
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.wait()


def _serve(job: IO[bytes], out: IO[bytes]) -> None:
    def send(kind: str, payload: Any) -> None:
        pickle.dump((kind, payload), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    repo_path, repo, names, rev_range = pickle.load(job)  # noqa: S301 - written by read_commits above
    try:
        with Git(Path(repo_path)) as git:
            batch: list[gitops.CommitValues] = []
            extractor = gitops.Extractor(repo, names, git)
            for commit in gitops.read_commits(git, repo, extractor, rev_range, piped=True):
                batch.append(commit)
                if len(batch) >= _BATCH:
                    send("commits", batch)
                    batch = []
            send("commits", batch)
    except SourceError as exc:
        send("error", (exc.source, str(exc.kind), str(exc).removeprefix(f"{exc.source}: ")))
        return
    except Exception as exc:  # noqa: BLE001 - reported to the ingester, which raises it
        send("error", ("gitops", str(ErrorKind.READER_FAILED), repr(exc)))
        return
    send("end", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main() -> int:
    # results travel on the original stdout; anything printed or logged here goes to stderr
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        _serve(sys.stdin.buffer, out)
    except BrokenPipeError:
        return 0  # the ingester stopped reading
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
