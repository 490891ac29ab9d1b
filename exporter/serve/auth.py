# SPDX-License-Identifier: Apache-2.0
"""Basic authentication against bcrypt hashes, as the Prometheus exporter-toolkit does it.

bcrypt is slow on purpose (a cost of 10 is about 50-100 ms of CPU), and Prometheus sends the same
credentials every scrape: a successful check is remembered for ``CACHE_SECONDS``, keyed on a
SHA-256 of the user, password and stored hash (so the password itself is never kept, and changing
a hash in the config invalidates the entry). Failures are never cached. An unknown user is checked
against a fixed hash all the same, so the time taken does not tell which user names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import bcrypt

__all__ = ["CACHE_SECONDS", "BasicAuth"]

CACHE_SECONDS = 60.0
_CACHE_ENTRIES = 256
# a valid hash of a password nobody knows: an unknown user costs the same bcrypt check
_DUMMY = b"$2b$10$" + b"." * 53


class BasicAuth:
    """The users (name to bcrypt hash) of one listener; ``check`` takes an ``Authorization`` value."""

    def __init__(self, users: Iterable[tuple[str, str]], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.users = {name: hashed.encode() for name, hashed in users}
        self.verifications = 0  # bcrypt checks run (cache misses), for tests and curiosity
        self._clock = clock
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> bool:
        parsed = _credentials(authorization)
        if parsed is None:
            return False
        user, password = parsed
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join([user.encode(), password, hashed or b""])).digest()
        now = self._clock()
        with self._lock:
            expiry = self._cache.get(key)
            if expiry is not None and expiry > now:
                return True  # only successes are cached
        self.verifications += 1
        try:
            ok = bcrypt.checkpw(password, hashed or _DUMMY) and hashed is not None
        except ValueError:  # a malformed stored hash: the config check should have refused it
            ok = False
        if ok:
            with self._lock:
                self._cache[key] = now + CACHE_SECONDS
                self._cache.move_to_end(key)
                while len(self._cache) > _CACHE_ENTRIES:
                    self._cache.popitem(last=False)
        return ok


def _credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """(user, password) of ``Basic base64(user:password)``, or None."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", errors="replace"), password
