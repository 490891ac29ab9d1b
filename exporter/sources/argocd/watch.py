"""The Argo CD source: watch ``applications.argoproj.io/v1alpha1`` and read what matters in each one.

The watch follows the Kubernetes list-then-watch contract (as kopf does): list, remember the list's
``resourceVersion``, watch from it with bookmarks allowed, and keep the newest ``resourceVersion``
seen. A ``410 Gone`` (as an HTTP status or as an ``ERROR`` event inside a 200 stream) means that
version was compacted away: list again. Every socket read has a client-side timeout, so a half-open
connection (headers, then silence) ends in a reconnect instead of hanging forever. Failures back
off along an explicit, capped sequence with jitter; a ``429`` waits at least its ``Retry-After``.

This is the only module that imports ``kubernetes``; every library error becomes a ``SourceError``
or a reconnect. It yields plain ``App`` snapshots; what they mean is decided elsewhere.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import structlog
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from exporter.errors import SourceError

log = structlog.get_logger(__name__)

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "applications"
SOURCE = "argocd"
COMPLETED_PHASES = frozenset({"Succeeded", "Failed", "Error"})
FAILED_PHASES = frozenset({"Failed", "Error"})


# -- what is read from an Application ---------------------------------------------------------


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_time(value: str) -> datetime | None:
    """An RFC 3339 timestamp as Kubernetes writes it; ``None`` when it is not one."""
    return _ts(value)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ``status.history`` item: a successful sync that Argo CD recorded."""

    id: int
    deployed_at: datetime
    started_at: datetime | None
    revision: str | None
    revisions: tuple[str, ...] = ()
    repos: tuple[str, ...] = ()

    @property
    def time(self) -> datetime:
        """Deployment time: ``deployStartedAt`` when present (when the rollout began), else ``deployedAt``."""
        return self.started_at or self.deployed_at

    def revision_for(self, repo: str | None) -> str | None:
        """The revision of the configured source repo for multi-source apps, else the single revision."""
        if self.revisions:
            if repo is not None:
                for rev, url in zip(self.revisions, self.repos, strict=False):
                    if _same_repo(url, repo):
                        return rev
            return self.revisions[0]
        return self.revision


@dataclass(frozen=True, slots=True)
class Operation:
    """``status.operationState``: the current or last sync operation."""

    started_at: datetime
    phase: str
    finished_at: datetime | None
    retry_count: int
    message: str
    revision: str | None
    images: tuple[str, ...] = ()

    @property
    def completed(self) -> bool:
        """Final: a retrying operation (``Running``, ``finishedAt`` set, ``retryCount > 0``) is not."""
        return self.phase in COMPLETED_PHASES and self.finished_at is not None

    @property
    def failed(self) -> bool:
        return self.completed and self.phase in FAILED_PHASES


