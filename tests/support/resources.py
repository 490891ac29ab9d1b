# SPDX-License-Identifier: Apache-2.0
"""Resource measurements for the hardening tests: what a process holds, not how long it took."""

from __future__ import annotations

import os

__all__ = ["FD_SLACK", "open_fds"]

# a few descriptors come and go on their own (a log file rotated, a pooled reader opened on first
# use, the interpreter's own); a leak is one or more per request, thousands over a test
FD_SLACK = 8


def open_fds() -> int:
    """File descriptors this process holds now."""
    return len(os.listdir("/proc/self/fd"))
