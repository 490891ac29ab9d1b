# SPDX-License-Identifier: Apache-2.0
"""The project's licence: the Apache License 2.0 text, declared the same way everywhere, and the header
convention of the source files.

Convention: the first line of every Python file under ``exporter/``, ``tests/``, ``bench/``, ``dashboards/``
and ``helm/`` is ``# SPDX-License-Identifier: Apache-2.0`` (after a ``#!`` line if the file has one). The
one exception is ``exporter/_version.py``, which setuptools-scm writes at build time from the template in
``pyproject.toml`` (that template carries the line too, but the file is not tracked).
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

import yaml

from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
HEADER = "# SPDX-License-Identifier: Apache-2.0"
SOURCE_DIRS = ("exporter", "tests", "bench", "dashboards", "helm")
SKIP_DIRS = {"__pycache__", ".venv", "build", "dist", ".git"}
GENERATED = {ROOT / "exporter" / "_version.py"}
# SHA-256 of the Apache License 2.0 as the ASF publishes it (LICENSE-2.0.txt, 11358 bytes).
APACHE_2_0_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def python_sources() -> list[Path]:
    out = []
    for top in SOURCE_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if SKIP_DIRS.isdisjoint(path.relative_to(ROOT).parts) and path not in GENERATED:
                out.append(path)
    return out


def test_license_file_is_the_apache_2_0_text() -> None:
    data = (ROOT / "LICENSE").read_bytes()
    assert len(data) == 11358
    assert hashlib.sha256(data).hexdigest() == APACHE_2_0_SHA256, "LICENSE differs from the official text"


def test_licence_is_declared_the_same_everywhere() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "Apache-2.0"
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in (ROOT / "Dockerfile").read_text()
    chart = yaml.safe_load((ROOT / "helm" / "dora-exporter" / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    assert "!LICENSE" in (ROOT / ".dockerignore").read_text().splitlines()


def test_every_python_file_starts_with_the_spdx_header() -> None:
    sources = python_sources()
    assert len(sources) > 100, "the walk found too few files: wrong root?"
    missing = []
    for path in sources:
        lines = path.read_text().splitlines()
        if lines and lines[0].startswith("#!"):
            lines = lines[1:]
        if not lines or lines[0] != HEADER:
            missing.append(str(path.relative_to(ROOT)))
    assert not missing, f"first line is not {HEADER!r} in: {missing}"


def test_version_file_template_carries_the_header() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    template = pyproject["tool"]["setuptools_scm"]["version_file_template"]
    assert template.startswith(HEADER + "\n")
