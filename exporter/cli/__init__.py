# SPDX-License-Identifier: Apache-2.0
"""The command line: the way in for operators (run, ingest, report, explain, check-config, demo)."""

from __future__ import annotations

from exporter.cli.main import main

__all__ = ["main"]
