# SPDX-License-Identifier: Apache-2.0
"""Human durations ("90s", "1h30m", "7d", "2w") to seconds, for config and CLI flags."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str | int | float) -> float:
    """Seconds in ``text``; a bare number is seconds. Raises ``ValueError`` on anything else."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"negative duration: {text!r}")
        return float(text)
    if not isinstance(text, str):  # YAML null, a list or a mapping where a duration belongs
        raise ValueError(f"not a duration: {text!r}")
    s = text.strip()
    if not s:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s):
        try:
            return parse_duration(float(s))
        except ValueError:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 1h30m, 7d, 2w)") from None
    return total


def format_duration(seconds: float) -> str:
    """A compact rendering for tables and logs: 3d4h, 45m, 12s."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        n, rest = divmod(rest, size)
        if n:
            parts.append(f"{n}{unit}")
        if len(parts) == 2:
            break
    return "".join(parts) or "0s"
