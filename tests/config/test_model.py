# SPDX-License-Identifier: Apache-2.0
"""The typed model: every mistake of a file reported at once, ``DORA_*`` overrides, and the JSON Schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from exporter.config import ConfigModel, json_schema, parse
from exporter.errors import ConfigError


def test_every_error_is_reported_at_once_each_under_its_key() -> None:
    raw = {
        "failure_window": "1 hour",
        "log": {"level": "verbose"},
        "gitops": [{"repo": "/srv/gitops", "manifests": [{"path": "a/{service}.yaml", "yaml_key": "t"},
                                                          {"path": "b/{service}/{environment}", "regex": "("}]}],
        "servicez": [],
    }  # fmt: skip
    with pytest.raises(ConfigError) as info:
        parse(raw, environ={})
    keys = [key for key, _ in info.value.errors]
    assert keys == [
        "log.level",
        "failure_window",
        "gitops[0].manifests[0].path",
        "gitops[0].manifests[1].regex",
        "servicez",
    ]
    assert info.value.key == "log.level"  # the first, as when one error was reported
    lines = str(info.value).splitlines()
    assert lines[0] == "log.level: must be debug, info, warning or error"
    assert lines[-1] == "servicez: unknown key"
    assert len(lines) == len(keys)


def test_rules_across_sections_are_reported_together() -> None:
    raw = {
        "services": [{"name": "a"}, {"name": "a"}],
        "change_start": "pr_first_commit",
        "github": {"incidents": {"repos": ["o/r"], "services": [{"service": "nope", "label": "x"}]}},
    }
    with pytest.raises(ConfigError) as info:
        parse(raw, environ={})
    assert [key for key, _ in info.value.errors] == [
        "services",
        "github.incidents.services[0].service",
        "change_start",
    ]


def test_a_single_error_keeps_its_one_line_message() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"windows": ["7d", "7d"]}, environ={})
    assert str(info.value) == "windows: labels must be unique"
    assert info.value.errors == (("windows", "labels must be unique"),)


def test_environment_overrides_non_secret_keys() -> None:
    raw: dict[str, Any] = {"log": {"level": "info"}, "http": {"listen": "127.0.0.1:9478"}}
    env = {"DORA_LOG_LEVEL": "DEBUG", "DORA_LOG_FORMAT": "console", "DORA_HTTP_LISTEN": "0.0.0.0:9100",
           "DORA_HTTP_WEBHOOK_LISTEN": ":9101"}  # fmt: skip
    cfg = parse(raw, environ=env)
    assert (cfg.log_level, cfg.log_format) == ("debug", "console")
    assert (cfg.listen, cfg.webhook_listen) == (("0.0.0.0", 9100), ("0.0.0.0", 9101))
    assert raw == {"log": {"level": "info"}, "http": {"listen": "127.0.0.1:9478"}}  # the document is not changed
    assert parse(raw, environ={"DORA_LOG_LEVEL": ""}).log_level == "info"  # empty: not set


def test_an_override_is_checked_like_the_key_it_replaces() -> None:
    with pytest.raises(ConfigError) as info:
        parse({}, environ={"DORA_LOG_LEVEL": "verbose"})
    assert info.value.key == "log.level"


def test_each_default_is_written_once_in_the_model() -> None:
    model = ConfigModel()
    assert model.failure_window == 3600.0 and model.http.listen == ("127.0.0.1", 9478)
    assert model.github.deployments.backfill == 30 * 86400.0
    assert model.argocd is None  # no section: the source is off


def test_the_json_schema_accepts_the_examples_and_refuses_typos() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["failure_window"]["default"] == "1h"
    assert props["failure_window"]["description"]
    validator = jsonschema.Draft202012Validator(schema)
    good = {
        "windows": ["1d", "7d"],
        "gitops": [{"repo": "/r", "manifests": [{"path": "a/{service}", "yaml_key": "t"}]}],
    }
    assert not list(validator.iter_errors(good))
    assert list(validator.iter_errors({"gitop": []}))
    assert list(validator.iter_errors({"failure_window": "one hour"}))
    assert list(validator.iter_errors({"log": {"level": "verbose"}}))
    assert not list(validator.iter_errors({"log": {"level": "INFO"}}))
