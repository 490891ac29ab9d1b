# SPDX-License-Identifier: Apache-2.0
"""``check-config`` and ``config-schema``: the config as loaded (secrets redacted), and its schema."""

from __future__ import annotations

import json

import yaml

from exporter import config
from exporter.settings import Config

__all__ = ["check_config", "config_schema"]


def check_config(cfg: Config) -> int:
    print(yaml.safe_dump(config.redacted(cfg), sort_keys=False), end="")
    return 0


def config_schema() -> int:
    """The JSON Schema of the config file, from the config model: what the chart's values schema embeds."""
    print(json.dumps(config.json_schema(), indent=2))
    return 0
