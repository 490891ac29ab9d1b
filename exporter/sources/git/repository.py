# SPDX-License-Identifier: Apache-2.0
"""Git plumbing for every source: mirrors, streaming log, blob reads, commit ranges.

Everything goes through the ``git`` binary: it is fast, understands every repository format and
keeps no state in our process. Long walks are one streaming process; per-object reads go through
one long-lived ``cat-file --batch`` process instead of a process per object.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, cast

import structlog

from exporter.errors import ErrorKind, SourceError
from exporter.model import Change, utc

log = structlog.get_logger(__name__)

SSH_DEFAULTS = "-o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -o ServerAliveCountMax=4"
"""Appended to ``GIT_SSH_COMMAND`` (or plain ``ssh``): never prompt, never wait forever for a dead
host. ssh takes the first value of an option, so the operator's own ``-o`` flags win."""


def git_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every git process: the daemon's own (``GIT_SSH_COMMAND``,
    ``GIT_SSL_CAINFO``, ``GIT_CONFIG_*`` for a credential helper pass through), without prompts.

    ``GIT_SSH`` (a program, not a command line) is left alone: options cannot be appended to it."""
    env = dict(os.environ if environ is None else environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")  # no credential prompt in a daemon
    if not env.get("GIT_SSH"):
        env["GIT_SSH_COMMAND"] = f"{env.get('GIT_SSH_COMMAND') or 'ssh'} {SSH_DEFAULTS}"
    return env


# (substring of git's or ssh's stderr, kind, what to check): a clone or fetch that fails for one of
# these reasons says so, instead of "git fetch failed"
_TRANSPORT_FAILURES = (
    ("Host key verification failed", ErrorKind.HOST_KEY, "the host key is not the one in known_hosts"),
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", ErrorKind.HOST_KEY, "the host key is not the one in known_hosts"),
    ("No ED25519 host key is known", ErrorKind.HOST_KEY, "the host is not in known_hosts"),
    ("Permission denied", ErrorKind.AUTH, "the deploy key or token was refused"),
    ("Authentication failed", ErrorKind.AUTH, "the deploy key or token was refused"),
    ("could not read Username", ErrorKind.AUTH, "no credentials for this HTTPS remote"),
    ("Connection refused", ErrorKind.CONNECTION, "nothing listens at the remote's address"),
    ("Connection timed out", ErrorKind.CONNECTION, "the remote did not answer"),
    ("Could not resolve host", ErrorKind.CONNECTION, "the remote's host name does not resolve"),
    ("server certificate verification failed", ErrorKind.CONNECTION, "the remote's TLS certificate is not trusted"),
    ("SSL certificate problem", ErrorKind.CONNECTION, "the remote's TLS certificate is not trusted"),
)


def _failure(command: str, where: Path, stderr: str) -> SourceError:
    for needle, kind, meaning in _TRANSPORT_FAILURES:
        if needle in stderr:
            return SourceError("git", kind, f"git {command} failed: {meaning}: {stderr}")
    return SourceError("git", ErrorKind.GIT_COMMAND, f"git {command} failed in {where}: {stderr}")


_SHA = re.compile(r"[0-9a-f]{40}")
STREAM_CHUNK = 1 << 16


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write a process's whole input, then close it; a process that ended early just stops it."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except OSError:  # the reader killed it, or it failed: the reader reports that
        pass


@dataclass(frozen=True, slots=True)
class Oversized:
    """A blob larger than the reader's ``max_size``: its size only. Its content was discarded from
    the pipe in chunks as git wrote it, never held: one huge file must not cost its size in memory."""

    size: int


Blob = bytes | Oversized | None  # None: no such object


def _is_remote(repo: str) -> bool:
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


class Git:
    """One repository (work tree or bare) and the git commands run against it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._batch: subprocess.Popen[bytes] | None = None
        self._batch_lock = threading.Lock()
        self._check: subprocess.Popen[bytes] | None = None
        self._check_lock = threading.Lock()
        self._commits: set[str] = set()  # full SHAs known to name commits: an object id never changes
        self._objects: Path | None = None  # the object directory, found once through git rev-parse
        self._identity: tuple[int, ...] | None = None
        self._checked = False
        self.generation = 0  # bumped each time the repository on disk is found replaced

    def __enter__(self) -> Git:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def _cmd(self, args: Sequence[str]) -> list[str]:
        return ["git", "-C", str(self.path), "-c", "core.quotepath=off", *args]

    def _pipe(self, mode: str) -> subprocess.Popen[bytes]:
        """A long-lived ``cat-file`` process answering one object name per line."""
        return subprocess.Popen(
            self._cmd(["cat-file", mode]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=git_env(),
        )

    # -- identity ------------------------------------------------------------------------------

    def revalidate(self) -> bool:
        """Whether the repository on disk was replaced since the last call; if so, end the children.

        A long-lived ``cat-file`` child keeps the directory it started in as its working directory:
        a repository moved away and replaced by a clone would be read from the old copy forever,
        and one deleted and re-cloned in place would answer "missing" to everything. The identity
        is the device and inode of the repository's directory and of its object directory (found
        once through ``git rev-parse --git-common-dir``): two ``os.stat`` calls, cheap enough for
        the start of every poll. A replacement ends the children (the next read starts them in the
        new directory), forgets the commits known here and bumps ``generation``, so that caches
        built on the old repository (a commit graph) can tell. The first call records the identity.

        Raises ``SourceError`` (``repo_missing``) while the directory is gone.
        """
        seen = self._stat()
        if seen is not None and seen == self._identity:
            return False
        self._objects = self._find_objects()  # moved or first call: ask git where the objects are
        seen = self._stat()
        was, self._identity = self._identity, seen
        if not self._checked and seen is not None:
            self._checked = True
            return False
        self._checked = True
        self.close()
        self._commits = set()
        if seen is None:
            if was is not None:
                log.warning("git.repository_missing", path=str(self.path))
            raise SourceError("git", ErrorKind.REPO_MISSING, f"repository {self.path} does not exist")
        self.generation += 1
        log.warning("git.repository_replaced", path=str(self.path), generation=self.generation)
        return True

    def _stat(self) -> tuple[int, ...] | None:
        try:
            top = self.path.stat()
            objects = self._objects.stat() if self._objects is not None else top
        except OSError:
            return None
        return (top.st_dev, top.st_ino, objects.st_dev, objects.st_ino)

    def _find_objects(self) -> Path | None:
        if not self.path.is_dir():
            return None
        try:
            common = self.run("rev-parse", "--git-common-dir", timeout=60).strip()
        except SourceError:
            return None  # not a repository (yet): its commands fail with their own errors
        return self.path / common / "objects"  # a relative answer is relative to the repository

    # -- commands --------------------------------------------------------------------------------

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        """Run one git command and return its stdout; failures become ``SourceError``."""
        try:
            proc = subprocess.run(self._cmd(args), capture_output=True, env=git_env(), timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SourceError("git", ErrorKind.TIMEOUT, f"git {args[0]} timed out after {timeout:g}s") from exc
        except OSError as exc:
            raise SourceError("git", ErrorKind.GIT_MISSING, f"cannot run git: {exc}") from exc
        if check and proc.returncode != 0:
            raise _failure(args[0], self.path, _redact(proc.stderr.decode(errors="replace").strip()))
        return proc.stdout.decode(errors="replace")

    def stream(self, *args: str) -> Iterator[str]:
        """Lines of one long git command, read as they come; a non-zero exit raises at the end."""
        return self._lines(args, None)

    def first_parent_diffs(self, rev_range: str, fmt: str, paths: Sequence[str], piped: bool = False) -> Iterator[str]:
        """The lines of ``git log --first-parent --diff-merges=first-parent --reverse --raw
        --no-abbrev --no-renames --format=<fmt> <rev_range> -- <paths>``, from the oldest commit on.

        ``git log --reverse`` computes every diff before it prints its first line (seconds on a
        long history, with the ingest waiting). Listing the commits first, which needs no diff,
        and feeding them to ``git diff-tree --stdin`` streams the same lines while git computes
        them. ``piped``: the list goes from one git process to the other through an OS pipe,
        never held in Python (the reader process of a long history); otherwise it is read here
        and written by a thread.
        """
        args = (
            "diff-tree",
            "--stdin",
            "--root",
            "-r",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--diff-merges=first-parent",
        )
        diff = (*args, f"--pretty=format:{fmt}", "--", *paths)
        if not piped:
            order = self.run("rev-list", "--first-parent", "--reverse", "--parents", rev_range).encode()
            return self._lines(diff, order)
        return self._piped(rev_range, diff)

    def _piped(self, rev_range: str, diff: Sequence[str]) -> Iterator[str]:
        try:
            order = subprocess.Popen(
                self._cmd(["rev-list", "--first-parent", "--reverse", "--parents", rev_range]),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=git_env(),
            )
        except OSError as exc:
            raise SourceError("git", ErrorKind.GIT_MISSING, f"cannot run git: {exc}") from exc
        assert order.stdout is not None and order.stderr is not None
        completed = False
        try:
            yield from self._lines(diff, order.stdout)
            completed = True
        finally:
            order.stdout.close()
            if not completed:
                order.kill()
            err = order.stderr.read().decode(errors="replace").strip()
            order.stderr.close()
            code = order.wait()
        if code != 0:
            raise SourceError("git", ErrorKind.GIT_COMMAND, f"git rev-list failed in {self.path}: {err}")

    def _lines(self, args: Sequence[str], stdin: IO[bytes] | bytes | None) -> Iterator[str]:
        """Lines of a git command's output; ``stdin``: a pipe it reads, or bytes a thread writes."""
        try:
            proc = subprocess.Popen(
                self._cmd(args),
                stdin=subprocess.PIPE if isinstance(stdin, bytes) else (stdin or subprocess.DEVNULL),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=git_env(),
            )
        except OSError as exc:
            raise SourceError("git", ErrorKind.GIT_MISSING, f"cannot run git: {exc}") from exc
        assert proc.stdout is not None
        if isinstance(stdin, bytes):
            threading.Thread(target=_feed, args=(proc, stdin), name="git-stdin-writer", daemon=True).start()
        completed = False
        try:
            # whole chunks split at once: a line-by-line read costs more than git's own work
            # for the long logs of a first ingest
            rest = b""
            reader = cast(io.BufferedReader, proc.stdout)  # Popen's default buffering
            while chunk := reader.read1(STREAM_CHUNK):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for raw in lines:
                    yield raw.decode(errors="replace")
            if rest:
                yield rest.decode(errors="replace")
            completed = True
        finally:
            if not completed:
                proc.kill()
            proc.stdout.close()
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            if proc.stderr:
                proc.stderr.close()
            code = proc.wait()
        if code != 0:
            raise SourceError("git", ErrorKind.GIT_COMMAND, f"git {args[0]} failed in {self.path}: {err}")

    # -- refs and commits ---------------------------------------------------------------------

    def resolve(self, rev: str) -> str | None:
        """The full SHA of a commit, or ``None`` if ``rev`` names no commit (or is ambiguous).

        Goes through one long-lived ``cat-file --batch-check`` process: resolving a tag per
        deployment must not cost a process per deployment.
        """
        if not rev or any(c.isspace() for c in rev) or rev.startswith("-"):
            return None
        if rev in self._commits:
            return rev
        with self._check_lock:
            proc = self._check
            if proc is None or proc.poll() is not None:
                proc = self._check = self._pipe("--batch-check")
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(f"{rev}^{{commit}}\n".encode())
                proc.stdin.flush()
                fields = proc.stdout.readline().decode(errors="replace").split()
            except OSError as exc:
                self._check = None
                proc.kill()
                raise SourceError("git", ErrorKind.GIT_COMMAND, f"cat-file --batch-check failed: {exc}") from exc
        if len(fields) == 3 and fields[1] == "commit" and _SHA.fullmatch(fields[0]):
            if fields[0] == rev and len(self._commits) < 1 << 16:
                self._commits.add(rev)
            return fields[0]
        return None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        proc = subprocess.run(
            self._cmd(["merge-base", "--is-ancestor", ancestor, descendant]),
            capture_output=True,
            env=git_env(),
            check=False,
        )
        if proc.returncode not in (0, 1):
            raise SourceError("git", ErrorKind.GIT_COMMAND, proc.stderr.decode(errors="replace").strip())
        return proc.returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        out = self.run("merge-base", a, b, check=False).strip()
        return out if _SHA.fullmatch(out) else None

    def first_parent_set(self, head: str) -> set[str]:
        return set(self.run("rev-list", "--first-parent", head).split())

    def count(self, rev_range: str, pathspecs: Sequence[str] = ()) -> int:
        paths = ["--", *pathspecs] if pathspecs else []
        return int(self.run("rev-list", "--first-parent", "--count", rev_range, *paths).strip() or 0)

    def changes(self, head: str, exclude: Sequence[str], paths: Sequence[str]) -> list[Change]:
        """Non-merge commits reachable from ``head`` and not from ``exclude`` touching ``paths``.

        Merges are not changes: their content is the branch commits, which are listed themselves.
        ``--full-history`` keeps side-branch commits that git's default simplification would hide.
        """
        args = ["log", "--no-merges", "--full-history", "--format=%H%x1f%at%x1f%ct%x1f%s", head]
        args += [f"^{e}" for e in exclude]
        args += ["--", *paths] if paths else []
        out = []
        for line in self.stream(*args):
            sha, at, ct, subject = line.split("\x1f", 3)
            out.append(Change(sha, utc(int(at)), utc(int(ct)), subject))
        out.reverse()
        return out

    # -- blobs ---------------------------------------------------------------------------------

    def read_blob(self, sha: str, *, max_size: int | None = None) -> Blob:
        """Read one object through the shared ``cat-file --batch`` process; one larger than
        ``max_size`` is ``Oversized`` (the batch header gives the size before the content)."""
        with self._batch_lock:
            proc = self._batch
            if proc is None or proc.poll() is not None:
                proc = self._batch = self._pipe("--batch")
            stdin, stdout = proc.stdin, proc.stdout
            assert stdin is not None and stdout is not None
            try:
                stdin.write(sha.encode() + b"\n")
                stdin.flush()
                header = stdout.readline().split()
                if len(header) != 3:  # "<sha> missing" or "<sha> ambiguous"
                    return None
                data = _content(stdout, int(header[2]), max_size)
                stdout.read(1)  # the newline after every object
            except (OSError, ValueError) as exc:
                self._close_batch()
                raise SourceError("git", ErrorKind.GIT_COMMAND, f"cat-file failed: {exc}") from exc
            return data

    def read_blobs(
        self, shas: Sequence[str], *, max_size: int | None = None, budget: int | None = None
    ) -> dict[str, Blob]:
        """Read many objects through the shared ``cat-file --batch`` process, pipelined: a thread
        writes every request while this one reads the answers, so git never waits for Python.

        An object larger than ``max_size`` is ``Oversized``. Once the objects read hold more than
        ``budget`` bytes, the rest are discarded and left out of the answer (the caller reads them
        one by one when it needs them), so a read-ahead of many large files stays bounded too."""
        out: dict[str, Blob] = {}
        if not shas:
            return out
        with self._batch_lock:
            proc = self._batch
            if proc is None or proc.poll() is not None:
                proc = self._batch = self._pipe("--batch")
            stdin, stdout = proc.stdin, proc.stdout
            assert stdin is not None and stdout is not None
            failed: list[OSError] = []
            requests = b"".join(sha.encode() + b"\n" for sha in shas)

            def write() -> None:
                try:
                    stdin.write(requests)
                    stdin.flush()
                except OSError as exc:
                    failed.append(exc)

            # Requests that fit in the (empty: every earlier answer was read) pipe cannot block, so
            # they are written here; only larger ones need the writer thread, whose start costs a
            # switch of the interpreter lock (milliseconds when another thread is busy)
            writer = threading.Thread(target=write, name="git-cat-file-writer", daemon=True)
            if len(requests) <= _pipe_capacity(stdin):
                write()
            else:
                writer.start()
            held = 0
            try:
                for sha in shas:
                    header = stdout.readline().split()
                    if len(header) != 3:  # "<sha> missing" or "<sha> ambiguous"
                        if not header:
                            raise ValueError("cat-file ended early")
                        out[sha] = None
                        continue
                    size = int(header[2])
                    if budget is not None and held + size > budget and (max_size is None or size <= max_size):
                        _discard(stdout, size)  # over the budget: read again later, alone
                    else:
                        out[sha] = data = _content(stdout, size, max_size)
                        held += len(data) if isinstance(data, bytes) else 0
                    stdout.read(1)
            except (OSError, ValueError) as exc:
                self._close_batch()
                if writer.is_alive():
                    writer.join()
                raise SourceError("git", ErrorKind.GIT_COMMAND, f"cat-file failed: {exc}") from exc
            if writer.is_alive():
                writer.join()
            if failed:
                self._close_batch()
                raise SourceError("git", ErrorKind.GIT_COMMAND, f"cat-file failed: {failed[0]}") from failed[0]
        return out

    def _close_batch(self) -> None:
        proc, self._batch = self._batch, None
        _end(proc)

    def close(self) -> None:
        with self._batch_lock:
            self._close_batch()
        with self._check_lock:
            proc, self._check = self._check, None
            _end(proc)


def _pipe_capacity(pipe: IO[bytes]) -> int:
    """How many bytes a pipe holds (Linux: F_GETPIPE_SZ); 0 where that cannot be asked."""
    try:
        import fcntl

        return int(fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ))
    except (ImportError, AttributeError, OSError, ValueError):
        return 0


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
        proc.kill()
        proc.wait()


def _content(stream: IO[bytes], size: int, max_size: int | None) -> bytes | Oversized:
    """The ``size`` bytes of content next in a ``cat-file --batch`` stream, or ``Oversized``."""
    if max_size is not None and size > max_size:
        _discard(stream, size)
        return Oversized(size)
    return _read_exact(stream, size)


def _discard(stream: IO[bytes], size: int) -> None:
    """Skip ``size`` bytes of a stream a chunk at a time: at most ``STREAM_CHUNK`` held at once."""
    left = size
    while left:
        chunk = stream.read(min(left, STREAM_CHUNK))
        if not chunk:
            raise ValueError("short read from git cat-file")
        left -= len(chunk)


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ValueError("short read from git cat-file")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def open_repo(repo: str, mirrors_dir: Path, key: str) -> tuple[Git, bool]:
    """A ``Git`` for a local path as it is, or for a URL through a bare mirror under ``mirrors_dir``.

    Returns the repo and whether it is a mirror that ``fetch`` must refresh.
    """
    if not _is_remote(repo):
        path = Path(repo).expanduser()
        if not path.exists():
            raise SourceError("git", ErrorKind.REPO_MISSING, f"repository {repo} does not exist")
        return Git(path), False
    mirror = mirrors_dir / f"{key}.git"
    if not (mirror / "HEAD").exists():
        mirrors_dir.mkdir(parents=True, exist_ok=True)
        tmp = mirrors_dir / f"{key}.git.tmp"
        Git(mirrors_dir).run("clone", "--mirror", "--quiet", repo, str(tmp), timeout=3600)
        tmp.rename(mirror)  # atomic: a half-done clone never looks like a mirror
        log.info("git.mirror.cloned", repo=_redact(repo), path=str(mirror))
    return Git(mirror), True


def fetch(git: Git) -> None:
    """Refresh a mirror; ``--prune`` follows force-pushes and deleted branches."""
    git.run("fetch", "--prune", "--quiet", "--force", "origin", timeout=900)


def _redact(url: str) -> str:
    return re.sub(r"(?<=://)[^/@]+@", "<redacted>@", url)
