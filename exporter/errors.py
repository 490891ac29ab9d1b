"""The exception hierarchy: one base class so callers can tell our failures from bugs."""


class DoraError(Exception):
    """Base of every error the exporter raises on purpose."""


class ConfigError(DoraError):
    """The configuration is invalid; ``key`` names the offending dotted key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
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
