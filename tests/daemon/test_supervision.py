# SPDX-License-Identifier: Apache-2.0
"""The one guard every job run and watch thread goes through: each way a task can end gets its own
log event, and a failure takes the task's part of its source down with the error's kind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from structlog.testing import capture_logs

from exporter.daemon.supervision import Exits, Outcome, Task, guard, supervise
from exporter.errors import SourceError, StoreError
from exporter.serve.health import Health

TASK = Task(
    source="demo",
    part="repo-a",
    failed="demo.poll_failed",
    crashed="demo.poll_crashed",
    store_failed="demo.store_failed",
    normal_stops=frozenset({"budget_exhausted"}),
    context={"repo": "repo-a"},
)
EXITS = Exits(stopped="demo.watch_stopped", exited="demo.watch_exited_unexpectedly", cancelled="demo.watch_cancelled")


@dataclass(frozen=True)
class PartHealth:
    up: bool
    attempted: bool
    last_error: str
    errors: dict[tuple[str, str], int]


def _health() -> Health:
    return Health({"demo": ["repo-a"]})


def _part(health: Health) -> PartHealth:
    states, errors = health.copy()
    state = states["demo"]
    return PartHealth(
        up=state.parts.get("repo-a", False),
        attempted="repo-a" in state.attempted,
        last_error=state.last_error,
        errors=errors,
    )


def _raise(exc: Exception) -> Callable[[], int]:
    def run() -> int:
        raise exc

    return run


def test_a_run_that_returns_hands_back_its_value_and_logs_nothing() -> None:
    health = _health()
    with capture_logs() as logs:
        attempt = guard(lambda: 42, task=TASK, health=health)
    assert attempt.outcome is Outcome.DONE and attempt.value == 42 and attempt.error is None
    assert logs == []
    assert _part(health) == PartHealth(up=False, attempted=False, last_error="", errors={})  # success is the caller's


def test_a_source_error_is_a_failure_of_its_kind() -> None:
    health = _health()
    with capture_logs() as logs:
        attempt = guard(_raise(SourceError("git", "timeout", "fetch took too long")), task=TASK, health=health)
    assert attempt.outcome is Outcome.FAILED and attempt.value is None
    assert logs == [
        {
            "event": "demo.poll_failed",
            "log_level": "error",
            "repo": "repo-a",
            "kind": "timeout",
            "error": "git: fetch took too long",
        }
    ]
    assert _part(health) == PartHealth(
        up=False, attempted=True, last_error="git: fetch took too long", errors={("demo", "timeout"): 1}
    )


def test_a_declared_normal_stop_is_neither_logged_nor_a_failure() -> None:
    health = _health()
    with capture_logs() as logs:
        attempt = guard(_raise(SourceError("github", "budget_exhausted", "spent")), task=TASK, health=health)
    assert attempt.outcome is Outcome.STOPPED
    assert logs == []
    assert _part(health).errors == {}


def test_a_store_error_is_the_store_failing() -> None:
    health = _health()
    with capture_logs() as logs:
        attempt = guard(_raise(StoreError("disk I/O error")), task=TASK, health=health)
    assert attempt.outcome is Outcome.STORE_FAILED
    assert logs == [{"event": "demo.store_failed", "log_level": "error", "repo": "repo-a", "error": "disk I/O error"}]
    assert _part(health).errors == {("demo", "store"): 1}


def test_anything_else_is_a_crash_logged_with_its_traceback() -> None:
    health = _health()
    with capture_logs() as logs:
        attempt = guard(_raise(KeyError("missing")), task=TASK, health=health)
    assert attempt.outcome is Outcome.CRASHED and isinstance(attempt.error, KeyError)
    assert [(e["event"], e["log_level"], e["repo"], e.get("exc_info")) for e in logs] == [
        ("demo.poll_crashed", "error", "repo-a", True)
    ]
    assert _part(health) == PartHealth(
        up=False, attempted=True, last_error="KeyError('missing')", errors={("demo", "unexpected"): 1}
    )


def test_without_a_store_event_a_store_error_is_a_crash() -> None:
    health = _health()
    task = Task(source="demo", part="repo-a", failed="demo.watch_failed", crashed="demo.watch_crashed")
    with capture_logs() as logs:
        attempt = guard(_raise(StoreError("locked")), task=task, health=health)
    assert attempt.outcome is Outcome.CRASHED
    assert [e["event"] for e in logs] == ["demo.watch_crashed"]
    assert _part(health).errors == {("demo", "unexpected"): 1}


class _Script:
    """A long-lived task whose runs do, in turn, what the test scripted."""

    def __init__(self, *steps: Callable[[], None]) -> None:
        self.steps = list(steps)
        self.runs = 0

    def __call__(self) -> None:
        step = self.steps[self.runs]
        self.runs += 1
        step()


def _supervise(stop: threading.Event, script: _Script, health: Health) -> list[int]:
    delays: list[int] = []

    def delay(attempt: int) -> float:
        delays.append(attempt)
        return 0.0

    supervise(script, task=TASK, exits=EXITS, health=health, stop=stop, delay=delay)
    return delays


def test_an_unexpected_exit_is_logged_and_restarted_and_a_stop_ends_it_quietly() -> None:
    stop, health = threading.Event(), _health()
    script = _Script(lambda: None, stop.set)
    with capture_logs() as logs:
        delays = _supervise(stop, script, health)
    assert [e["event"] for e in logs] == ["demo.watch_exited_unexpectedly", "demo.watch_stopped"]
    assert [e["repo"] for e in logs] == ["repo-a", "repo-a"]
    assert script.runs == 2 and delays == [0]
    assert _part(health).errors == {}


def test_a_crash_is_restarted_after_a_backoff_step() -> None:
    stop, health = threading.Event(), _health()

    def crash() -> None:
        raise RuntimeError("bug")

    script = _Script(crash, crash, stop.set)
    with capture_logs() as logs:
        delays = _supervise(stop, script, health)
    assert [e["event"] for e in logs] == ["demo.poll_crashed", "demo.poll_crashed", "demo.watch_stopped"]
    assert delays == [0, 1]  # the backoff sequence advances with each restart
    assert _part(health).errors == {("demo", "unexpected"): 2}


def test_a_stop_while_waiting_to_restart_is_a_cancellation() -> None:
    stop, health = threading.Event(), _health()

    def fail_then_stop() -> None:
        stop.set()
        raise SourceError("argocd", "unauthorized", "401")

    script = _Script(fail_then_stop)
    with capture_logs() as logs:
        _supervise(stop, script, health)
    assert [e["event"] for e in logs] == ["demo.poll_failed", "demo.watch_cancelled"]
    assert _part(health) == PartHealth(
        up=False, attempted=True, last_error="argocd: 401", errors={("demo", "unauthorized"): 1}
    )


def test_a_task_never_started_when_already_stopped_is_cancelled() -> None:
    stop, health = threading.Event(), _health()
    stop.set()
    script = _Script()
    with capture_logs() as logs:
        _supervise(stop, script, health)
    assert script.runs == 0
    assert [e["event"] for e in logs] == ["demo.watch_cancelled"]
