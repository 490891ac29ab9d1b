# SPDX-License-Identifier: Apache-2.0
"""Importing the serving side loads no source client library: the Kubernetes client and PyGithub
cost tens of MB each and are loaded only when their source is configured."""

from __future__ import annotations

import subprocess
import sys

from tests.support.paths import PROJECT_ROOT

PROBE = """
import sys
import exporter.serve, exporter.serve.webhooks, exporter.daemon.runtime
print(sorted({m.split(".")[0] for m in sys.modules} & {"kubernetes", "github"}))
"""


def test_serve_and_daemon_import_no_client_library() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