@dataclass(frozen=True, slots=True)
class App:
    """The parts of one Application that the exporter reads (``reconciledAt`` deliberately not)."""

    uid: str
    name: str
    namespace: str
    labels: Mapping[str, str]
    destination_namespace: str | None
    history: tuple[HistoryEntry, ...]
    operation: Operation | None
    health: str | None
    images: tuple[str, ...]
    resource_version: str = field(default="", compare=False)

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything that can change an outcome; equal fingerprints mean nothing to do."""
        return (self.name, tuple(sorted(self.labels.items())), self.destination_namespace, self.history,
                self.operation, self.health, self.images)  # fmt: skip


def _same_repo(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        return u.strip().rstrip("/").removesuffix(".git").lower()

    return norm(a) == norm(b)


def parse_app(obj: Mapping[str, Any]) -> App | None:
    """An Application object (as JSON) to an ``App``; ``None`` when it lacks a uid or name."""
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(uid, str) or not isinstance(name, str):
        return None
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    history = []
    for h in status.get("history") or []:
        if not isinstance(h, Mapping) or not isinstance(h.get("id"), int):
            continue
        deployed = _ts(h.get("deployedAt"))
        if deployed is None:
            continue
        sources = h.get("sources") or []
        history.append(
            HistoryEntry(
                id=int(h["id"]),
                deployed_at=deployed,
                started_at=_ts(h.get("deployStartedAt")),
                revision=h.get("revision") if isinstance(h.get("revision"), str) else None,
                revisions=tuple(str(r) for r in h.get("revisions") or []),
                repos=tuple(str((s or {}).get("repoURL", "")) for s in sources),
            )
        )
    op_raw = status.get("operationState") or {}
    operation = None
    started = _ts(op_raw.get("startedAt"))
    if started is not None:
        sync_result = op_raw.get("syncResult") or {}
        images = tuple(
            dict.fromkeys(str(i) for r in sync_result.get("resources") or [] for i in (r or {}).get("images") or [])
        )
        sync = (op_raw.get("operation") or {}).get("sync") or {}
        operation = Operation(
            started_at=started,
            phase=str(op_raw.get("phase") or ""),
            finished_at=_ts(op_raw.get("finishedAt")),
            retry_count=int(op_raw.get("retryCount") or 0),
            message=str(op_raw.get("message") or "")[:500],
            revision=sync_result.get("revision") or sync.get("revision"),
            images=images,
        )
    health = (status.get("health") or {}).get("status")
    return App(
        uid=uid,
        name=name,
        namespace=str(meta.get("namespace") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        destination_namespace=(spec.get("destination") or {}).get("namespace"),
        history=tuple(sorted(history, key=lambda e: e.id)),
        operation=operation,
        health=health if isinstance(health, str) else None,
        images=tuple(str(i) for i in (status.get("summary") or {}).get("images") or []),
        resource_version=str(meta.get("resourceVersion") or ""),
    )


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
        raise SourceError(SOURCE, "config", f"no usable Kubernetes configuration: {exc}") from exc


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

    def _call(self, **kwargs: Any) -> Any:
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
            retry_after = 0.0
            try:
                if self.resource_version is None:
                    self._list()
                attempt = 0
                self._watch(stop)
                continue  # a clean end of the server-side timeout: watch again at once
            except _Gone as exc:
                self.resource_version = None
                self.listener.relisting(self.scope, str(exc))
                continue
            except _Reconnect as exc:
                reason = str(exc)
            except ApiException as exc:
                error, retry_after = self._api_error(exc)
                if error is None:  # 410 on the watch request itself
                    self.resource_version = None
                    self.listener.relisting(self.scope, "410 Gone")
                    continue
                self.listener.failed(self.scope, error)
                reason = error.kind
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self.listener.failed(self.scope, SourceError(SOURCE, "connection", f"{type(exc).__name__}: {exc}"))
                reason = "connection"
            self.listener.reconnecting(self.scope, reason)
            delay = max(self.settings.delay(attempt), retry_after)
            attempt += 1
            log.info("argocd.watch_backoff", scope=self.scope, seconds=round(delay, 3), attempt=attempt)
            stop.wait(delay)

    def _api_error(self, exc: ApiException) -> tuple[SourceError | None, float]:
        status = int(exc.status or 0)
        if status == 410:
            return None, 0.0
        kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 429: "throttled"}.get(
            status, "server" if status >= 500 else "http"
        )
        hint = " (is the Application CRD installed?)" if status == 404 else ""
        retry_after = 0.0
        if status == 429:
            raw = (exc.headers or {}).get("Retry-After", "")
            try:
                retry_after = max(0.0, float(raw))
            except (TypeError, ValueError):
                retry_after = 1.0
        return SourceError(SOURCE, kind, f"HTTP {status} {exc.reason or ''}{hint}".strip()), retry_after

    def _list(self) -> None:
        body = self._call()
        items = body.get("items") or []
        apps = [a for a in (parse_app(o) for o in items) if a is not None]
        self.resource_version = str((body.get("metadata") or {}).get("resourceVersion") or "") or None
        log.info("argocd.listed", scope=self.scope, apps=len(apps), resource_version=self.resource_version)
        self.listener.listed(self.scope, apps)

    def _watch(self, stop: threading.Event) -> None:
        resp = self._call(
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
                self._event(line)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Reconnect(f"stream broke: {type(exc).__name__}") from exc
        finally:
            resp.close()  # first: a stream left mid-way (stop, timeout) must never go back to the pool
            resp.release_conn()

    def _event(self, line: bytes) -> None:
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
        rv = ((obj or {}).get("metadata") or {}).get("resourceVersion")
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
