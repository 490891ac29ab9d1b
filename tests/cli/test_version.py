# SPDX-License-Identifier: Apache-2.0
"""``dora-exporter --version``: the version setuptools-scm derived from the git tag, the commit and Python, on
one line whatever the terminal's width."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

from exporter import __revision__, __version__
from tests.support.paths import PROJECT_ROOT


def test_version_line_names_version_revision_and_python() -> None:
    env = {**os.environ, "COLUMNS": "20", "PYTHONPATH": str(PROJECT_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", "from exporter.cli import main; main(['--version'])"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"dora-exporter {__version__} (revision {__revision__}, Python {platform.python_version()})\n"
    )
