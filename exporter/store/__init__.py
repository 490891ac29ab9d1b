"""The embedded store: the only package that touches SQL."""

from exporter.store.db import ArgoApp, GitHubDeploymentRow, Store, Tx

__all__ = ["ArgoApp", "GitHubDeploymentRow", "Store", "Tx"]
