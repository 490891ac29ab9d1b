# SPDX-License-Identifier: Apache-2.0
"""One guard for every supervised task: each run of a job, and each long-lived watch thread.

Whatever a task raises ends in the same three places: a log event that says what happened (the
outside system failed, the store failed, or the code crashed, with its traceback), the source's
health (the part goes down with the error's kind), and an ``Attempt`` the caller acts on. Nothing
propagates into the scheduler or ends a thread. A long-lived task also tells its normal stop from
an unexpected exit, and from a cancellation that came while it waited to restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Generic, Literal, TypeVar

import structlog

from exporter.errors import ErrorKind, SourceError, StoreError
from exporter.serve import Health

__all__ = ["Attempt", "Exits", "Outcome", "Task", "guard", "supervise"]

log = structlog.get_logger(__name__)
_R = TypeVar("_R")


class Outcome(Enum):
    """How one run of a task ended."""

    DONE = "done"  # it returned
    STOPPED = "stopped"  # a source error the task declared a normal stop (a spent budget)
    FAILED = "failed"  # the outside system failed: a typed ``SourceError``
    STORE_FAILED = "store_failed"  # the store could not be read or written
    CRASHED = "crashed"  # anything else: a bug, logged with its traceback


@dataclass(frozen=True, kw_only=True)
class Task:
    """Where one task's outcome goes: its part of a source's health, and its log events."""

    source: str
    part: str
    failed: str  # event for a ``SourceError``
    crashed: str  # event for anything unexpected
    store_failed: str | None = None  # event for a ``StoreError``; None: a store error is a crash
    failed_level: Literal["error", "warning"] = "error"
    normal_stops: frozenset[str] = frozenset()  # ``SourceError`` kinds that end a run normally
    log_source: bool = False  # log the failing source's name (a GitOps poll also reads GitHub)
    context: Mapping[str, object] = field(default_factory=dict)  # logged with every event
    store_context: Mapping[str, object] = field(default_factory=dict)  # logged with ``store_failed``


@dataclass(frozen=True, kw_only=True)
class Exits:
    """The log events that tell apart how a long-lived task ended."""

    stopped: str  # it returned after ``stop`` was set: the shutdown asked for it
    exited: str  # it returned while it should have run on: restarted after a backoff step
    cancelled: str  # ``stop`` was set while it waited to restart


@dataclass(frozen=True)
class Attempt(Generic[_R]):
    """One run's outcome; ``value`` when it returned, ``error`` when it raised."""

    outcome: Outcome
    value: _R | None = None
    error: Exception | None = None


def guard(run: Callable[[], _R], *, task: Task, health: Health) -> Attempt[_R]:
    """Run ``task`` once. A failure is logged and recorded as the part's health; a success is the
    caller's to record (a job knows its duration; a watch reports its own health as it goes)."""
    try:
        return Attempt(Outcome.DONE, run())
    except SourceError as exc:
        if exc.kind in task.normal_stops:
            return Attempt(Outcome.STOPPED, error=exc)
        health.failure(task.source, task.part, exc.kind, str(exc))
        fields: dict[str, object] = {**task.context, "kind": exc.kind, "error": str(exc)}
        if task.log_source:
            fields["source"] = exc.source
        emit = log.warning if task.failed_level == "warning" else log.error
        emit(task.failed, **fields)
        return Attempt(Outcome.FAILED, error=exc)
    except StoreError as exc:
        if task.store_failed is None:
            crashed: Attempt[_R] = _crashed(task, health, exc)
            log.exception(task.crashed, **task.context)
            return crashed
        health.failure(task.source, task.part, exc.kind, str(exc))  # store, store_full, store_corrupt, ...
        log.error(task.store_failed, **task.context, **task.store_context, error=str(exc))
        return Attempt(Outcome.STORE_FAILED, error=exc)
    except Exception as exc:
        crashed = _crashed(task, health, exc)
        log.exception(task.crashed, **task.context)  # with the traceback: this is a bug
        return crashed


def _crashed(task: Task, health: Health, exc: Exception) -> Attempt[_R]:
    health.failure(task.source, task.part, ErrorKind.UNEXPECTED, repr(exc))
    return Attempt(Outcome.CRASHED, error=exc)


def supervise(
    run: Callable[[], None],
    *,
    task: Task,
    exits: Exits,
    health: Health,
    stop: threading.Event,
    delay: Callable[[int], float],
) -> None:
    """Run a task that should last until ``stop``; restart it after ``delay(attempt)`` whenever it
    fails, crashes or exits on its own."""
    attempt = 0
    while not stop.is_set():
        if guard(run, task=task, health=health).outcome is Outcome.DONE:
            if stop.is_set():
                log.info(exits.stopped, **task.context)
                return
            log.error(exits.exited, **task.context)
        stop.wait(delay(attempt))
        attempt += 1
    log.info(exits.cancelled, **task.context)
