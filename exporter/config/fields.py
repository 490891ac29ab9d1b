# SPDX-License-Identifier: Apache-2.0
"""The value types the config model is built from: durations, regexes, addresses, names, and the section base.

Each type validates and converts in one place (``"90s"`` to seconds, a regex string to a compiled pattern)
and carries the JSON Schema fragment that describes it, so the model and its schema cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    StrictStr,
    WithJsonSchema,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from exporter.core.durations import parse_duration

__all__ = [
    "DURATION_SCHEMA",
    "KEEP_NULL",
    "Duration",
    "KeyedError",
    "Limit",
    "Listen",
    "MultilinePattern",
    "OneOf",
    "OptionalStr",
    "Pattern",
    "PositiveDuration",
    "Section",
    "StrList",
    "StrMap",
    "as_written",
    "placeholder_errors",
]


class KeyedError(ValueError):
    """A validation failure that belongs to a key below the one being validated (``label``, ``[1]``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class _KeepNull:
    """Marks a field whose ``null`` is validated (and rejected) instead of meaning "use the default"."""


KEEP_NULL = _KeepNull()


def _keeps_null(field: FieldInfo) -> bool:
    return any(isinstance(m, _KeepNull) for m in field.metadata)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen once validated.

    An empty YAML value (``branch:``) means the default, as it always has, except for the fields
    marked ``KEEP_NULL`` (durations, regexes, lists that must be given as lists)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        return {k: v for k, v in data.items() if v is not None or k not in fields or _keeps_null(fields[k])}


def as_written(value: object) -> Any:
    """A default in its YAML form (``"60s"``), validated into the field's type like any input."""
    return value


def _duration(value: Any) -> float:
    return parse_duration(value)


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be positive")
    return value


DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+|[0-9]+(\.[0-9]+)?)\s*$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "a duration such as 90s, 15m, 1h30m, 7d or 2w; a bare number is seconds",
}
Duration = Annotated[float, BeforeValidator(_duration), KEEP_NULL, WithJsonSchema(DURATION_SCHEMA)]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


@dataclass(frozen=True)
class Limit:
    """Annotation: the largest value a duration or a number may take, and why.

    Without one, a value such as ``windows: [1000000d]`` passes ``check-config`` and then every start
    dies on an ``OverflowError`` (a date before year 1, a timer too long for the OS). Each bound is
    written once, in the model, as one of these: ``note`` goes into the field's description and the
    error names the bound and its reason. ``most`` is as written (``"3650d"``, or a number); ``least``
    an optional lower bound for counts. NaN and infinities are refused too: they compare false.
    """

    most: str | int
    why: str
    least: int | None = None
    shown: str = ""  # how ``most`` reads in messages, when not as written (``32 MiB``)

    @property
    def maximum(self) -> float:
        return parse_duration(self.most) if isinstance(self.most, str) else float(self.most)

    @property
    def note(self) -> str:
        """``at most 3650d: why``, for the field's description."""
        return f"at most {self.shown or self.most}: {self.why}"

    def check(self, value: float) -> float:
        if self.least is not None and not value >= self.least:
            raise ValueError(f"must be at least {self.least}, got {value!r}")
        if not value <= self.maximum:  # also false for NaN
            raise ValueError(f"must be at most {self.shown or self.most} ({self.why})")
        return value

    def bounded(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` (a number, or a duration's string-or-number) with this bound on its numbers."""
        if schema.get("type") in ("number", "integer"):
            extra: dict[str, Any] = {"maximum": self.maximum}
            if self.least is not None:
                extra["minimum"] = self.least
            return {**schema, **extra}
        if "anyOf" in schema:
            return {**schema, "anyOf": [self.bounded(b) for b in schema["anyOf"]]}
        return schema

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return self.bounded(handler(schema))


def _compile(value: Any, *, flags: int = 0) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise ValueError("must be a regular expression string")
    try:
        return re.compile(value, flags)
    except re.error as exc:
        raise ValueError(str(exc)) from exc


_REGEX_SCHEMA = {"type": "string", "description": "a regular expression (Python syntax)"}
Pattern = Annotated[re.Pattern[str], PlainValidator(_compile), KEEP_NULL, WithJsonSchema(_REGEX_SCHEMA)]
MultilinePattern = Annotated[
    re.Pattern[str], PlainValidator(lambda v: _compile(v, flags=re.MULTILINE)), WithJsonSchema(_REGEX_SCHEMA)
]


def _listen(value: Any) -> tuple[str, int]:
    if not isinstance(value, str) or ":" not in value:
        raise ValueError(f"must be HOST:PORT, got {value!r}")
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"bad port in {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all interfaces


Listen = Annotated[
    tuple[str, int],
    PlainValidator(_listen),
    KEEP_NULL,
    WithJsonSchema({"type": "string", "pattern": r"^.*:[0-9]{1,5}$", "description": "HOST:PORT"}),
]
OptionalStr = Annotated[StrictStr | None, AfterValidator(lambda v: v or None)]  # "" is unset, too


@dataclass(frozen=True)
class OneOf:
    """Annotation: a string that must be one of ``values`` (compared lower-cased when ``fold_case``)."""

    values: tuple[str, ...]
    message: str
    fold_case: bool = False

    def _check(self, value: str) -> str:
        value = value.lower() if self.fold_case else value
        if value not in self.values:
            raise ValueError(self.message)
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        if not self.fold_case:
            return {"enum": list(self.values)}
        # JSON Schema regexes take no flags: spell each letter in both cases
        either = "|".join(
            "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in v) for v in self.values
        )
        return {"type": "string", "pattern": f"^({either})$"}


@dataclass(frozen=True)
class StrList:
    """Annotation: a list of strings (each matching ``pattern``); anything else is one error for the list."""

    message: str
    pattern: str | None = None
    nonempty: bool = False

    def _ok(self, v: object) -> bool:
        if not isinstance(v, str) or (self.nonempty and not v):
            return False
        return self.pattern is None or re.match(self.pattern, v) is not None

    def _check(self, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not all(self._ok(v) for v in value):
            raise ValueError(self.message)
        return tuple(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        item: dict[str, Any] = {"type": "string"}
        if self.pattern is not None:
            item["pattern"] = self.pattern
        if self.nonempty:
            item["minLength"] = 1
        return {"type": "array", "items": item}


@dataclass(frozen=True)
class StrMap:
    """Annotation: a mapping of strings to strings; anything else is one error for the mapping."""

    message: str
    nonempty_values: bool = False

    def _check(self, value: Any) -> Any:
        ok = isinstance(value, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) and (v or not self.nonempty_values) for k, v in value.items()
        )
        if not ok:
            raise ValueError(self.message)
        return dict(value)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        value: dict[str, Any] = {"type": "string", "minLength": 1} if self.nonempty_values else {"type": "string"}
        return {"type": "object", "additionalProperties": value}


def placeholder_errors(template: str) -> list[str]:
    """The ``{...}`` placeholders of a template other than ``{service}`` and ``{environment}``."""
    return re.findall(r"\{(?!service\}|environment\})[^}]*\}", template)
