# SPDX-License-Identifier: Apache-2.0
"""A counted capacity taken without waiting: connection slots of a listener, body bytes of the
webhook listener. Refusing at once (instead of queueing) is what keeps a flood from holding threads."""

from __future__ import annotations

import threading

__all__ = ["Budget"]


class Budget:
    """``capacity`` units; ``take`` succeeds only while they last, ``give_back`` returns them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._used = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        return self._used

    def take(self, units: int = 1) -> bool:
        with self._lock:
            if self._used + units > self.capacity:
                return False
            self._used += units
            return True

    def give_back(self, units: int = 1) -> None:
        with self._lock:
            self._used -= units
