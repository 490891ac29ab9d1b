# SPDX-License-Identifier: Apache-2.0
"""Bounded polling for tests: wait for a condition instead of sleeping a guessed amount."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not become true before the deadline."""


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
    retry_on: tuple[type[Exception], ...] = (OSError,),
) -> T:
    """Call ``condition`` until it returns a truthy value and return that value.

    Exceptions in ``retry_on`` count as "not yet" (a server still starting refuses connections);
    the last one is chained to the ``WaitTimeout`` raised when ``timeout`` seconds have passed. Any
    other exception (an assertion that the process died) propagates at once.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = condition()
        except retry_on as exc:
            last_exc = exc
        else:
            if value:
                return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"{message} not met within {timeout:g}s") from last_exc
        time.sleep(min(interval, remaining))
