# SPDX-License-Identifier: Apache-2.0
"""What observations mean: deployments, changes, failures, restores; one deployment seen by several sources."""

__all__: list[str] = []  # a namespace: each ingester is imported from its own module (ingest.gitops, ...)
