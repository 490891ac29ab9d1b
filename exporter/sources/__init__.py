# SPDX-License-Identifier: Apache-2.0
"""Sources: the only modules that run git or talk to Kubernetes or GitHub. Each yields model objects."""

__all__: list[str] = []  # a namespace: each source is imported as its own package (sources.git, sources.argocd, ...)
