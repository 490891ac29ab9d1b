# SPDX-License-Identifier: Apache-2.0
"""What every aggregate's queries share: the connection they run on, and the pair filter."""

from __future__ import annotations

from exporter.store.connection import Connection

__all__ = ["Queries", "pair_filter"]


class Queries:
    """Base of the aggregate query classes; ``Tx`` and ``Store`` say which connection is theirs
    (the writer inside a transaction, which must see its own rows; a reader's otherwise)."""

    @property
    def conn(self) -> Connection:
        raise NotImplementedError


def pair_filter(service: str | None, environment: str | None) -> tuple[str, list[str]]:
    """A ``WHERE`` clause (or nothing) selecting one service and/or environment, and its arguments."""
    parts = [(col, v) for col, v in (("service", service), ("environment", environment)) if v]
    if not parts:
        return "", []
    return " WHERE " + " AND ".join(f"{col} = ?" for col, _ in parts), [v for _, v in parts]
