# SPDX-License-Identifier: Apache-2.0
"""The documentation of the config cannot drift from the model: the README's configuration reference
names every key, and the chart's ``values.schema.json`` holds the model's schema as generated."""

from __future__ import annotations

import importlib.util
import json
import re
import typing
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import yaml
from pydantic import BaseModel

from exporter.config import ConfigModel
from tests.support.paths import PROJECT_ROOT


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (directly, in a list, or optionally), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if (found := _submodel(arg)) is not None:
            return found
    return None


def model_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of the document, dotted; list items add no part (``gitops.manifests.path``)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key
        if (sub := _submodel(field.annotation)) is not None:
            yield from model_keys(sub, f"{key}.")


def document_keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for name, value in node.items():
            key = f"{prefix}{name}"
            yield key
            yield from document_keys(value, f"{key}.")
    elif isinstance(node, list):
        for item in node:
            yield from document_keys(item, prefix)


def reference_keys() -> set[str]:
    """The keys of the YAML examples from "Configuration reference" up to the metric reference."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Configuration reference") : readme.index("## Metric reference")]
    keys: set[str] = set()
    for block in re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL):
        doc = yaml.safe_load(block)
        if isinstance(doc, dict) and "kind" not in doc:  # a Kubernetes object shown beside is not config
            keys.update(document_keys(doc))
    return keys


def test_the_readme_reference_lists_every_key() -> None:
    keys = list(model_keys(ConfigModel))
    assert len(keys) > 60  # the walk reaches into every section
    missing = [k for k in keys if k not in reference_keys()]
    assert not missing, f"README.md's configuration reference lacks {missing}"


def test_the_walk_finds_keys_deep_in_lists() -> None:
    keys = set(model_keys(ConfigModel))
    assert {"gitops.manifests.regex", "github.incidents.services.title_pattern", "argocd.timeouts.watch"} <= keys


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_schema", PROJECT_ROOT / "helm" / "generate_schema.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_charts_config_schema_is_the_generated_one() -> None:
    generator = _generator()
    committed_text = generator.SCHEMA_FILE.read_text()
    committed = json.loads(committed_text)
    assert generator.render(committed) == committed_text, "run: python helm/generate_schema.py"
    config = committed["properties"]["config"]
    assert {"$ref": "#/definitions/config.ConfigModel"} in config["allOf"]
