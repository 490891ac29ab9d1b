# SPDX-License-Identifier: Apache-2.0
"""``check-config`` and ``config-schema``: the config as loaded (secrets redacted), and its schema.

``check-config`` also says, one line on stderr each, which services will count no change (and so have
no lead time) and why; that is a warning, not an error (exit 0).
"""

from __future__ import annotations

import json
import sys

import yaml

from exporter import config
from exporter.config.coverage import services_without_changes
from exporter.settings import Config

__all__ = ["check_config", "config_schema"]


def check_config(cfg: Config) -> int:
    for service, why in services_without_changes(cfg):
        print(
            f"dora-exporter: warning: service {service} will have no changes and no lead time: {why}", file=sys.stderr
        )
    print(yaml.safe_dump(config.redacted(cfg), sort_keys=False), end="")
    return 0


def config_schema() -> int:
    """The JSON Schema of the config file, from the config model: what the chart's values schema embeds."""
    print(json.dumps(config.json_schema(), indent=2))
    return 0
