# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures for a real kube-apiserver; import ``kube_cluster`` into a test module to use it.

Why session scope: the cluster takes a few seconds to start and is cheap to share; tests must use
distinct object names (or namespaces) so they do not see each other's objects.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import KubeCluster
from tests.support.paths import DATA_DIR, PROJECT_ROOT

APPLICATION_CRD = DATA_DIR / "crds" / "application-crd.yaml"
DEFAULT_CACHE = Path("/var/cache/dora-exporter")
KUBE_VERSION = "1.20.2"


def find_kube_apiserver() -> Path:
    """Locate the kube-apiserver binary built by ``.ci/kube-apiserver.sh``.

    ``DORA_KUBE_APISERVER`` overrides the path; otherwise it is looked up in the cache dir
    (``DORA_KUBE_CACHE``, default ``/var/cache/dora-exporter``). A missing binary fails rather
    than skips: CI must build it, and a silently skipped suite would hide that.
    """
    override = os.environ.get("DORA_KUBE_APISERVER")
    if override:
        binary = Path(override)
    else:
        cache = Path(os.environ.get("DORA_KUBE_CACHE") or DEFAULT_CACHE)
        binary = cache / f"kube-apiserver-{KUBE_VERSION}" / "kube-apiserver"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"kube-apiserver not found at {binary}: run {PROJECT_ROOT / '.ci' / 'kube-apiserver.sh'} "
            "(builds it once, ~4 min, then caches it) or set DORA_KUBE_APISERVER",
            pytrace=False,
        )
    return binary


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """etcd + kube-apiserver (AlwaysAllow) with the project's Argo CD ``Application`` CRD installed."""
    binary = find_kube_apiserver()
    with KubeCluster.start(tmp_path_factory.mktemp("kube"), binary) as cluster:
        cluster.apply(APPLICATION_CRD)
        cluster.wait_for_crd("applications.argoproj.io")
        yield cluster
