# SPDX-License-Identifier: Apache-2.0
"""Why a number is what it is: one deployment's changes, lead times and failure reasons, as JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from exporter.core.correlate import lead_seconds
from exporter.model import Deployment, Failure
from exporter.serve.api import Page, PageRequest
from exporter.store import Store

__all__ = ["explain", "explain_page"]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def explain(store: Store, change_start: str, service: str | None, environment: str | None) -> list[dict[str, Any]]:
    """Every matching deployment, oldest first, with what it carried and why it failed."""
    return _explained(
        store, change_start, store.deployments(service, environment), store.failures(service, environment)
    )


def explain_page(store: Store, change_start: str, request: PageRequest) -> Page:
    """One page of ``/api/deployments``: its deployments, and only the failures they caused or
    restored, so a page's cost does not grow with the history."""
    page = store.deployments_page(
        limit=request.limit,
        service=request.service,
        environment=request.environment,
        since=request.since,
        until=request.until,
        after=request.after,
    )
    failures = store.failures_touching([d.id for d in page.deployments])
    return Page(_explained(store, change_start, page.deployments, failures), page.next_after)


def _explained(
    store: Store, change_start: str, deployments: list[Deployment], failures: list[Failure]
) -> list[dict[str, Any]]:
    by_dep: dict[int, list[dict[str, Any]]] = {}
    restores: dict[int, list[int]] = {}
    for f in failures:
        entry = {
            "reason": f.reason.value,
            "detail": f.detail,
            "started_at": _iso(f.started_at),
            "restored_at": _iso(f.restored_at),
            "restored_by_deployment": f.restored_by,
            "time_to_restore_seconds": (
                (f.restored_at - f.started_at).total_seconds() if f.restored_at is not None else None
            ),
        }
        if f.deployment_id is not None:
            by_dep.setdefault(f.deployment_id, []).append(entry)
        if f.restored_by is not None:
            restores.setdefault(f.restored_by, []).append(f.id)
    return [_one(store, change_start, d, by_dep.get(d.id, []), restores.get(d.id, [])) for d in deployments]


def _one(
    store: Store, change_start: str, d: Deployment, failures: list[dict[str, Any]], restores: list[int]
) -> dict[str, Any]:
    changes = store.changes_of(d.id)
    return {
        "id": d.id,
        "service": d.service,
        "environment": d.environment,
        "version": d.version,
        "commit": d.commit,
        "manifest_commit": d.manifest_commit,
        "deployed_at": _iso(d.deployed_at),
        "source": d.source.value,
        "message": d.message,
        "baseline": d.baseline,
        "rework": d.rework,
        "failed": bool(failures),
        "failures": failures,
        "restores_failures": restores,
        "changes": [
            {
                "sha": c.sha,
                "subject": c.subject,
                "author_time": _iso(c.author_time),
                "commit_time": _iso(c.commit_time),
                "lead_time_seconds": lead_seconds(d.deployed_at, c.author_time, c.commit_time, change_start),
            }
            for c in changes
        ],
        "explanation": _why(d, failures, len(changes)),
    }


def _why(d: Deployment, failures: list[dict[str, Any]], n_changes: int) -> str:
    parts = []
    if d.baseline:
        parts.append("first deployment of this service/environment: a baseline, no changes attributed")
    elif d.commit is None:
        parts.append("the version did not resolve to a source commit: no changes attributed")
    else:
        parts.append(f"carried {n_changes} change(s) not deployed to this environment before")
    if d.rework:
        parts.append("rework: it restored a failure")
    parts.extend(f"failed ({f['reason']}: {f['detail']})" for f in failures)
    return "; ".join(parts)
