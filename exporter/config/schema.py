# SPDX-License-Identifier: Apache-2.0
"""The JSON Schema of the config document, for editors, the Helm chart and ``dora-exporter config-schema``."""

from __future__ import annotations

from typing import Any

from exporter.config.model import ConfigModel

__all__ = ["json_schema"]


def json_schema() -> dict[str, Any]:
    """The schema of ``dora.yaml`` as the model validates it (the rules spanning sections aside)."""
    return ConfigModel.model_json_schema(mode="validation")
