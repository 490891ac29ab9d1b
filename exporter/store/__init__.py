# SPDX-License-Identifier: Apache-2.0
"""The embedded store: the only package that touches SQL."""

from exporter.store.db import ArgoApp, GitHubDeploymentRow, LazyHistories, Store, Tx

__all__ = ["ArgoApp", "GitHubDeploymentRow", "LazyHistories", "Store", "Tx"]
