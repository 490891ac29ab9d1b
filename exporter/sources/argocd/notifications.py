# SPDX-License-Identifier: Apache-2.0
"""Argo CD notification bodies: what argocd-notifications sends with the template in
``examples/argocd-notifications-cm.yaml``.

A notification is a hint, not a fact: delivery is best effort (no retries on our side of the
contract, lost on restarts of the notifications controller), so the watch stays the source of
truth. A body is accepted when it is a JSON object carrying the documented fields; its natural key
(app uid, trigger, operation start, health, revision) makes a replay a duplicate.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

__all__ = ["MAX_FIELD", "OPTIONAL", "REQUIRED", "Notification", "parse_argocd_notification"]

REQUIRED = ("trigger", "app", "namespace", "uid")
OPTIONAL = ("revision", "phase", "startedAt", "finishedAt", "health", "message")
MAX_FIELD = 2000


@dataclass(frozen=True, slots=True)
class Notification:
    """One accepted body; ``key`` identifies it across replays, ``raw`` is the cleaned JSON kept."""

    trigger: str
    app: str
    namespace: str
    uid: str
    key: str
    raw: str
    started_at: str | None = None


def parse_argocd_notification(body: bytes) -> Notification:
    """Validate one body; ``ValueError`` (with a short reason) for anything else."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc.__class__.__name__}") from exc
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    for name in REQUIRED:
        if not isinstance(data.get(name), str) or not data[name]:
            raise ValueError(f"missing string field {name!r}")
    for name in (*REQUIRED, *OPTIONAL):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_FIELD):
            raise ValueError(f"field {name!r} must be a string of at most {MAX_FIELD} characters")
    identity = [data.get(n) or "" for n in ("uid", "trigger", "startedAt", "finishedAt", "phase", "health", "revision")]
    key = hashlib.sha256("\x00".join(identity).encode()).hexdigest()[:32]
    clean = {n: data[n] for n in (*REQUIRED, *OPTIONAL) if data.get(n) is not None}
    return Notification(
        trigger=data["trigger"],
        app=data["app"],
        namespace=data["namespace"],
        uid=data["uid"],
        key=key,
        raw=json.dumps(clean),
        started_at=data.get("startedAt") or None,
    )
