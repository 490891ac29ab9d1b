# SPDX-License-Identifier: Apache-2.0
"""Argo CD Applications for ingest tests: our fixture Application renamed, with a history of our choosing."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

import yaml

from exporter.sources.argocd.apps import App, parse_app
from tests.support.argocd import APPLICATION, iso

__all__ = ["SERVICE", "argo_app"]

SERVICE = "shop-api"


def argo_app(uid: str, entries: list[tuple[int, str, datetime]], images: list[str] | None = None) -> App:
    """Our fixture Application renamed to shop-api-prod, its history replaced by ``entries`` (id, revision, start)."""
    obj: dict[str, Any] = yaml.safe_load(APPLICATION.read_text())
    obj["metadata"].update(name=f"{SERVICE}-prod", uid=uid)
    template = obj["status"]["history"][-1]
    history = []
    for hid, rev, start in entries:
        e = copy.deepcopy(template)
        e.update(id=hid, revision=rev, deployStartedAt=iso(start), deployedAt=iso(start + timedelta(seconds=2)))
        history.append(e)
    obj["status"]["history"] = history
    last_start = entries[-1][2]
    obj["status"]["operationState"].update(startedAt=iso(last_start), finishedAt=iso(last_start + timedelta(seconds=3)))
    obj["status"]["operationState"]["syncResult"]["revision"] = entries[-1][1]
    if images is not None:
        obj["status"]["summary"]["images"] = images
    app = parse_app(obj)
    assert app is not None
    return app
