# SPDX-License-Identifier: Apache-2.0
"""The log on stderr: one JSON object per line in json mode, library lines included, values bounded."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.cli import clean_env

_SCRIPT = """
import logging, structlog
from exporter.cli import logs
logs.configure("info", "json")
structlog.get_logger("t").info("t.tagged", tag="v" * 100_000, short="kept")
logging.getLogger("urllib3.connectionpool").warning("Retrying (%s) after connection broken", "Retry(total=2)")
logging.getLogger("apscheduler.scheduler").info("below the libraries' floor")
"""


def _lines() -> list[dict[str, object]]:
    p = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=clean_env(), capture_output=True, text=True, timeout=60, check=True
    )
    return [json.loads(line) for line in p.stderr.splitlines()]  # fails on any line that is not JSON


def test_a_long_value_is_cut_with_a_marker() -> None:
    (tagged,) = (e for e in _lines() if e["event"] == "t.tagged")
    tag = str(tagged["tag"])
    assert len(tag) < 1_100
    assert tag.startswith("v" * 1_000) and tag.endswith("[99000 chars dropped]"), tag[-60:]
    assert tagged["short"] == "kept"


def test_a_library_line_is_one_json_object() -> None:
    lines = _lines()
    (retry,) = (e for e in lines if e.get("logger") == "urllib3.connectionpool")
    assert retry["event"] == "Retrying (Retry(total=2)) after connection broken"
    assert retry["level"] == "warning" and "timestamp" in retry
    assert not any(e.get("logger") == "apscheduler.scheduler" for e in lines)
