# SPDX-License-Identifier: Apache-2.0
"""What the exporter reads from an Argo CD Application: the ``App`` snapshot and its pure parser.

Parsing is kept apart from the watch so that what an Application means can be read (and tested) without
the Kubernetes client: ``parse_app`` takes the object as JSON, whoever fetched it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "COMPLETED_PHASES",
    "FAILED_PHASES",
    "App",
    "HistoryEntry",
    "Operation",
    "parse_app",
    "parse_time",
]

COMPLETED_PHASES = frozenset({"Succeeded", "Failed", "Error"})
FAILED_PHASES = frozenset({"Failed", "Error"})


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
    # ``status.health.lastTransitionTime`` (Argo CD 2.14+): when the health status last changed.
    health_since: datetime | None = None
    # ``metadata.deletionTimestamp``: set when a deletion was requested (with finalizers, before it is gone).
    deletion_requested: datetime | None = field(default=None, compare=False)

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything that can change an outcome; equal fingerprints mean nothing to do."""
        return (self.name, tuple(sorted(self.labels.items())), self.destination_namespace, self.history,
                self.operation, self.health, self.health_since, self.images)  # fmt: skip


def _same_repo(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        return u.strip().rstrip("/").removesuffix(".git").lower()

    return norm(a) == norm(b)


def _history_entry(h: Any) -> HistoryEntry | None:
    """One ``status.history`` item; ``None`` when it lacks an integer id or a ``deployedAt``."""
    if not isinstance(h, Mapping) or not isinstance(h.get("id"), int):
        return None
    deployed = _ts(h.get("deployedAt"))
    if deployed is None:
        return None
    sources = h.get("sources") or []
    return HistoryEntry(
        id=int(h["id"]),
        deployed_at=deployed,
        started_at=_ts(h.get("deployStartedAt")),
        revision=h.get("revision") if isinstance(h.get("revision"), str) else None,
        revisions=tuple(str(r) for r in h.get("revisions") or []),
        repos=tuple(str((s or {}).get("repoURL", "")) for s in sources),
    )


def _operation(op_raw: Mapping[str, Any]) -> Operation | None:
    """``status.operationState``; ``None`` when it has no ``startedAt`` (no operation yet)."""
    started = _ts(op_raw.get("startedAt"))
    if started is None:
        return None
    sync_result = op_raw.get("syncResult") or {}
    images = tuple(
        dict.fromkeys(str(i) for r in sync_result.get("resources") or [] for i in (r or {}).get("images") or [])
    )
    sync = (op_raw.get("operation") or {}).get("sync") or {}
    return Operation(
        started_at=started,
        phase=str(op_raw.get("phase") or ""),
        finished_at=_ts(op_raw.get("finishedAt")),
        retry_count=int(op_raw.get("retryCount") or 0),
        message=str(op_raw.get("message") or "")[:500],
        revision=sync_result.get("revision") or sync.get("revision"),
        images=images,
    )


def parse_app(obj: Mapping[str, Any]) -> App | None:
    """An Application object (as JSON) to an ``App``; ``None`` when it lacks a uid or name."""
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not isinstance(uid, str) or not isinstance(name, str):
        return None
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    history = [e for e in (_history_entry(h) for h in status.get("history") or []) if e is not None]
    health_raw = status.get("health") or {}
    health = health_raw.get("status") if isinstance(health_raw, Mapping) else None
    return App(
        uid=uid,
        name=name,
        namespace=str(meta.get("namespace") or ""),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
        destination_namespace=(spec.get("destination") or {}).get("namespace"),
        history=tuple(sorted(history, key=lambda e: e.id)),
        operation=_operation(status.get("operationState") or {}),
        health=health if isinstance(health, str) else None,
        images=tuple(str(i) for i in (status.get("summary") or {}).get("images") or []),
        resource_version=str(meta.get("resourceVersion") or ""),
        health_since=_ts(health_raw.get("lastTransitionTime")) if isinstance(health_raw, Mapping) else None,
        deletion_requested=_ts(meta.get("deletionTimestamp")),
    )
