# SPDX-License-Identifier: Apache-2.0
"""The Argo CD watch: list and watch ``applications.argoproj.io/v1alpha1``, handing ``App`` snapshots on.

The watch follows the Kubernetes list-then-watch contract (as kopf does): list, remember the list's
``resourceVersion``, watch from it with bookmarks allowed, and keep the newest ``resourceVersion``
seen. A ``410 Gone`` (as an HTTP status or as an ``ERROR`` event inside a 200 stream) means that
version was compacted away: list again. Every socket read has a client-side timeout, so a half-open
connection (headers, then silence) ends in a reconnect instead of hanging forever. Failures back
off along an explicit, capped sequence with jitter; a ``429`` waits at least its ``Retry-After``.

This is the only module that imports ``kubernetes``; every library error becomes a ``SourceError``
or a reconnect. It yields plain ``App`` snapshots (``apps.parse_app``); what they mean is decided elsewhere.
The steps of the loop are small functions: ``api_error`` and ``parse_event`` are pure, and the request
itself goes through ``Watcher.request``, the one place that talks to the API server.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from exporter.errors import ErrorKind, SourceError
from exporter.sources.argocd.apps import App, parse_app

__all__ = ["GROUP", "PLURAL", "SOURCE", "VERSION", "Listener", "WatchSettings", "Watcher", "api_error",
           "load_api", "parse_event"]  # fmt: skip

log = structlog.get_logger(__name__)

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
SOURCE = "argocd"
_STATUS_KINDS = {
    401: ErrorKind.UNAUTHORIZED,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    429: ErrorKind.THROTTLED,
}


# -- the watch --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSettings:
    """Timeouts and the retry schedule; ``backoff=(0.0,)`` and ``jitter=0`` make tests immediate."""

    namespaces: tuple[str, ...] = ("argocd",)  # empty: all namespaces
    label_selector: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 90.0
    watch_timeout: float = 60.0
    backoff: tuple[float, ...] = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        """The ``attempt``-th delay (0-based), capped at the last step, with +-``jitter`` spread."""
        base = self.backoff[min(attempt, len(self.backoff) - 1)]
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))  # noqa: S311 - not crypto


class Listener(Protocol):
    """What the watch reports; implemented by the daemon layer."""

    def listed(self, scope: str, apps: Sequence[App]) -> None: ...
    def changed(self, scope: str, app: App) -> None: ...
    def deleted(self, scope: str, app: App) -> None: ...
    def healthy(self, scope: str) -> None: ...
    def failed(self, scope: str, error: SourceError) -> None: ...
    def reconnecting(self, scope: str, reason: str) -> None: ...
    def relisting(self, scope: str, reason: str) -> None: ...


class _Gone(Exception):
    """The watched resourceVersion is too old (410): list again."""


class _Reconnect(Exception):
    """The stream ended or broke; watch again from the last resourceVersion."""


def load_api(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """In-cluster config when running in a pod (and no kubeconfig is named), else a kubeconfig."""
    try:
        if kubeconfig is None:
            try:
                cfg = client.Configuration()
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                return client.ApiClient(cfg)
            except ConfigException:
                pass
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context
        )
        return api
    except (ConfigException, OSError, ValueError) as exc:
        raise SourceError(SOURCE, ErrorKind.CONFIG, f"no usable Kubernetes configuration: {exc}") from exc


class Watcher:
    """One list-then-watch loop over one scope (a namespace, or all of them when ``namespace`` is None)."""

    def __init__(
        self, api: client.ApiClient, settings: WatchSettings, namespace: str | None, listener: Listener
    ) -> None:
        self.api = client.CustomObjectsApi(api)
        self.settings = settings
        self.namespace = namespace
        self.scope = namespace or "*"
        self.listener = listener
        self.resource_version: str | None = None

    def request(self, **kwargs: Any) -> Any:
        """List (or, with ``watch=True``, watch) the scope's Applications: the one call to the API server."""
        s = self.settings
        common: dict[str, Any] = {
            "_request_timeout": (s.connect_timeout, s.read_timeout),
            **({"label_selector": s.label_selector} if s.label_selector else {}),
            **kwargs,
        }
        if self.namespace is None:
            return self.api.list_cluster_custom_object(GROUP, VERSION, PLURAL, **common)
        return self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **common)

    def run(self, stop: threading.Event) -> None:
        """Until ``stop``: list, watch, relist on 410, reconnect on anything else, backing off on errors."""
        attempt = 0
        while not stop.is_set():
            reason, retry_after, listed = self._cycle(stop)
            if listed:  # the list (or a held resourceVersion) worked: the backoff sequence starts over
                attempt = 0
            if reason is None:  # a clean end of the watch, or a relist: go on at once
                continue
            self.listener.reconnecting(self.scope, reason)
            delay = max(self.settings.delay(attempt), retry_after)
            attempt += 1
            log.info("argocd.watch_backoff", scope=self.scope, seconds=round(delay, 3), attempt=attempt)
            stop.wait(delay)

    def _cycle(self, stop: threading.Event) -> tuple[str | None, float, bool]:
        """List when needed, then watch once: (why to reconnect or ``None``, Retry-After, whether it listed)."""
        listed = False
        try:
            if self.resource_version is None:
                self._list()
            listed = True
            self._watch(stop)
            return None, 0.0, listed  # a clean end of the server-side timeout: watch again at once
        except _Gone as exc:
            self._relist(str(exc))
            return None, 0.0, listed
        except _Reconnect as exc:
            return str(exc), 0.0, listed
        except ApiException as exc:
            error, retry_after = api_error(exc)
            if error is None:  # 410 on the watch request itself
                self._relist("410 Gone")
                return None, 0.0, listed
            self.listener.failed(self.scope, error)
            return error.kind, retry_after, listed
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = SourceError(SOURCE, ErrorKind.CONNECTION, f"{type(exc).__name__}: {exc}")
            self.listener.failed(self.scope, error)
            return ErrorKind.CONNECTION, 0.0, listed

    def _relist(self, reason: str) -> None:
        self.resource_version = None
        self.listener.relisting(self.scope, reason)

    def _list(self) -> None:
        body = self.request()
        items = body.get("items") or []
        apps = [a for a in (parse_app(o) for o in items) if a is not None]
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        log.info("argocd.listed", scope=self.scope, apps=len(apps), resource_version=self.resource_version)
        self.listener.listed(self.scope, apps)

    def _watch(self, stop: threading.Event) -> None:
        resp = self.request(
            watch=True,
            allow_watch_bookmarks=True,
            resource_version=self.resource_version,
            timeout_seconds=max(1, int(self.settings.watch_timeout)),
            _preload_content=False,
        )
        self.listener.healthy(self.scope)
        try:
            for line in _lines(resp):
                if stop.is_set():
                    return
                self._event(*parse_event(line))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Reconnect(f"stream broke: {type(exc).__name__}") from exc
        finally:
            resp.close()  # first: a stream left mid-way (stop, timeout) must never go back to the pool
            resp.release_conn()

    def _event(self, kind: str, obj: Mapping[str, Any]) -> None:
        """Hand one ADDED/MODIFIED/DELETED/BOOKMARK event on and keep its resourceVersion."""
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.resource_version = str(rv) if rv else self.resource_version
            return
        app = parse_app(obj)
        if app is not None:
            if kind == "DELETED":
                self.listener.deleted(self.scope, app)
            else:
                self.listener.changed(self.scope, app)
        if rv:
            self.resource_version = str(rv)


