# SPDX-License-Identifier: Apache-2.0
"""The JSON debug API under ``/api/``: why a number is what it is, for a person or a script.

Each endpoint answers from the store through the injected ``Explain`` (one indexed query), never
from a remote source, so it is as cheap and as safe to call as ``/metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

__all__ = ["Explain", "deployments"]

# (service or None, environment or None) -> the matching deployments, explained
Explain = Callable[[str | None, str | None], list[dict[str, Any]]]


def deployments(explain: Explain, query: str) -> bytes:
    """``GET /api/deployments?service=&environment=``: every matching deployment, explained."""
    q = parse_qs(query)
    body = explain(q.get("service", [None])[0], q.get("environment", [None])[0])
    return json.dumps({"deployments": body}, indent=1).encode()
