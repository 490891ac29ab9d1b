# SPDX-License-Identifier: Apache-2.0
"""The configuration document as one typed model: one class per section, each default written once.

The model checks what one section can check by itself (types, durations, regexes, orderings); the rules
that span sections (a service named in ``github.incidents`` must exist) are in ``checks``. Unknown keys are
errors, so a typo fails the rollout instead of silently dropping a metric.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from exporter.config.argocd_model import ArgoCDSection
from exporter.config.fields import (
    DURATION_SCHEMA,
    KEEP_NULL,
    Duration,
    KeyedError,
    Listen,
    MultilinePattern,
    OneOf,
    OptionalStr,
    Pattern,
    Section,
    StrList,
    StrMap,
    as_written,
    placeholder_errors,
)
from exporter.config.github_model import GitHubSection
from exporter.config.limits import (
    FAILURE_WINDOW,
    LEVEL_DURATION,
    LEVEL_RATE,
    MANIFEST_BYTES,
    POLL_INTERVAL,
    ROLLBACK_AGE,
    WINDOW,
)
from exporter.config.tls_model import BasicAuthUsers, TlsSection
from exporter.core.durations import parse_duration
from exporter.core.levels import DEFAULT_PRESET, PRESETS, Metric
from exporter.settings import CHANGE_STARTS, DEFAULT_TAG_PATTERN

__all__ = [
    "RESERVED_LABELS",
    "ConfigModel",
    "GitOpsSection",
    "LevelsSection",
    "ManifestSection",
    "ServiceSection",
]

# Label names the exporter's own series use, and those Prometheus attaches to every target: a
# static label may take none of them (DESIGN §3: service and environment plus static labels).
RESERVED_LABELS = frozenset(
    {"service", "environment", "window", "metric", "reason", "phase", "source", "kind", "resource", "le",
     "quantile", "job", "instance"}
)  # fmt: skip
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class StoreSection(Section):
    path: StrictStr = Field(default="./dora.db", description="the SQLite database file, relative to the config file")


class HttpSection(Section):
    listen: Listen = Field(
        default=as_written("127.0.0.1:9478"), description="HOST:PORT of /metrics, the API and the landing page"
    )
    webhook_listen: Listen | None = Field(
        default=None, description="HOST:PORT of a separate webhook listener (optional)"
    )
    tls: TlsSection | None = Field(default=None, description="TLS on the main listener (off by default)")
    basic_auth_users: BasicAuthUsers = Field(
        default_factory=dict,
        description="user names to bcrypt hashes: basic auth on the main listener but /healthz and /readyz",
    )
    webhook_tls: TlsSection | None = Field(default=None, description="TLS on the webhook listener (off by default)")
    webhook_basic_auth_users: BasicAuthUsers = Field(
        default_factory=dict, description="user names to bcrypt hashes: basic auth on the webhook listener"
    )


_LEVELS = OneOf(("debug", "info", "warning", "error"), "must be debug, info, warning or error", fold_case=True)
_PRESET = OneOf((*PRESETS, "custom"), f"must be one of {', '.join([*PRESETS, 'custom'])}")
_CHANGE_START = OneOf(CHANGE_STARTS, f"must be one of {', '.join(CHANGE_STARTS)}")


class LogSection(Section):
    level: Annotated[StrictStr, _LEVELS] = Field(default="info", description="the least severe level logged")
    format: Annotated[StrictStr, OneOf(("auto", "json", "console"), "must be auto, json or console")] = Field(
        default="auto", description="log lines as JSON, for people (console), or JSON unless on a terminal (auto)"
    )


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return LEVEL_RATE.check(float(value))


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not 0 <= value <= 1:
        raise ValueError(f"must be a ratio between 0 and 1 (15 % is 0.15), got {value!r}")
    return float(value)


_Rate = Annotated[
    float, PlainValidator(_number), KEEP_NULL, WithJsonSchema(LEVEL_RATE.bounded({"type": "number", "minimum": 0}))
]
_LevelDuration = Annotated[Duration, LEVEL_DURATION]
_Ratio = Annotated[
    float, PlainValidator(_ratio), KEEP_NULL, WithJsonSchema({"type": "number", "minimum": 0, "maximum": 1})
]


class _Bounds(Section):
    """The worst value still in each level; ``higher_is_better`` decides the order they must be in."""

    def ordered(self, *, higher_is_better: bool) -> bool:
        e, h, m = (getattr(self, level) for level in ("elite", "high", "medium"))
        return bool(e >= h >= m) if higher_is_better else bool(e <= h <= m)

    @model_validator(mode="after")
    def _check_order(self) -> _Bounds:
        if not self.ordered(higher_is_better=isinstance(self, RateBounds)):
            raise ValueError("levels must be ordered elite, high, medium")
        return self


class DurationBounds(_Bounds):
    elite: _LevelDuration = Field(description="the longest duration still elite")
    high: _LevelDuration = Field(description="the longest duration still high")
    medium: _LevelDuration = Field(description=f"the longest duration still medium ({LEVEL_DURATION.note})")


class RateBounds(_Bounds):
    elite: _Rate = Field(description="the fewest deployments per day still elite")
    high: _Rate = Field(description="the fewest deployments per day still high")
    medium: _Rate = Field(description=f"the fewest deployments per day still medium ({LEVEL_RATE.note})")


class RatioBounds(_Bounds):
    elite: _Ratio = Field(description="the highest failure ratio still elite")
    high: _Ratio = Field(description="the highest failure ratio still high")
    medium: _Ratio = Field(description="the highest failure ratio still medium")


class CustomLevels(Section):
    deployment_frequency: RateBounds | None = Field(default=None, description="deployments per day per level")
    lead_time: DurationBounds | None = Field(default=None, description="lead time for changes per level")
    change_failure_rate: RatioBounds | None = Field(default=None, description="change failure ratio per level")
    time_to_restore: DurationBounds | None = Field(default=None, description="time to restore service per level")

    @model_validator(mode="before")
    @classmethod
    def _empty_means_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            return {k: v for k, v in data.items() if not (isinstance(v, Mapping) and not v)}
        return data

    def given(self) -> dict[Metric, _Bounds]:
        """The metrics with custom bounds, in ``Metric`` order."""
        return {m: b for m in Metric if (b := getattr(self, m.value)) is not None}


class LevelsSection(Section):
    preset: Annotated[StrictStr, _PRESET] = Field(
        default=DEFAULT_PRESET, description="the DORA report whose level bounds apply, or custom"
    )
    custom: CustomLevels = Field(
        default_factory=CustomLevels, description="bounds per metric, over the default preset (preset: custom)"
    )

    @model_validator(mode="after")
    def _custom_needs_custom(self) -> LevelsSection:
        given = self.custom.given()
        if given and self.preset != "custom":
            raise KeyedError(f"custom.{next(iter(given)).value}", "custom thresholds need preset: custom")
        return self


class ManifestSection(Section):
    path: StrictStr = Field(description="path template with {service}, {environment} and * within one segment")
    yaml_key: StrictStr | None = Field(default=None, description="dotted YAML key holding the tag, such as image.tag")
    regex: MultilinePattern | None = Field(default=None, description="regex with a (?P<tag>...) group, per line")
    service: OptionalStr = Field(default=None, description="the service, when neither the path nor the regex names it")
    environment: OptionalStr = Field(default=None, description="the environment, when neither path nor regex names it")

    @field_validator("path")
    @classmethod
    def _relative_template(cls, path: str) -> str:
        if not path or path.startswith("/"):
            raise ValueError("must be a relative path template")
        if unknown := placeholder_errors(path):
            raise ValueError(f"unknown placeholder {unknown[0]}")
        return path

    @model_validator(mode="after")
    def _complete(self) -> ManifestSection:
        if (self.yaml_key is None) == (self.regex is None):
            raise KeyedError("yaml_key", "exactly one of yaml_key and regex is required")
        if self.regex is not None and "tag" not in self.regex.groupindex:
            raise KeyedError("regex", "needs a named group (?P<tag>...)")
        groups = set(self.regex.groupindex) if self.regex is not None else set()
        for part, fixed in (("service", self.service), ("environment", self.environment)):
            if f"{{{part}}}" not in self.path and part not in groups and not fixed:
                raise KeyedError("path", f"no way to know the {part}: use {{{part}}}, a regex group or `{part}:`")
        if self.yaml_key is not None and not all(self.yaml_key.split(".")):
            raise KeyedError("yaml_key", "must be a dotted key such as image.tag")
        return self


def _at_least_1s(seconds: float) -> float:
    if seconds < 1:
        raise ValueError("must be at least 1s")
    return seconds


class GitOpsSection(Section):
    repo: StrictStr = Field(description="path or clone URL of the GitOps repository")
    branch: StrictStr = Field(default="main", description="the branch whose history is the deployments")
    poll_interval: Annotated[Duration, AfterValidator(_at_least_1s), POLL_INTERVAL] = Field(
        default=as_written("60s"), description=f"how often to fetch ({POLL_INTERVAL.note})"
    )
    manifests: list[ManifestSection] = Field(default_factory=list, description="where deployed tags are written")
    max_manifest_bytes: Annotated[StrictInt, MANIFEST_BYTES] = Field(
        default=4 * 1024 * 1024,
        description=f"a larger manifest file is skipped unread, counted as manifest_too_large ({MANIFEST_BYTES.note})",
    )

    @field_validator("repo")
    @classmethod
    def _nonempty(cls, repo: str) -> str:
        if not repo:
            raise ValueError("must be a path or clone URL")
        return repo

    @model_validator(mode="after")
    def _has_rules(self) -> GitOpsSection:
        if not self.manifests:
            raise KeyedError("manifests", "needs at least one rule")
        return self


def _labels(raw: Any) -> Any:
    if not isinstance(raw, Mapping):
        raise ValueError("must map label names to values")
    for name, value in raw.items():
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise KeyedError(str(name), "is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)")
        if name in RESERVED_LABELS:
            raise KeyedError(name, "is a label the exporter or Prometheus already sets")
        if not isinstance(value, str):
            raise KeyedError(name, "must be a string (quote numbers and booleans)")
    return dict(sorted(raw.items()))


_LABELS_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$", "not": {"enum": sorted(RESERVED_LABELS)}},
    "additionalProperties": {"type": "string"},
}


class ServiceSection(Section):
    name: StrictStr = Field(description="the service label value")
    repo: OptionalStr = Field(
        default=None,
        description="its source repository: a path, a clone URL or github:owner/name (with paths: the one GitOps repo)",
    )
    paths: Annotated[tuple[str, ...], StrList("must be a list of path prefixes"), KEEP_NULL] = Field(
        default=(), description="path prefixes of the repository that are this service (empty: all of it)"
    )
    tag_pattern: StrictStr = Field(
        default=DEFAULT_TAG_PATTERN,
        description="regex with a (?P<sha>...) group, or a ref template such as refs/tags/{tag}",
    )
    labels: Annotated[dict[str, str], BeforeValidator(_labels), WithJsonSchema(_LABELS_SCHEMA)] = Field(
        default_factory=dict, description="static labels on the service's series, such as team"
    )

    @field_validator("name")
    @classmethod
    def _nonempty(cls, name: str) -> str:
        if not name:
            raise ValueError("must be a non-empty string")
        return name

    @field_validator("tag_pattern")
    @classmethod
    def _sha_or_ref(cls, pattern: str) -> str:
        if "{tag}" in pattern:
            return pattern
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(str(exc)) from exc
        if "sha" not in compiled.groupindex:
            raise ValueError("needs a named group (?P<sha>...) or a {tag} ref template")
        return pattern


class NamesSection(Section):
    normalize: StrictBool = Field(default=True, description="lower-case names seen in manifests and turn _ into -")
    services: Annotated[dict[str, str], StrMap("must map names to names")] = Field(
        default_factory=dict, description="service names as seen (or normalized) to service names"
    )
    environments: Annotated[dict[str, str], StrMap("must map names to names")] = Field(
        default_factory=dict, description="environment names as seen (or normalized) to environment names"
    )


def _window(value: Any) -> tuple[str, float]:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("must be positive")
    return str(value), WINDOW.check(seconds)


def _window_list(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("must be a non-empty list of durations")
    return value


def _unique_labels(windows: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    if len({label for label, _ in windows}) != len(windows):
        raise ValueError("labels must be unique")
    return windows


_WindowItem = Annotated[tuple[str, float], PlainValidator(_window)]
_Windows = Annotated[
    tuple[_WindowItem, ...],
    BeforeValidator(_window_list),
    AfterValidator(_unique_labels),
    KEEP_NULL,
    WithJsonSchema({"type": "array", "minItems": 1, "items": WINDOW.bounded(DURATION_SCHEMA)}),
]


class ConfigModel(Section):
    """The whole ``dora.yaml``. Secrets are not part of it: they come from the environment only."""

    store: StoreSection = Field(default_factory=StoreSection, description="the embedded database")
    data_dir: StrictStr = Field(
        default="", description="working files such as git mirrors (default: the store's folder)"
    )
    http: HttpSection = Field(default_factory=HttpSection, description="the HTTP listeners")
    log: LogSection = Field(default_factory=LogSection, description="logging")
    production_environment: StrictStr = Field(default="prod", description="the environment the DORA metrics are about")
    windows: _Windows = Field(
        default=as_written(("1d", "7d", "30d", "90d")),
        description=f"the rolling windows metrics are computed over ({WINDOW.note})",
    )
    levels: LevelsSection = Field(default_factory=LevelsSection, description="the bounds of the DORA levels")
    failure_window: Annotated[Duration, FAILURE_WINDOW] = Field(
        default=as_written("1h"),
        description=f"how soon after a deployment a failure is blamed on it ({FAILURE_WINDOW.note})",
    )
    rollback_min_age: Annotated[Duration, ROLLBACK_AGE] = Field(
        default=as_written("5m"),
        description=f"how old a replaced version must be to count a rollback ({ROLLBACK_AGE.note})",
    )
    revert_pattern: Pattern = Field(
        default=as_written(r"(?i)^(revert|roll ?back)"), description="commit subjects that are reverts"
    )
    change_start: Annotated[StrictStr, _CHANGE_START] = Field(
        default="commit_time", description="when a change's lead time starts"
    )
    gitops: list[GitOpsSection] = Field(
        default_factory=list, description="GitOps repositories to read deployments from"
    )
    services: list[ServiceSection] = Field(default_factory=list, description="the services and their source repos")
    github: GitHubSection = Field(default_factory=GitHubSection, description="the GitHub source")
    names: NamesSection = Field(default_factory=NamesSection, description="how names in manifests become labels")
    environments: Annotated[tuple[str, ...], StrList("must be a list of environment names"), KEEP_NULL] = Field(
        default=(), description="environments besides production_environment, which is always one"
    )
    argocd: ArgoCDSection | None = Field(default=None, description="the Argo CD source (on once the section is given)")

    @field_validator("argocd", mode="before")
    @classmethod
    def _empty_means_off(cls, value: Any) -> Any:
        return None if isinstance(value, Mapping) and not value else value
