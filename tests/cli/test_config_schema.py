# SPDX-License-Identifier: Apache-2.0
"""``dora-exporter config-schema`` prints the config model's JSON Schema, the one the chart embeds."""

from __future__ import annotations

import json
import subprocess
import sys

from exporter import config
from tests.support.paths import PROJECT_ROOT


def test_config_schema_prints_the_models_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "config-schema"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == config.json_schema()
    assert {"gitops", "services", "argocd", "github"} <= set(printed["properties"])
    assert printed["additionalProperties"] is False  # a misspelt top-level key is an error
