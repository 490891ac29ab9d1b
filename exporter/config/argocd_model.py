# SPDX-License-Identifier: Apache-2.0
"""The ``argocd:`` section of the config model: which Applications to watch and how to read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictBool,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from exporter.config.fields import (
    DURATION_SCHEMA,
    KEEP_NULL,
    Duration,
    KeyedError,
    OptionalStr,
    Pattern,
    Section,
    StrList,
    as_written,
    placeholder_errors,
)
from exporter.config.limits import BACKOFF, TIMEOUT
from exporter.core.durations import parse_duration

__all__ = ["AppMappingSection", "ArgoCDSection"]

_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_APP_TARGET = "must be {service: NAME, environment: NAME}"


def _apps(raw: Any) -> dict[str, tuple[str, str]]:
    if not isinstance(raw, Mapping):
        raise ValueError("must map app names to {service, environment}")
    apps: dict[str, tuple[str, str]] = {}
    for name, target in raw.items():
        if not (
            isinstance(target, Mapping)
            and set(target) == {"service", "environment"}
            and all(isinstance(v, str) and v for v in target.values())
        ):
            raise KeyedError(str(name), _APP_TARGET)
        apps[str(name)] = (target["service"], target["environment"])
    return apps


_APPS_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "required": ["service", "environment"],
        "additionalProperties": False,
        "properties": {
            "service": {"type": "string", "minLength": 1},
            "environment": {"type": "string", "minLength": 1},
        },
    },
}


class LabelsSection(Section):
    service: OptionalStr = Field(default=None, description="the Application label holding the service")
    environment: OptionalStr = Field(default=None, description="the Application label holding the environment")


def _templates(raw: Any) -> Any:
    return [] if raw is None else raw  # an empty name_templates: switches the default off


def _known_placeholders(templates: tuple[str, ...]) -> tuple[str, ...]:
    for t in templates:
        if placeholder_errors(t):
            raise ValueError(f"unknown placeholder in {t!r}")
    return templates


class AppMappingSection(Section):
    apps: Annotated[dict[str, tuple[str, str]], BeforeValidator(_apps), WithJsonSchema(_APPS_SCHEMA)] = Field(
        default_factory=dict, description="Application name to {service, environment}, first"
    )
    labels: LabelsSection = Field(default_factory=LabelsSection, description="Application labels, second")
    name_templates: Annotated[
        tuple[str, ...],
        StrList("must be a list of templates such as {service}-{environment}", nonempty=True),
        BeforeValidator(_templates),  # runs before StrList: the later a before-validator, the earlier it runs
        AfterValidator(_known_placeholders),
        KEEP_NULL,
    ] = Field(default=("{service}-{environment}",), description="Application name templates, third")
    destination_namespace: OptionalStr = Field(
        default=None, description="a template of the destination namespace, last"
    )

    @field_validator("destination_namespace")
    @classmethod
    def _has_placeholder(cls, value: str | None) -> str | None:
        if value is not None and "{" not in value:
            raise ValueError("needs {service} and/or {environment}")
        return value


_Timeout = Annotated[Duration, TIMEOUT]


class TimeoutsSection(Section):
    connect: _Timeout = Field(default=as_written("10s"), description="the connect timeout of API requests")
    read: _Timeout = Field(default=as_written("90s"), description="the read timeout, longer than watch")
    watch: _Timeout = Field(
        default=as_written("60s"),
        description=f"how long the server keeps a quiet watch open (each timeout {TIMEOUT.note})",
    )

    @model_validator(mode="after")
    def _watch_ends_first(self) -> TimeoutsSection:
        if not 0 < self.watch < self.read:
            raise KeyedError("read", "must be longer than timeouts.watch (the server ends a quiet watch first)")
        return self


def _backoff(raw: Any) -> tuple[float, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ValueError("must be a non-empty list of durations")
    waits = []
    for i, b in enumerate(raw):
        try:
            waits.append(BACKOFF.check(parse_duration(b)))
        except ValueError as exc:
            raise KeyedError(f"[{i}]", str(exc)) from None
    return tuple(waits)


_Backoff = Annotated[
    tuple[float, ...],
    BeforeValidator(_backoff),
    KEEP_NULL,
    WithJsonSchema({"type": "array", "minItems": 1, "items": BACKOFF.bounded(DURATION_SCHEMA)}),
]


class ArgoCDSection(Section):
    enabled: StrictBool = Field(default=True, description="watch Argo CD Applications (on once the section is given)")
    namespaces: Annotated[
        tuple[str, ...], StrList("must be a list of namespace names ([] watches all namespaces)", pattern=_K8S_NAME)
    ] = Field(default=("argocd",), description="namespaces of the Applications ([]: all namespaces)")
    label_selector: OptionalStr = Field(default=None, description="a label selector the Applications must match")
    kubeconfig: OptionalStr = Field(
        default=None, description="a kubeconfig file (default: in-cluster, then ~/.kube/config)"
    )
    context: OptionalStr = Field(default=None, description="the kubeconfig context")
    mapping: AppMappingSection = Field(
        default_factory=AppMappingSection, description="how an Application becomes a service and environment"
    )
    source_repo: OptionalStr = Field(default=None, description="the repository whose revisions the Applications deploy")
    image_pattern: Pattern | None = Field(default=None, description="a regex with (?P<tag>...) read from the images")
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection, description="the API client's timeouts")
    backoff: _Backoff = Field(
        default=as_written(("0.5s", "1s", "2s", "5s", "10s", "30s")),
        description=f"the waits between reconnects, the last one repeated (each {BACKOFF.note})",
    )

    @field_validator("image_pattern")
    @classmethod
    def _has_tag(cls, pattern: Any) -> Any:
        if pattern is not None and "tag" not in pattern.groupindex:
            raise ValueError("needs a named group (?P<tag>...) (and optionally (?P<service>...))")
        return pattern
