"""``check-config`` and ``config-schema``: the config as loaded (secrets redacted), and its schema."""

from __future__ import annotations

import importlib
import json

import yaml

from exporter.settings import Config

__all__ = ["check_config", "config_schema"]


def check_config(cfg: Config) -> int:
    print(yaml.safe_dump(cfg.redacted(), sort_keys=False), end="")
    return 0


def config_schema() -> int:
    """The JSON Schema of the config file, from the config model (imported only for this command)."""
    schema = importlib.import_module("exporter.config.schema")
    print(json.dumps(schema.json_schema(), indent=2))
    return 0
