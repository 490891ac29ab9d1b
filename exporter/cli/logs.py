# SPDX-License-Identifier: Apache-2.0
"""structlog setup: JSON lines when not on a TTY (what log shippers want), readable text on one.

Every line on stderr goes through the same renderer: the exporter's own events, and the standard
``logging`` records of its libraries (urllib3, kubernetes, PyGithub, apscheduler), which would
otherwise be plain text lines inside a JSON log. Long string values are cut: a value read from
outside (a 100 kB tag, a response body) must not turn one event into a 100 kB line.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["MAX_VALUE_CHARS", "configure", "truncate_values"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
MAX_VALUE_CHARS = 1000
_NESTED_DEPTH = 3  # values inside lists and mappings are cut too, this deep


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Route structlog and stdlib logging to stderr: ours at ``level``, libraries' at warning or above."""
    json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Processor = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    exc: Processor = structlog.processors.format_exc_info if json else structlog.dev.set_exc_info
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        truncate_values,  # before the stack and the traceback are rendered: those are kept whole
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, *shared, exc, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, exc, renderer],
        )
    )
    logging.basicConfig(level=max(_LEVELS[level], logging.WARNING), handlers=[handler], force=True)


def truncate_values(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Cut every string value longer than ``MAX_VALUE_CHARS``, saying how much was dropped."""
    for key, value in event_dict.items():
        event_dict[key] = _cut(value, _NESTED_DEPTH)
    return event_dict


def _cut(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= MAX_VALUE_CHARS:
            return value
        return f"{value[:MAX_VALUE_CHARS]}...[{len(value) - MAX_VALUE_CHARS} chars dropped]"
    if depth <= 0:
        return value
    if isinstance(value, list | tuple):
        return [_cut(v, depth - 1) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v, depth - 1) for k, v in value.items()}
    return value
