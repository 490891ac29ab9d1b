# SPDX-License-Identifier: Apache-2.0
"""The exception hierarchy: one base class so callers can tell our failures from bugs."""

from collections.abc import Sequence
from enum import StrEnum

__all__ = ["ConfigError", "DoraError", "ErrorKind", "SourceError", "StoreError"]


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


class ErrorKind(StrEnum):
    """Why a source failed: the bounded ``kind`` label of ``dora_exporter_source_errors_total`` and of logs.

    A ``StrEnum`` so that a member is its label: the values are the strings the metrics always carried.
    """

    # shared by several sources
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    NOT_FOUND = "not_found"
    # git (the CLI) and the GitOps reader
    GIT_MISSING = "git_missing"
    GIT_COMMAND = "git_command"
    REPO_MISSING = "repo_missing"
    READER_FAILED = "reader_failed"
    BRANCH_MISSING = "branch_missing"
    NOT_CONFIGURED = "not_configured"
    HOST_KEY = "host_key"  # an SSH remote whose host key is unknown or changed
    # Argo CD (the Kubernetes API)
    CONFIG = "config"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"
    SERVER = "server"
    HTTP = "http"
    # GitHub
    RATE_LIMITED = "rate_limited"
    BUDGET_EXHAUSTED = "budget_exhausted"
    SERVER_ERROR = "server_error"
    AUTH = "auth"
    HTTP_ERROR = "http_error"
    BAD_REQUEST = "bad_request"
    BAD_RESPONSE = "bad_response"
    # failures that are not a source's own: the store, or a bug caught by the daemon's guard
    STORE = "store"
    STORE_FULL = "store_full"  # the store's filesystem is full: more space, not a restart, fixes it
    STORE_CORRUPT = "store_corrupt"  # the store's pages are damaged: restore it or move it aside
    STORE_READONLY = "store_readonly"  # the store (or its directory, or the filesystem) cannot be written
    UNEXPECTED = "unexpected"


class SourceError(DoraError):
    """A source (git, Argo CD, GitHub) failed; ``kind`` is a bounded label for metrics."""

    def __init__(self, source: str, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.kind = kind


class StoreError(DoraError):
    """The embedded store could not be opened, migrated, read or written.

    ``kind`` tells the faults an operator fixes differently apart (a full disk, a corrupt file, a
    read-only one) from the rest (``ErrorKind.STORE``); it is the ``kind`` label of a job's error."""

    def __init__(self, message: str, *, kind: ErrorKind = ErrorKind.STORE) -> None:
        super().__init__(message)
        self.kind = kind
