"""Pure computation: correlation, DORA metrics over a window, levels, the snapshot. No I/O, no clock."""
