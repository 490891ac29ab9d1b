# SPDX-License-Identifier: Apache-2.0
"""The CLI as operators run it: ``python -m exporter.cli`` in a subprocess, on this checkout's ``exporter``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from exporter.demo.generate import generate, write_config
from tests.support.paths import PROJECT_ROOT

__all__ = ["clean_env", "cli", "demo_config", "with_config"]


def clean_env() -> dict[str, str]:
    """The test's environment without ``DORA_*`` overrides, with this checkout importable."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("DORA_")}
    out["PYTHONPATH"] = str(PROJECT_ROOT)
    return out


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``dora-exporter ARGS``; ``env`` adds to (or overrides) the clean environment."""
    return subprocess.run(
        [sys.executable, "-m", "exporter.cli", *args],
        cwd=cwd,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def demo_config(root: Path, *, days: int = 3) -> Path:
    """A small demo repository and its config (on a free port), written by the generator itself."""
    generate(root, days=days)
    return write_config(root, listen="127.0.0.1:0")


def with_config(path: Path, section: str, key: str, value: object) -> Path:
    """``path`` with ``section.key`` set to ``value``, written back in place."""
    raw = yaml.safe_load(path.read_text())
    raw.setdefault(section, {})[key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
