# SPDX-License-Identifier: Apache-2.0
"""Services the configuration gives no changes: no lead time and no changes counted, ever.

A config can be valid and still measure nothing for a service: without a repository there is nothing
to list changes from. That is said loudly (a warning at start, a line from ``check-config``, the
``dora_exporter_services_without_changes`` gauge) rather than left to look like a team with no
changes. The check that needs Git (do the service's paths exist?) runs once a repository is opened:
``ingest.repos.Repos.missing_paths``.
"""

from __future__ import annotations

from exporter.settings import Config

__all__ = ["EVENT", "services_without_changes"]

EVENT = "config.service_without_changes"  # the warning logged per service


def services_without_changes(cfg: Config) -> list[tuple[str, str]]:
    """``(service, reason)`` for each service that has no repository to read changes from."""
    out = []
    for s in cfg.services:
        if s.repo is not None:
            continue
        if not s.paths:
            why = "no repo: and no paths: (the GitOps repository is its default only with paths); set either"
        elif len(cfg.gitops) > 1:
            why = f"no repo: and {len(cfg.gitops)} GitOps repositories (the default needs exactly one); set its repo:"
        else:
            why = "no repo: and no GitOps repository to default to; set its repo:"
        out.append((s.name, why))
    return out
