"""GitHub through PyGithub: tags, compares, pull requests and incident issues, within a budget.

The only module that imports ``github``. Every library or transport error becomes a
``SourceError("github", kind)`` with a bounded ``kind``: ``rate_limited``, ``budget_exhausted``,
``timeout``, ``connection``, ``server_error``, ``auth``, ``not_found``, ``http_error``, ``bad_response``.

Requests go through PyGithub's ``Requester`` (its retry, auth and rate-limit handling), with
``GithubRetry(max_rate_limit_wait=...)`` so that a primary limit whose reset is far away raises
at once instead of sleeping for an hour. Each job runs under ``Client.budget(seconds)``: a request
is never started after the deadline, so a job returns within its budget plus one request.

Immutable answers (a commit's times and files, a merged pull request's first commit) are cached
in the store and fetched at most once; mutable lists are fetched with ``If-None-Match`` and a
``304`` is answered from the cached body. The token is only ever handed to PyGithub, which
sends it in the ``Authorization`` header; neither is logged here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
import structlog
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from github.GithubException import BadCredentialsException, RateLimitExceededExceedsMaxWait

from exporter.errors import SourceError
from exporter.keys import github_commit_cache_key, github_pulls_cache_key
from exporter.model import Change, PullRequest

log = structlog.get_logger(__name__)

SOURCE = "github"
PER_PAGE = 100
COMPARE_FILES_LIMIT = 300  # GitHub lists at most 300 files in a compare or commit: more may exist
_SHA40 = re.compile(r"^[0-9a-f]{40}$")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class Cache(Protocol):
    """Where the source keeps answers between runs (the store, in the daemon)."""

    def get(self, key: str) -> tuple[str | None, str] | None: ...

    def put(self, key: str, etag: str | None, body: str) -> None: ...


class MemoryCache:
    """A process-local cache, for one-shot use and tests."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[str | None, str]] = {}

    def get(self, key: str) -> tuple[str | None, str] | None:
        return self.data.get(key)

    def put(self, key: str, etag: str | None, body: str) -> None:
        self.data[key] = (etag, body)


class _Recent:
    """A bounded in-process layer over the persistent cache: answers written during a store
    transaction that has not committed yet are not visible to the store's readers."""

    def __init__(self, backing: Cache, size: int = 20000) -> None:
        self.backing = backing
        self.size = size
        self.data: dict[str, tuple[str | None, str]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str | None, str] | None:
        with self._lock:
            hit = self.data.get(key)
        return hit if hit is not None else self.backing.get(key)

    def put(self, key: str, etag: str | None, body: str) -> None:
        self.backing.put(key, etag, body)
        with self._lock:
            if len(self.data) >= self.size:
                self.data.pop(next(iter(self.data)))
            self.data[key] = (etag, body)


class _BoundedRetry(GithubRetry):
    """PyGithub's retry, with a server's ``Retry-After`` capped too: urllib3 would sleep whatever
    a 403 or 429 asks for, which could hold a job far past its budget."""

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after and self.max_rate_limit_wait is not None and retry_after > self.max_rate_limit_wait:
            raise SourceError(SOURCE, "rate_limited", f"GitHub asks to retry after {retry_after:.0f}s")
        return bool(super().sleep_for_retry(response))


@dataclass(frozen=True)
class Settings:
    base_url: str = "https://api.github.com"
    token: str | None = None
    app_id: str | None = None
    app_private_key: str | None = None
    app_installation_id: int | None = None
    timeout: float = 10.0
    max_rate_limit_wait: float = 60.0
    retries: int = 3
    backoff_factor: float = 0.5  # urllib3's exponential backoff between retries of 5xx and resets


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return str(v)
    return None


