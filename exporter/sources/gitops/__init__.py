# SPDX-License-Identifier: Apache-2.0
"""GitOps repositories: which image tag each manifest declares, commit by commit."""

from __future__ import annotations

from exporter.sources.gitops.manifests import (
    READ_AHEAD,
    SOURCE,
    CommitValues,
    Extractor,
    PairState,
    new_values,
    read_commits,
    yaml_value,
)

__all__ = [
    "READ_AHEAD",
    "SOURCE",
    "CommitValues",
    "Extractor",
    "PairState",
    "new_values",
    "read_commits",
    "yaml_value",
]
