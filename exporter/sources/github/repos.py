# SPDX-License-Identifier: Apache-2.0
"""A service repository read through the GitHub API: commits, compares and the pull requests behind them.

``GitHubRepo`` offers the surface the ingesters use on a local clone, so that a service repository need not
be cloned; immutable answers (a commit's files, a commit's pull request) are cached and fetched once.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.errors import ErrorKind, SourceError
from exporter.keys import github_commit_cache_key, github_pulls_cache_key
from exporter.model import Change, PullRequest
from exporter.sources.github.client import SHA40, SOURCE, Client, StatusError, parse_time

__all__ = ["COMPARE_COMMITS_LIMIT", "COMPARE_FILES_LIMIT", "CommitInfo", "GitHubRepo", "RangeUnreadable"]

COMPARE_FILES_LIMIT = 300  # GitHub lists at most 300 files in a compare or commit: more may exist
# PyGithub 2.10, Comparison.commits: "At most 10000 commits can be retrieved" through a compare's pages
COMPARE_COMMITS_LIMIT = 10_000


class RangeUnreadable(SourceError):
    """GitHub will never list the commits between these two: asking again gives the same answer.

    ``reason`` is a bounded name for ``dora_exporter_unmatched_total``: ``compare_no_common_ancestor``
    (the two share no history), ``compare_unavailable`` (the base is unknown to GitHub, e.g. garbage
    collected after a force push, or GitHub will not compute the diff) or ``compare_too_large`` (more
    commits than a compare can list). The caller settles the deployment instead of retrying forever."""

    REASONS = ("compare_no_common_ancestor", "compare_unavailable", "compare_too_large")

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(SOURCE, ErrorKind.BAD_REQUEST, message)
        self.reason = reason


def _matches(path: str, specs: Sequence[str]) -> bool:
    """git pathspec semantics for plain specs: the path itself, a directory prefix, or a glob."""
    for spec in specs:
        s = spec.rstrip("/")
        if not s or s == "." or path == s or path.startswith(s + "/") or fnmatch.fnmatchcase(path, spec):
            return True
    return False


def _paths_of(files: Sequence[Mapping[str, Any]]) -> list[str]:
    """The paths a file list touches: each ``filename``, and a renamed file's ``previous_filename``
    too (GitHub's commit and compare ``files``), so a file moved out of a service's paths counts."""
    out: list[str] = []
    for f in files:
        out.append(str(f["filename"]))
        if f.get("previous_filename"):
            out.append(str(f["previous_filename"]))
    return out


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author_time: datetime
    commit_time: datetime
    subject: str
    parents: tuple[str, ...]


def _commit_info(c: Mapping[str, Any]) -> CommitInfo:
    inner = c["commit"]
    author = parse_time(inner["author"]["date"])
    committer = parse_time(inner["committer"]["date"])
    if author is None or committer is None:
        raise SourceError(SOURCE, ErrorKind.BAD_RESPONSE, f"commit {c.get('sha')} has no dates")
    return CommitInfo(
        c["sha"],
        author,
        committer,
        (inner.get("message") or "").split("\n", 1)[0],
        tuple(p["sha"] for p in c.get("parents", [])),
    )


class GitHubRepo:
    """A service repository read through the API; the same surface ``ingesting`` uses on a clone."""

    def __init__(self, client: Client, full_name: str, pull_requests: bool) -> None:
        self.client = client
        self.name = full_name
        self.pull_requests = pull_requests

    @property
    def _base(self) -> str:
        return f"/repos/{self.name}"

    def resolve(self, rev: str) -> str | None:
        """The SHA of a commit SHA (short or full) or a ref (``refs/tags/v1``, a branch)."""
        if not rev or any(c.isspace() for c in rev) or rev.startswith("-"):
            return None
        ref = rev.removeprefix("refs/tags/").removeprefix("refs/heads/")
        if SHA40.match(ref):
            files = self._commit_files(ref)  # immutable: cached, and needed for path filters anyway
            return ref if files is not None else None
        data = self.client.get_json(f"{self._base}/commits/{ref}")
        if not isinstance(data, dict) or "sha" not in data:
            return None
        return str(data["sha"])

    def _commit_files(self, sha: str) -> list[str] | None:
        """A commit's changed paths, fetched once ever (all pages when it has 300 or more)."""
        key = github_commit_cache_key(self.name, sha)
        hit = self.client.cache.get(key)
        cached = json.loads(hit[1]) if hit is not None else None
        if cached is not None and cached.get("renames_listed"):  # older entries lack the old names
            return list(cached["files"])
        files: list[str] = []
        first: dict[str, Any] | None = None
        try:
            for page in self.client.pages(f"{self._base}/commits/{sha}", conditional=False):
                if first is None:
                    first = page
                files.extend(_paths_of(page.get("files", [])))
        except SourceError as exc:
            if exc.kind == ErrorKind.HTTP_ERROR:  # 422: no such commit (a 404, no such repository, is raised)
                return None
            raise
        if first is None:
            return None
        info = _commit_info(first)
        self.client.cache.put(
            key,
            None,
            json.dumps(
                {
                    "files": files,
                    "renames_listed": True,
                    "author": info.author_time.isoformat(),
                    "committer": info.commit_time.isoformat(),
                }
            ),
        )
        return files

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        data = self.client.get_json(
            f"{self._base}/compare/{ancestor}...{descendant}", {"per_page": 1}, missing=(404, 422)
        )
        return isinstance(data, dict) and data.get("status") in ("ahead", "identical")

    def changes(self, head: str, exclude: Sequence[str], paths: Sequence[str]) -> list[Change]:
        """Non-merge commits in ``exclude[0]...head`` touching ``paths``, oldest first, with their PRs.

        As ``git log base..head -- paths`` on a clone: a commit counts when its own files (or, for a
        renamed file, its previous path) match. The compare's ``files`` cannot decide this: GitHub
        lists the net diff from the merge base there, so a change reverted within the range, or a
        file changed and then moved away, is not in it although its commits touched the paths."""
        if not exclude:
            raise SourceError(SOURCE, ErrorKind.BAD_REQUEST, "a GitHub compare needs a base commit")
        commits: list[CommitInfo] = []
        total = None
        try:
            # compare commits are immutable for two SHAs: no ETag round trip needed
            for page in self.client.pages(f"{self._base}/compare/{exclude[0]}...{head}", conditional=False):
                if total is None:
                    total = int(page.get("total_commits", 0))
                    if total > COMPARE_COMMITS_LIMIT:
                        raise RangeUnreadable(
                            "compare_too_large", f"{exclude[0][:12]}...{head[:12]} has {total} commits"
                        )
                commits.extend(_commit_info(c) for c in page.get("commits", []))
        except StatusError as exc:
            raise self._unreadable(exc, exclude[0], head) from exc
        if total is not None and len(commits) < total:
            raise SourceError(SOURCE, ErrorKind.BAD_RESPONSE, f"compare listed {len(commits)} of {total} commits")
        out = []
        for c in commits:
            if len(c.parents) > 1:
                continue
            if paths:  # each commit's files are immutable: fetched once ever, then cached
                commit_files = self._commit_files(c.sha)
                if commit_files is None or not any(_matches(f, paths) for f in commit_files):
                    continue
            pr = self.pull_request_of(c.sha) if self.pull_requests else None
            out.append(Change(c.sha, c.author_time, c.commit_time, c.subject, self.pull_requests, pr))
        return out

    def _unreadable(self, exc: StatusError, base: str, head: str) -> SourceError:
        """What a failed compare means: a range GitHub will never list, or an error to retry.

        A 404 is either the range (no common ancestor; a base GitHub does not know) or the repository
        itself (gone, or not readable with these credentials): the repository is asked to tell them
        apart, as only the first is settled for good. A 422 "diff is taking too long" is GitHub's
        final word on that pair too."""
        where = f"{base[:12]}...{head[:12]}: {exc.github_message or exc.status}"
        if exc.status == 404 and exc.github_message.lower().startswith("no common ancestor"):
            return RangeUnreadable("compare_no_common_ancestor", where)
        if exc.status == 422 and "too long" in exc.github_message.lower():
            return RangeUnreadable("compare_unavailable", where)
        if exc.status == 404:
            self.client.get_json(self._base)  # raises not_found when the repository is what is missing
            return RangeUnreadable("compare_unavailable", where)
        return exc

    def pull_request_of(self, sha: str) -> PullRequest | None:
        """The merged pull request that brought ``sha`` in, with its first commit's author time.

        ``None`` (no merged pull request yet) is not cached; a merged one is, for good."""
        key = github_pulls_cache_key(self.name, sha)
        hit = self.client.cache.get(key)
        stored = json.loads(hit[1]) if hit is not None else None
        if stored is not None:  # a "null" left by an older version is asked again
            return _pr_from(stored)
        pulls = self.client.get_json(f"{self._base}/commits/{sha}/pulls", conditional=False) or []
        merged = sorted((p for p in pulls if p.get("merged_at")), key=lambda p: str(p["merged_at"]))
        if not merged:
            # not final: a commit not on the default branch yet lists its open pull requests, and
            # its pull request may merge later (deployed to staging first, say): asked again then.
            # Only a merged pull request is cached
            return None
        pr = merged[0]
        first = None
        for page in self.client.pages(f"{self._base}/pulls/{pr['number']}/commits", conditional=False):
            if page:
                first = _commit_info(page[0])
            break  # oldest first: the first page holds the first commit
        opened = parse_time(pr.get("created_at"))
        merged_at = parse_time(pr["merged_at"])
        assert merged_at is not None
        stored = {
            "number": int(pr["number"]),
            "first_commit": (first.author_time if first else opened or merged_at).isoformat(),
            "opened": (opened or merged_at).isoformat(),
            "merged": merged_at.isoformat(),
        }
        self.client.cache.put(key, None, json.dumps(stored))
        return _pr_from(stored)


def _pr_from(stored: Mapping[str, Any]) -> PullRequest:
    first, opened, merged = (parse_time(stored[k]) for k in ("first_commit", "opened", "merged"))
    assert first is not None and opened is not None and merged is not None
    return PullRequest(int(stored["number"]), min(first, merged), opened, merged)
