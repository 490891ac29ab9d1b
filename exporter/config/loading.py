# SPDX-License-Identifier: Apache-2.0
"""One validated configuration: a YAML file plus the environment, as ``exporter.settings`` values.

Validation is complete at start-up and reports every mistake at once, each under the dotted key that is
wrong, so a typo fails the rollout (exit 2) instead of silently dropping a metric. Secrets never come
from the file: only from ``DORA_*`` environment variables (or files they point to).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from exporter.config.checks import cross_checks
from exporter.config.convert import to_settings
from exporter.config.environment import apply_overrides, secrets
from exporter.config.issues import issues
from exporter.config.model import ConfigModel
from exporter.errors import ConfigError
from exporter.settings import Config

__all__ = ["load", "parse", "resolve_path"]


def _fail(found: list[tuple[str, str]]) -> ConfigError:
    (key, message), *more = found
    return ConfigError(key, message, more=more)


def parse(raw: Any, environ: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Config:
    """Validate raw YAML data into a ``Config``; relative paths resolve against ``base_dir``."""
    environ = os.environ if environ is None else environ
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("<root>", "the config file must hold a mapping")
    try:
        model = ConfigModel.model_validate(apply_overrides(raw, environ))
    except ValidationError as exc:
        raise _fail(issues(exc)) from None
    found = secrets(environ)
    if problems := cross_checks(model, found):
        raise _fail(problems)
    return to_settings(model, secrets=found, base_dir=base_dir or Path.cwd())


def resolve_path(cli_value: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$DORA_EXPORTER_CONFIG``, else ``./dora.yaml``."""
    environ = os.environ if environ is None else environ
    return Path(cli_value or environ.get("DORA_EXPORTER_CONFIG") or "dora.yaml")


def load(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; relative paths inside it resolve against its directory."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("<root>", f"{path} is not valid YAML: {exc}") from exc
    cfg = parse(raw, environ, path.resolve().parent)
    return Config(**{**cfg.__dict__, "source_path": path})
