"""The embedded store: the only package that touches SQL."""

from exporter.store.db import Store, Tx

__all__ = ["Store", "Tx"]
