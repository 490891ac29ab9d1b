# SPDX-License-Identifier: Apache-2.0
"""dora-exporter: DORA metrics from Git, image tags and Argo CD, for Prometheus."""

import sys


def _built() -> tuple[str, str]:
    """The version and commit setuptools-scm wrote into ``exporter/_version.py`` when the package was built or
    installed (see ``[tool.setuptools_scm]`` in pyproject.toml). Read once at import: nothing runs git later."""
    try:
        from exporter import _version
    except ImportError:  # a source tree that was never built or installed
        return "0.0.0+unknown", "unknown"
    commit: str | None = getattr(_version, "__commit_id__", None)
    # setuptools-scm writes git's node as "g<abbreviated hash>"; a build without git metadata has none.
    return str(_version.__version__), (commit or "unknown").removeprefix("g")


__version__, __revision__ = _built()
#: The interpreter's version, e.g. "3.11.7" (a label of dora_exporter_build_info).
PYTHON_VERSION = "{}.{}.{}".format(*sys.version_info[:3])

__all__ = ["PYTHON_VERSION", "__revision__", "__version__"]