class Client:
    """One authenticated PyGithub instance shared by every GitHub job; thread-safe."""

    def __init__(self, settings: Settings, cache: Cache | None = None) -> None:
        self.settings = settings
        self.cache: Cache = _Recent(cache or MemoryCache())
        retry = _BoundedRetry(
            total=settings.retries,
            backoff_factor=settings.backoff_factor,
            max_rate_limit_wait=settings.max_rate_limit_wait,
            secondary_rate_wait=min(60.0, settings.max_rate_limit_wait),
        )
        self._gh = Github(
            base_url=settings.base_url,
            auth=_auth(settings),
            timeout=max(1, round(settings.timeout)),
            retry=retry,
            per_page=PER_PAGE,
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )
        self._local = threading.local()
        self._lock = threading.Lock()
        self.rate_limit_remaining: float | None = None  # of the last answer, whatever its resource
        self.rate_limit_reset: float | None = None
        self.remaining_by_resource: dict[str, float] = {}
        self.requests = 0

    @contextmanager
    def budget(self, seconds: float) -> Iterator[None]:
        """Requests on this thread inside the block fail with ``budget_exhausted`` after ``seconds``."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.deadline = previous

    def _check_budget(self) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and time.monotonic() >= deadline:
            raise SourceError(SOURCE, "budget_exhausted", "the job's time budget is spent; resuming next run")

    def _note(self, headers: Mapping[str, Any]) -> None:
        remaining, reset = _header(headers, "x-ratelimit-remaining"), _header(headers, "x-ratelimit-reset")
        with self._lock:
            self.requests += 1
            if remaining is not None and remaining.isdigit():
                self.rate_limit_remaining = float(remaining)
                resource = _header(headers, "x-ratelimit-resource") or "core"
                if re.fullmatch(r"[a-z_]{1,40}", resource):  # a bounded label: core, search, graphql, ...
                    self.remaining_by_resource[resource] = float(remaining)
            if reset is not None and reset.isdigit():
                self.rate_limit_reset = float(reset)

    def request(
        self, url: str, params: Mapping[str, Any] | None = None, etag: str | None = None
    ) -> tuple[int, dict[str, Any], Any]:
        """GET ``url`` (a path under the base URL, or a full URL from a ``Link`` header)."""
        self._check_budget()
        headers = {"If-None-Match": etag} if etag else {}
        try:
            status, resp_headers, body = self._gh.requester.requestJson(
                "GET", url, parameters=dict(params or {}), headers=headers
            )
        except RateLimitExceededExceedsMaxWait as exc:
            self._note(exc.headers or {})
            raise SourceError(SOURCE, "rate_limited", f"rate limit resets in {exc.wait:.0f}s") from exc
        except (requests.Timeout, TimeoutError) as exc:
            raise SourceError(SOURCE, "timeout", f"GET {_path(url)} timed out") from exc
        except requests.exceptions.RetryError as exc:
            raise SourceError(SOURCE, "server_error", f"GET {_path(url)} kept failing: {_reason(exc)}") from exc
        except requests.ConnectionError as exc:
            kind = "timeout" if "timed out" in str(exc).lower() else "connection"
            raise SourceError(SOURCE, kind, f"GET {_path(url)}: cannot connect") from exc
        except GithubException as exc:
            raise _mapped(exc, url) from exc
        self._note(resp_headers)
        if status == 429 or (status == 403 and _is_rate_limit(body)):
            raise SourceError(SOURCE, "rate_limited", f"GET {_path(url)} answered {status}: rate limited")
        if status in (401, 403):
            raise SourceError(SOURCE, "auth", f"GET {_path(url)} answered {status}")
        if status >= 500:
            raise SourceError(SOURCE, "server_error", f"GET {_path(url)} answered {status}")
        data = json.loads(body) if body and status != 304 else None
        return status, resp_headers, data

    def get_json(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        conditional: bool = True,
        missing: tuple[int, ...] = (422,),
    ) -> Any:
        """One JSON answer; with ``conditional`` a stored ETag is sent and a 304 served from the cache.

        ``None`` for the ``missing`` statuses (GitHub answers 422 for an unknown commit or ref; a 404
        means the repository itself is missing or not readable with these credentials: an error)."""
        key = "etag:" + url + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")
        cached = self.cache.get(key) if conditional else None
        status, headers, data = self.request(url, params, cached[0] if cached else None)
        if status == 304 and cached is not None:
            return json.loads(cached[1])
        if status in missing:
            return None
        if status >= 400:
            kind = "not_found" if status == 404 else "http_error"
            raise SourceError(SOURCE, kind, f"GET {_path(url)} answered {status}")
        etag = _header(headers, "etag")
        if conditional and etag:
            self.cache.put(key, etag, json.dumps(data))
        return data

    def pages(self, url: str, params: Mapping[str, Any] | None = None, conditional: bool = True) -> Iterator[Any]:
        """The items of a list endpoint, following ``Link: rel="next"`` page by page."""
        next_url: str | None = url
        next_params: Mapping[str, Any] | None = {"per_page": PER_PAGE, **(params or {})}
        while next_url:
            page, link = self._page(next_url, next_params, conditional)
            yield page
            next_url, next_params = link, None

    def _page(self, url: str, params: Mapping[str, Any] | None, conditional: bool) -> tuple[Any, str | None]:
        key = "page:" + url + ("?" + "&".join(f"{k}={v}" for k, v in sorted(params.items())) if params else "")
        cached = self.cache.get(key) if conditional else None
        status, headers, data = self.request(url, params, cached[0] if cached else None)
        if status == 304 and cached is not None:
            stored = json.loads(cached[1])
            return stored["data"], stored["next"]
        if status >= 400:
            raise SourceError(SOURCE, "not_found" if status == 404 else "http_error", f"GET {_path(url)}: {status}")
        m = _NEXT.search(_header(headers, "link") or "")
        link = m.group(1) if m else None
        etag = _header(headers, "etag")
        if conditional and etag:
            self.cache.put(key, etag, json.dumps({"data": data, "next": link}))
        return data, link

    def close(self) -> None:
        self._gh.close()


def _auth(settings: Settings) -> Auth.Auth | None:
    if settings.token:
        return Auth.Token(settings.token)
    if settings.app_id and settings.app_private_key:
        app = Auth.AppAuth(settings.app_id, settings.app_private_key)
        if settings.app_installation_id is None:
            raise SourceError(SOURCE, "auth", "a GitHub App needs github.app_installation_id")
        return app.get_installation_auth(settings.app_installation_id)
    return None


def _path(url: str) -> str:
    """The path of a URL, for messages: never a query string (it could carry a token)."""
    return re.sub(r"^https?://[^/]+", "", url).split("?", 1)[0]


def _reason(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"too many (\d+) error responses", text)
    return f"too many {m.group(1)} responses" if m else type(exc).__name__


def _is_rate_limit(body: str | None) -> bool:
    return bool(body) and "rate limit" in str(body).lower()


def _mapped(exc: GithubException, url: str) -> SourceError:
    where = f"GET {_path(url)} answered {exc.status}"
    if isinstance(exc, RateLimitExceededException) or exc.status == 429:
        return SourceError(SOURCE, "rate_limited", where)
    if isinstance(exc, BadCredentialsException) or exc.status in (401, 403):
        return SourceError(SOURCE, "auth", where)
    if exc.status == 404:
        return SourceError(SOURCE, "not_found", where)
    if isinstance(exc.status, int) and exc.status >= 500:
        return SourceError(SOURCE, "server_error", where)
    return SourceError(SOURCE, "http_error", where)


# -- source repositories ------------------------------------------------------------------------


def _matches(path: str, specs: Sequence[str]) -> bool:
    """git pathspec semantics for plain specs: the path itself, a directory prefix, or a glob."""
    for spec in specs:
        s = spec.rstrip("/")
        if not s or s == "." or path == s or path.startswith(s + "/") or fnmatch.fnmatchcase(path, spec):
            return True
    return False


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
        raise SourceError(SOURCE, "bad_response", f"commit {c.get('sha')} has no dates")
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
        if _SHA40.match(ref):
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
        if hit is not None:
            return list(json.loads(hit[1])["files"])
        files: list[str] = []
        first: dict[str, Any] | None = None
        try:
            for page in self.client.pages(f"{self._base}/commits/{sha}", conditional=False):
                if first is None:
                    first = page
                files.extend(f["filename"] for f in page.get("files", []))
        except SourceError as exc:
            if exc.kind == "http_error":  # 422: no such commit (a 404, no such repository, is raised)
                return None
            raise
        if first is None:
            return None
        info = _commit_info(first)
        self.client.cache.put(
            key,
            None,
            json.dumps(
                {"files": files, "author": info.author_time.isoformat(), "committer": info.commit_time.isoformat()}
            ),
        )
        return files

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        data = self.client.get_json(
            f"{self._base}/compare/{ancestor}...{descendant}", {"per_page": 1}, missing=(404, 422)
        )
        return isinstance(data, dict) and data.get("status") in ("ahead", "identical")

    def changes(self, head: str, exclude: Sequence[str], paths: Sequence[str]) -> list[Change]:
        """Non-merge commits in ``exclude[0]...head`` touching ``paths``, oldest first, with their PRs."""
        if not exclude:
            raise SourceError(SOURCE, "bad_request", "a GitHub compare needs a base commit")
        commits: list[CommitInfo] = []
        files: list[str] = []
        total = None
        # compare commits are immutable for two SHAs: no ETag round trip needed
        for page in self.client.pages(f"{self._base}/compare/{exclude[0]}...{head}", conditional=False):
            if total is None:
                total = int(page.get("total_commits", 0))
                files = [f["filename"] for f in page.get("files", [])]
            commits.extend(_commit_info(c) for c in page.get("commits", []))
        if total is not None and len(commits) < total:
            raise SourceError(SOURCE, "bad_response", f"compare listed {len(commits)} of {total} commits")
        complete = len(files) < COMPARE_FILES_LIMIT
        if paths and complete and not any(_matches(f, paths) for f in files):
            return []  # the complete file list says the range does not touch the service
        # per-commit files only when they can change the answer: the diff may be truncated, or it
        # touches other paths too. (A range whose whole diff is inside the paths keeps every commit.)
        per_commit = bool(paths) and not (complete and all(_matches(f, paths) for f in files))
        out = []
        for c in commits:
            if len(c.parents) > 1:
                continue
            if per_commit:
                commit_files = self._commit_files(c.sha)
                if commit_files is None or not any(_matches(f, paths) for f in commit_files):
                    continue
            pr = self.pull_request_of(c.sha) if self.pull_requests else None
            out.append(Change(c.sha, c.author_time, c.commit_time, c.subject, self.pull_requests, pr))
        return out

    def pull_request_of(self, sha: str) -> PullRequest | None:
        """The merged pull request that brought ``sha`` in, with its first commit's author time."""
        key = github_pulls_cache_key(self.name, sha)
        hit = self.client.cache.get(key)
        if hit is not None:
            stored = json.loads(hit[1])
            return None if stored is None else _pr_from(stored)
        pulls = self.client.get_json(f"{self._base}/commits/{sha}/pulls", conditional=False) or []
        merged = sorted((p for p in pulls if p.get("merged_at")), key=lambda p: str(p["merged_at"]))
        if not merged:
            self.client.cache.put(key, None, "null")
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


