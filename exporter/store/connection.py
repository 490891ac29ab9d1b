# SPDX-License-Identifier: Apache-2.0
"""The engine-neutral face of a database connection, as the aggregate modules use it.

A subset of the DB-API (PEP 249) that both SQLite's and PostgreSQL's drivers provide: rows come
back as plain tuples, and the driver's ``IntegrityError`` class is reachable from the connection,
so code that must raise or catch it never names a driver. Only ``store.engine`` knows which
database is behind it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Connection", "Cursor", "Params", "Row"]

Row = tuple[Any, ...]
Params = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    """The result of one statement: iterated, or fetched."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the aggregate modules may call. Statements use ``?`` (or ``:name``) placeholders."""

    @property
    def IntegrityError(self) -> type[Exception]: ...  # the DB-API name

    def execute(self, sql: str, parameters: Params = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Params], /) -> Cursor: ...
