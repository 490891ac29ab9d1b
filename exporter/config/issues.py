# SPDX-License-Identifier: Apache-2.0
"""Pydantic's validation errors as ``(dotted key, message)`` pairs, worded as the config always has been."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from exporter.config.fields import KeyedError

__all__ = ["dotted", "issues"]

_MAPPING = "must be a mapping"
_FIXED = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "model_type": _MAPPING,
    "model_attributes_type": _MAPPING,
    "dict_type": _MAPPING,
    "list_type": "must be a list",
    "tuple_type": "must be a list",
}
_KINDS = {"string_type": "str", "bool_type": "bool", "int_type": "int", "float_type": "float"}


def dotted(loc: Sequence[int | str]) -> str:
    """``("gitops", 0, "manifests", 1, "regex")`` as ``gitops[0].manifests[1].regex``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("["):
            out += part
        else:
            out += f".{part}" if out else part
    return out


def _one(error: ErrorDetails) -> tuple[str, str]:
    loc: list[int | str] = list(error["loc"])
    kind = error["type"]
    cause: Any = (error.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        loc.append(cause.key)
    if kind in _FIXED:
        message = _FIXED[kind]
    elif kind in _KINDS:
        message = f"must be a {_KINDS[kind]}, got {type(error['input']).__name__}"
    elif isinstance(cause, Exception):
        message = str(cause)
    else:
        message = error["msg"]
    return dotted(loc) or "<root>", message


def issues(exc: ValidationError) -> list[tuple[str, str]]:
    """Every error of ``exc`` in the order pydantic found them (document order), without repeats."""
    return list(dict.fromkeys(_one(e) for e in exc.errors()))
