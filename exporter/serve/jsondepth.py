# SPDX-License-Identifier: Apache-2.0
"""How deep a JSON document nests, found without parsing it.

The standard parser recurses once per level and raises ``RecursionError`` somewhere near a
thousand; a handler would drop the connection. Counting brackets outside strings first lets the
listener answer 400 with a reason instead.
"""

from __future__ import annotations

import re

__all__ = ["nested_deeper_than"]

# a whole string (so brackets inside it are skipped), or one bracket
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """True when arrays and objects in ``body`` nest more than ``limit`` levels.

    An invalid document may be misjudged either way; the parser refuses it afterwards."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # cannot nest deeper than it has openings
    depth = 0
    for match in _TOKENS.finditer(body):
        char = body[match.start()]
        if char in _OPEN:
            depth += 1
            if depth > limit:
                return True
        elif char != 0x22:  # a closing bracket; 0x22 is a string, skipped whole
            depth -= 1
    return False
