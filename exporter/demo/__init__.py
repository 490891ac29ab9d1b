# SPDX-License-Identifier: Apache-2.0
"""The built-in MiniShop demo: a generated GitOps monorepo with its own ground truth."""

# Its modules are imported by name (``from exporter.demo import generate``).
__all__ = ["fastimport", "generate"]
