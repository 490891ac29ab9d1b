# SPDX-License-Identifier: Apache-2.0
"""The ``argocd:`` config section: the chart's shape, the optional keys, and errors that name the key."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config import parse, redacted
from exporter.errors import ConfigError
from tests.support.paths import PROJECT_ROOT


def test_chart_shape_is_accepted_with_defaults() -> None:
    cfg = parse({"argocd": {"enabled": True, "namespaces": ["argocd"]}}, environ={})
    a = cfg.argocd
    assert a.enabled and a.namespaces == ("argocd",)
    assert a.mapping.name_templates[0].match("user-service-prod").groupdict() == {
        "service": "user-service",
        "environment": "prod",
    }
    assert a.watch_timeout < a.read_timeout
    assert parse({}, environ={}).argocd.enabled is False


def test_all_optional_keys() -> None:
    cfg = parse(
        {
            "argocd": {
                "namespaces": [],
                "label_selector": "team=shop",
                "kubeconfig": "/k",
                "mapping": {
                    "apps": {"legacy": {"service": "api", "environment": "prod"}},
                    "labels": {"service": "app", "environment": "env"},
                    "name_templates": ["{service}-{environment}", "{service}"],
                    "destination_namespace": "minishop-{environment}",
                },
                "source_repo": "https://git.example.com/gitops.git",
                "image_pattern": r"/(?P<service>[^/:]+):(?P<tag>[^@]+)$",
                "timeouts": {"connect": "1s", "read": "20s", "watch": "10s"},
                "backoff": ["0s", "1s"],
            }
        },
        environ={},
    )
    a = cfg.argocd
    assert a.enabled and a.namespaces == ()
    assert a.mapping.apps == {"legacy": ("api", "prod")}
    assert a.backoff == (0.0, 1.0)
    assert redacted(cfg)["argocd"]["namespaces"] == []


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"namespaces": ["Argo CD"]}, "argocd.namespaces"),
        ({"mapping": {"apps": {"x": {"service": "a"}}}}, "argocd.mapping.apps.x"),
        ({"mapping": {"name_templates": ["{app}"]}}, "argocd.mapping.name_templates"),
        ({"image_pattern": "(?P<service>.*)"}, "argocd.image_pattern"),
        ({"timeouts": {"read": "5s", "watch": "10s"}}, "argocd.timeouts.read"),
        ({"backoff": []}, "argocd.backoff"),
        ({"namespace": ["argocd"]}, "argocd.namespace"),
    ],
)
def test_errors_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse({"argocd": section}, environ={})
    assert err.value.key == key


def test_the_charts_argocd_values_parse() -> None:
    """The argocd section of every shipped values file is a valid daemon config section."""

    import yaml

    root = PROJECT_ROOT
    files = [root / "helm" / "dora-exporter" / "values.yaml", *sorted((root / "examples").glob("values-*.yaml"))]
    files.append(root / "examples" / "argocd" / "values.yaml")
    seen = 0
    for path in files:
        section = (yaml.safe_load(path.read_text()).get("config") or {}).get("argocd")
        if section is None:
            continue
        cfg = parse({"argocd": section}, environ={})
        assert cfg.argocd.enabled == section.get("enabled", True), path
        seen += 1
    assert seen >= 2
