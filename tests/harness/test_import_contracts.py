# SPDX-License-Identifier: Apache-2.0
"""The import contracts in ``.importlinter`` hold on the package, and each kind of contract can fail.

Why the planted violations: a contract that cannot fail is no contract. Each case copies the
package into a temporary tree, adds one import the architecture forbids, and expects
``lint-imports`` to name the broken contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / ".importlinter"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_package_keeps_every_contract() -> None:
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        pytest.param("exporter/core/dora.py", "import exporter.store\n", "Layers", id="core-imports-store"),
        pytest.param(
            "exporter/sources/github/__init__.py",
            "import exporter.sources.argocd\n",
            "Source packages do not import each other",
            id="source-imports-source",
        ),
        pytest.param(
            "exporter/ingest/argocd.py",
            "import kubernetes\n",
            "The Kubernetes client lives in the Argo CD source only",
            id="kubernetes-outside-argocd",
        ),
        pytest.param(
            "exporter/serve/http.py", "import sqlite3\n", "SQLite is known to the store only", id="sqlite-outside-store"
        ),
        pytest.param(
            "exporter/core/snapshot.py",
            "import time\n",
            "The core is pure",
            id="clock-in-core",
        ),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, planted: str, contract: str) -> None:
    shutil.copytree(PROJECT_ROOT / "exporter", tmp_path / "exporter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / module
    text = target.read_text()
    # after the module docstring and `from __future__` line, where an import is legal
    head, sep, rest = text.partition("from __future__ import annotations\n")
    target.write_text(head + sep + planted + rest if sep else planted + text)
    result = lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(line.startswith(contract) for line in broken), result.stdout
