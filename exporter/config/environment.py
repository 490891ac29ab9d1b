# SPDX-License-Identifier: Apache-2.0
"""What the environment adds to the file: secrets (only ever from here) and ``DORA_*`` overrides.

Secrets come from ``DORA_*`` variables or the files ``*_FILE`` variables point to, never from the file, so
the config can be shared and printed. A few non-secret keys can be overridden per deployment without
editing the file (``DORA_LOG_LEVEL=debug``); an override is validated like the key it replaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from exporter.errors import ConfigError
from exporter.settings import SECRET_ENV, SECRET_FILE_ENV, Secrets

__all__ = ["OVERRIDES", "Overrides", "apply_overrides", "secrets"]

# the overridable keys: (section, key) -> the field of ``Overrides`` (DORA_ + its upper case is the variable)
OVERRIDES = {
    ("log", "level"): "log_level",
    ("log", "format"): "log_format",
    ("http", "listen"): "http_listen",
    ("http", "webhook_listen"): "http_webhook_listen",
}


class Overrides(BaseSettings):
    """``DORA_LOG_LEVEL``, ``DORA_LOG_FORMAT``, ``DORA_HTTP_LISTEN``, ``DORA_HTTP_WEBHOOK_LISTEN``."""

    model_config = SettingsConfigDict(env_prefix="DORA_", case_sensitive=False, extra="ignore")

    log_level: str | None = None
    log_format: str | None = None
    http_listen: str | None = None
    http_webhook_listen: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the variables come from ``from_environ``'s mapping, not the process

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Overrides:
        return cls(**_MappingSource(cls, environ)())


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' variable lookup over a given mapping, so tests need not touch ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {k.lower(): v for k, v in environ.items() if v}
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def apply_overrides(raw: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """``raw`` with the ``DORA_*`` overrides in place of the keys they name."""
    found = Overrides.from_environ(environ)
    out = dict(raw)
    for (section, key), field in OVERRIDES.items():
        value = getattr(found, field)
        if value is None:
            continue
        current = out.get(section) or {}
        if isinstance(current, Mapping):
            out[section] = {**current, key: value}
    return out


def _read_secret_file(env: str, environ: Mapping[str, str]) -> str | None:
    path = environ.get(env)
    if not path:
        return None
    try:
        return Path(path).read_text().strip() or None
    except OSError as exc:
        raise ConfigError(env, f"cannot read {path}: {exc.strerror}") from exc


def secrets(environ: Mapping[str, str]) -> Secrets:
    """The secrets: each from its variable, else from the file its ``_FILE`` variable names."""
    values: dict[str, str | None] = {
        name: (environ.get(SECRET_ENV[name]) or None) if name in SECRET_ENV else None
        for name in Secrets.__dataclass_fields__
    }
    for name, env in SECRET_FILE_ENV.items():
        from_file = _read_secret_file(env, environ)
        if from_file is not None:
            values[name] = values.get(name) or from_file
    return Secrets(**values)