# -- incidents ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    repo: str
    number: int
    title: str
    labels: tuple[str, ...]
    opened_at: datetime
    closed_at: datetime | None
    updated_at: datetime


def incident_issues(client: Client, repo: str, label: str, since: str | None) -> Iterator[Issue]:
    """Issues labelled ``label`` updated at or after ``since`` (oldest update first), pull requests left out.

    The issues API lists pull requests too (they carry a ``pull_request`` key): those are skipped."""
    params: dict[str, Any] = {"labels": label, "state": "all", "sort": "updated", "direction": "asc"}
    if since:
        params["since"] = since
    for page in client.pages(f"/repos/{repo}/issues", params):
        for raw in page:
            if "pull_request" in raw:
                continue
            opened, updated = parse_time(raw.get("created_at")), parse_time(raw.get("updated_at"))
            if opened is None or updated is None:
                raise SourceError(SOURCE, "bad_response", f"issue {repo}#{raw.get('number')} has no dates")
            closed = parse_time(raw.get("closed_at")) if raw.get("state") == "closed" else None
            yield Issue(
                repo,
                int(raw["number"]),
                str(raw.get("title") or ""),
                tuple(str(lbl["name"]) for lbl in raw.get("labels", []) if isinstance(lbl, dict)),
                opened,
                closed,
                updated,
            )


