# SPDX-License-Identifier: Apache-2.0
"""The configuration: one typed model loaded from YAML and the environment, and its redaction."""

from __future__ import annotations

from exporter.config.loading import load, parse, resolve_path
from exporter.config.model import ConfigModel
from exporter.config.redaction import redacted
from exporter.config.schema import json_schema
from exporter.settings import Config  # the type `load` returns, for the CLI

__all__ = ["Config", "ConfigModel", "json_schema", "load", "parse", "redacted", "resolve_path"]
