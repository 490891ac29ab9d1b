# SPDX-License-Identifier: Apache-2.0
"""dora-exporter: DORA metrics from Git, image tags and Argo CD, for Prometheus."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dora-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
