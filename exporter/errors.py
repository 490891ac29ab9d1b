"""The exception hierarchy: one base class so callers can tell our failures from bugs."""

from collections.abc import Sequence


class DoraError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(DoraError):
    """The configuration is invalid; ``key`` names the (first) offending dotted key.

    ``errors`` holds every (key, message) found, so one run reports all the mistakes of a file; the
    message is one ``key: message`` line per error."""

    def __init__(self, key: str, message: str, *, more: Sequence[tuple[str, str]] = ()) -> None:
        self.errors = ((key, message), *more)
        super().__init__("\n".join(f"{k}: {m}" for k, m in self.errors))
        self.key = key
        self.message = message


class SourceError(DoraError):
    """A source (git, Argo CD, GitHub) failed; ``kind`` is a bounded label for metrics."""

    def __init__(self, source: str, kind: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.kind = kind


class StoreError(DoraError):
    """The embedded store could not be opened, migrated or written."""
