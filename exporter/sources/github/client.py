# SPDX-License-Identifier: Apache-2.0
"""The GitHub client through PyGithub: requests within a budget, retries, the rate limit, errors, the cache.

The only module that imports ``github``. Every library or transport error becomes a
``SourceError("github", kind)`` with a bounded ``ErrorKind``: ``rate_limited``, ``budget_exhausted``,
``timeout``, ``connection``, ``server_error``, ``auth``, ``not_found``, ``http_error``, ``bad_response``.
What is read through it lives beside it: ``repos`` (commits, compares, pull requests), ``issues``
(incidents) and ``deployments``.

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

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import requests
import structlog
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from github.GithubException import BadCredentialsException, RateLimitExceededExceedsMaxWait

from exporter.errors import ErrorKind, SourceError

__all__ = ["PER_PAGE", "SHA40", "SOURCE", "Cache", "Client", "MemoryCache", "Settings", "StatusError", "parse_time"]

log = structlog.get_logger(__name__)

SOURCE = "github"
PER_PAGE = 100
SHA40 = re.compile(r"^[0-9a-f]{40}$")
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class StatusError(SourceError):
    """GitHub answered a 4xx the caller may read: ``status`` and GitHub's own ``message`` (the
    ``message`` field of its error body, which tells, e.g., a compare of unrelated histories from a
    missing repository; both are 404)."""

    def __init__(self, kind: ErrorKind, where: str, status: int, body: Any) -> None:
        message = str(body.get("message") or "")[:200] if isinstance(body, dict) else ""
        super().__init__(SOURCE, kind, f"{where} answered {status}" + (f": {message}" if message else ""))
        self.status = status
        self.github_message = message


def _status_error(url: str, status: int, body: Any) -> StatusError:
    kind = ErrorKind.NOT_FOUND if status == 404 else ErrorKind.HTTP_ERROR
    return StatusError(kind, f"GET {_path(url)}", status, body)


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


# GitHub's REST docs, "Rate limits for the REST API" (exceeding the secondary rate limit): without a
# ``retry-after`` header, "wait for at least one minute before retrying"
SECONDARY_RATE_WAIT = 60.0


class _BoundedRetry(GithubRetry):
    """PyGithub's retry, with every rate-limit wait bounded by the job's remaining budget too.

    ``max_rate_limit_wait`` is read by ``GithubRetry.increment`` (primary reset, secondary wait)
    and by ``sleep_for_retry`` (``Retry-After``): here it is the smaller of the configured bound
    and what is left of the calling thread's budget, so a wait that would outlast the job raises
    ``RateLimitExceededExceedsMaxWait`` (``rate_limited``) at once instead of sleeping past it.
    urllib3 would also sleep whatever ``Retry-After`` a 403 or 429 asks for: capped the same way."""

    def __init__(self, *, budget_left: Callable[[], float | None] = lambda: None, **kw: Any) -> None:
        self.budget_left = budget_left
        super().__init__(**kw)

    @property
    def max_rate_limit_wait(self) -> float | None:
        left = self.budget_left()
        if left is None:
            return self._max_wait
        return max(0.0, left) if self._max_wait is None else min(self._max_wait, max(0.0, left))

    @max_rate_limit_wait.setter
    def max_rate_limit_wait(self, value: float | None) -> None:
        self._max_wait = value

    def new(self, **kw: Any) -> Any:
        kw.setdefault("budget_left", self.budget_left)  # urllib3 copies a retry on each attempt
        return super().new(**kw)

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after and self.max_rate_limit_wait is not None and retry_after > self.max_rate_limit_wait:
            raise SourceError(SOURCE, ErrorKind.RATE_LIMITED, f"GitHub asks to retry after {retry_after:.0f}s")
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
            secondary_rate_wait=SECONDARY_RATE_WAIT,
            budget_left=self._budget_left,
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

    def _budget_left(self) -> float | None:
        deadline = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline - time.monotonic()

    def _check_budget(self) -> None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None and time.monotonic() >= deadline:
            raise SourceError(SOURCE, ErrorKind.BUDGET_EXHAUSTED, "the job's time budget is spent; resuming next run")

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
            raise SourceError(SOURCE, ErrorKind.RATE_LIMITED, f"rate limit resets in {exc.wait:.0f}s") from exc
        except (requests.Timeout, TimeoutError) as exc:
            raise SourceError(SOURCE, ErrorKind.TIMEOUT, f"GET {_path(url)} timed out") from exc
        except requests.exceptions.RetryError as exc:
            # out of retries (with ``retries: 0``, at the first answer): GithubRetry retries a 403
            # only when it is a rate limit (Retry-After, or a rate-limit message), so a 403 or a
            # 429 here is one, whatever the count of retries left
            kind = ErrorKind.RATE_LIMITED if _retried_status(exc) in (403, 429) else ErrorKind.SERVER_ERROR
            raise SourceError(SOURCE, kind, f"GET {_path(url)} kept failing: {_reason(exc)}") from exc
        except requests.ConnectionError as exc:
            kind = ErrorKind.TIMEOUT if "timed out" in str(exc).lower() else ErrorKind.CONNECTION
            raise SourceError(SOURCE, kind, f"GET {_path(url)}: cannot connect") from exc
        except GithubException as exc:
            raise _mapped(exc, url) from exc
        self._note(resp_headers)
        if status == 429 or (status == 403 and _is_rate_limit(body)):
            raise SourceError(SOURCE, ErrorKind.RATE_LIMITED, f"GET {_path(url)} answered {status}: rate limited")
        if status in (401, 403):
            raise SourceError(SOURCE, ErrorKind.AUTH, f"GET {_path(url)} answered {status}")
        if status >= 500:
            raise SourceError(SOURCE, ErrorKind.SERVER_ERROR, f"GET {_path(url)} answered {status}")
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
            raise _status_error(url, status, data)
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
            raise _status_error(url, status, data)
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
            raise SourceError(SOURCE, ErrorKind.AUTH, "a GitHub App needs github.app_installation_id")
        return app.get_installation_auth(settings.app_installation_id)
    return None


def _path(url: str) -> str:
    """The path of a URL, for messages: never a query string (it could carry a token)."""
    return re.sub(r"^https?://[^/]+", "", url).split("?", 1)[0]


def _retried_status(exc: Exception) -> int | None:
    m = re.search(r"too many (\d+) error responses", str(exc))
    return int(m.group(1)) if m else None


def _reason(exc: Exception) -> str:
    text = str(exc)
    m = re.search(r"too many (\d+) error responses", text)
    return f"too many {m.group(1)} responses" if m else type(exc).__name__


def _is_rate_limit(body: str | None) -> bool:
    return bool(body) and "rate limit" in str(body).lower()


def _mapped(exc: GithubException, url: str) -> SourceError:
    where = f"GET {_path(url)} answered {exc.status}"
    if isinstance(exc, RateLimitExceededException) or exc.status == 429:
        return SourceError(SOURCE, ErrorKind.RATE_LIMITED, where)
    if isinstance(exc, BadCredentialsException) or exc.status in (401, 403):
        return SourceError(SOURCE, ErrorKind.AUTH, where)
    if exc.status == 404:
        return SourceError(SOURCE, ErrorKind.NOT_FOUND, where)
    if isinstance(exc.status, int) and exc.status >= 500:
        return SourceError(SOURCE, ErrorKind.SERVER_ERROR, where)
    return SourceError(SOURCE, ErrorKind.HTTP_ERROR, where)