# -- deployments --------------------------------------------------------------------------------

FINAL_STATES = frozenset({"success", "failure", "error", "inactive"})


@dataclass(frozen=True)
class DeploymentStatus:
    id: int
    state: str
    created_at: datetime


@dataclass(frozen=True)
class GitHubDeployment:
    """One entry of ``GET /repos/{owner}/{repo}/deployments``."""

    repo: str
    id: int
    sha: str
    ref: str
    environment: str
    created_at: datetime


def _deployment(repo: str, raw: Mapping[str, Any]) -> GitHubDeployment:
    created = parse_time(raw.get("created_at"))
    sha = str(raw.get("sha") or "")
    if created is None or not isinstance(raw.get("id"), int) or not _SHA40.match(sha):
        raise SourceError(SOURCE, "bad_response", f"deployment {repo}/{raw.get('id')} lacks an id, a sha or a date")
    return GitHubDeployment(
        repo, int(raw["id"]), sha, str(raw.get("ref") or ""), str(raw.get("environment") or ""), created
    )


def deployments(client: Client, repo: str, after_id: int | None, since: datetime) -> Iterator[GitHubDeployment]:
    """A repository's deployments newest first, up to (not including) ``after_id`` (the high-water
    mark: ids grow with creation) or the first one created before ``since``, whichever comes first.

    The first page is asked with its ETag: an unchanged list costs a ``304`` and no rate limit."""
    for page in client.pages(f"/repos/{repo}/deployments"):
        for raw in page:
            d = _deployment(repo, raw)
            if (after_id is not None and d.id <= after_id) or d.created_at < since:
                return
            yield d


def deployment_statuses(client: Client, repo: str, deployment_id: int, conditional: bool) -> list[DeploymentStatus]:
    """Every status of one deployment, oldest first (GitHub lists them newest first).

    ``conditional`` for a deployment read before: its unchanged list is a ``304``."""
    out = []
    for page in client.pages(f"/repos/{repo}/deployments/{deployment_id}/statuses", conditional=conditional):
        for raw in page:
            at = parse_time(raw.get("created_at"))
            if at is None or not isinstance(raw.get("id"), int):
                raise SourceError(SOURCE, "bad_response", f"a status of deployment {repo}/{deployment_id} has no date")
            out.append(DeploymentStatus(int(raw["id"]), str(raw.get("state") or ""), at))
    return sorted(out, key=lambda s: (s.created_at, s.id))