def api_error(exc: ApiException) -> tuple[SourceError | None, float]:
    """An API error as a typed ``SourceError`` and the seconds to wait at least; ``None`` for 410 (relist)."""
    status = int(exc.status or 0)
    if status == 410:
        return None, 0.0
    kind = _STATUS_KINDS.get(status, ErrorKind.SERVER if status >= 500 else ErrorKind.HTTP)
    hint = " (is the Application CRD installed?)" if status == 404 else ""
    retry_after = 0.0
    if status == 429:
        raw = (exc.headers or {}).get("Retry-After", "")
        try:
            retry_after = max(0.0, float(raw))
        except (TypeError, ValueError):
            retry_after = 1.0
    return SourceError(SOURCE, kind, f"HTTP {status} {exc.reason or ''}{hint}".strip()), retry_after


def parse_event(line: bytes) -> tuple[str, Mapping[str, Any]]:
    """One watch line as (type, object); an ``ERROR`` event raises ``_Gone`` (410) or ``_Reconnect``."""
    try:
        event = json.loads(line)
        kind, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _Reconnect(f"unreadable watch line {line[:80]!r}") from exc
    if kind == "ERROR":
        code = obj.get("code") if isinstance(obj, Mapping) else None
        if code == 410:
            raise _Gone(str(obj.get("message", "410 Gone")))
        raise _Reconnect(f"ERROR event {code}: {obj.get('message', '') if isinstance(obj, Mapping) else obj}")
    return kind, obj or {}


def _lines(resp: Any) -> Iterator[bytes]:
    """Newline-delimited JSON from a streaming response; every read is bounded by the read timeout."""
    buf = b""
    for chunk in resp.stream(4096, decode_content=True):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line
    if buf.strip():
        yield buf
