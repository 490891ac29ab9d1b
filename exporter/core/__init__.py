# SPDX-License-Identifier: Apache-2.0
"""Pure computation: correlation, DORA metrics over a window, levels, the snapshot. No I/O, no clock."""

# The core is a set of modules, each imported by name (``from exporter.core import snapshot``).
__all__ = ["correlate", "dora", "durations", "levels", "snapshot"]
