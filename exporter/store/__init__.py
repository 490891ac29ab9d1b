"""The embedded store: the only package that touches SQL."""

from exporter.store.db import ArgoApp, Store, Tx

__all__ = ["ArgoApp", "Store", "Tx"]
