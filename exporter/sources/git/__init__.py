# SPDX-License-Identifier: Apache-2.0
"""Git, read through the git CLI: the one place that runs `git` (plumbing, batch readers, the commit graph)."""

from __future__ import annotations

from exporter.sources.git.commitgraph import (
    ChangeLister,
    CommitGraph,
)
from exporter.sources.git.repository import (
    STREAM_CHUNK,
    Git,
    Oversized,
    fetch,
    open_repo,
)

__all__ = [
    "STREAM_CHUNK",
    "ChangeLister",
    "CommitGraph",
    "Git",
    "Oversized",
    "fetch",
    "open_repo",
]
