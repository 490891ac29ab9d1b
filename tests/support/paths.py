# SPDX-License-Identifier: Apache-2.0
"""Where the project's files are, for tests in any folder depth."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = PROJECT_ROOT / "tests" / "data"
