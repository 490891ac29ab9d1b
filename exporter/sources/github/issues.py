# SPDX-License-Identifier: Apache-2.0
"""Incident issues: the issues of a repository that carry the incident label, as plain ``Issue`` records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.errors import ErrorKind, SourceError
from exporter.sources.github.client import SOURCE, Client, parse_time

__all__ = ["Issue", "incident_issues", "issue"]


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
            yield _issue(repo, raw)


def issue(client: Client, repo: str, number: int) -> Issue | None:
    """One issue by number, whatever its labels now; ``None`` when it is gone (404; 410: deleted).

    The labelled list no longer shows an issue whose label was removed, so a known open incident is
    read this way to see that (and its close). Asked with its ETag: an unchanged issue is a ``304``."""
    raw = client.get_json(f"/repos/{repo}/issues/{number}", missing=(404, 410))
    if not isinstance(raw, dict):
        return None
    return _issue(repo, raw)


def _issue(repo: str, raw: dict[str, Any]) -> Issue:
    opened, updated = parse_time(raw.get("created_at")), parse_time(raw.get("updated_at"))
    if opened is None or updated is None:
        raise SourceError(SOURCE, ErrorKind.BAD_RESPONSE, f"issue {repo}#{raw.get('number')} has no dates")
    closed = parse_time(raw.get("closed_at")) if raw.get("state") == "closed" else None
    return Issue(
        repo,
        int(raw["number"]),
        str(raw.get("title") or ""),
        tuple(str(lbl["name"]) for lbl in raw.get("labels", []) if isinstance(lbl, dict)),
        opened,
        closed,
        updated,
    )
