# SPDX-License-Identifier: Apache-2.0
"""The composition root: wires sources, ingest, store and serve, runs the jobs and supervises them.

``wiring`` builds the parts from a config, ``jobs`` schedules the ``passes``, ``supervision`` guards
every job run and watch thread, ``publisher`` republishes the snapshot, ``lifecycle`` runs and stops
it all; ``Daemon`` is one handle on them.
"""

from __future__ import annotations

from exporter.daemon.lifecycle import STOP_BUDGET_SECONDS
from exporter.daemon.publisher import known_pairs
from exporter.daemon.runtime import Daemon
from exporter.daemon.wiring import Components, build, github_settings

__all__ = ["STOP_BUDGET_SECONDS", "Components", "Daemon", "build", "github_settings", "known_pairs"]
