# SPDX-License-Identifier: Apache-2.0
"""A manifest larger than ``gitops[].max_manifest_bytes`` is skipped unread: counted once per (file,
blob) as ``unmatched{reason="manifest_too_large"}``, never held in memory, and the pair's later
bumps still ingest. Before the cap, a 52 MB blob at a manifest path took the daemon from 47 to
443 MB, and a large enough one killed the pod on every restart."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from structlog.testing import capture_logs

from exporter.config.loading import parse
from exporter.sources.git.repository import Git, Oversized
from exporter.store import Store
from tests.support.gitrepo import MINUTE, T0, Exporter, GitRepo, manifest, values_yaml

API = manifest("api")
MIB = 1 << 20
CAP = 1 * MIB


def _padded(tag: str, size: int) -> str:
    """A values file setting ``tag``, padded with comment lines to ``size`` bytes."""
    head = values_yaml(tag)
    line = "# " + "x" * 97 + "\n"
    return head + line * ((size - len(head)) // len(line))


def _capped(tmp_path: Path) -> Exporter:
    """An exporter over ``tmp_path/gitops`` whose manifests may be at most ``CAP`` bytes."""
    manifests = [{"path": "apps/{service}/{environment}/values.yaml", "yaml_key": "image.tag"}]
    e = Exporter(tmp_path, str(tmp_path / "gitops"), manifests=manifests)
    e.close()
    e.raw["gitops"] = [{**e.raw["gitops"][0], "max_manifest_bytes": CAP}]  # type: ignore[index]
    e.cfg = parse(e.raw, environ={}, base_dir=tmp_path)
    e.store = Store(e.cfg.store_path)
    return e


def test_a_manifest_over_the_cap_is_skipped_once_and_later_bumps_still_ingest(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("Deploy a", T0, {API: values_yaml("a" * 40)})
    big = repo.commit("Deploy b, with a huge file", T0 + MINUTE, {API: _padded("b" * 40, 5 * MIB)})
    repo.commit("Deploy c", T0 + 2 * MINUTE, {API: values_yaml("c" * 40)})
    repo.git("revert", "--no-edit", "HEAD", when=T0 + 3 * MINUTE)  # the same huge blob again
    repo.commit("Deploy d", T0 + 4 * MINUTE, {API: values_yaml("d" * 40)})
    e = _capped(tmp_path)
    try:
        with capture_logs() as logs:
            result = e.poll()
        assert [v for v, *_ in e.deployments("api", "prod")] == ["a" * 40, "c" * 40, "d" * 40]
        assert result.skips == 1
        assert e.store.unmatched_counts() == {("gitops", "manifest_too_large"): 1}
        skipped = [entry for entry in logs if entry["event"] == "gitops.manifest_skipped"]
        assert len(skipped) == 1 and skipped[0]["reason"] == "manifest_too_large"
        assert API in skipped[0]["where"] and big[:12] in skipped[0]["where"]
    finally:
        e.close()


def test_reading_past_a_large_blob_holds_none_of_it(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("Deploy a", T0, {API: values_yaml("a" * 40)})
    repo.commit("Deploy b, with a huge file", T0 + MINUTE, {API: _padded("b" * 40, 20 * MIB)})
    repo.commit("Deploy c", T0 + 2 * MINUTE, {API: values_yaml("c" * 40)})
    e = _capped(tmp_path)
    try:
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            e.poll()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [v for v, *_ in e.deployments("api", "prod")] == ["a" * 40, "c" * 40]
        assert peak - baseline < 2 * MIB, f"peak {peak - baseline} bytes over the baseline for a 20 MiB blob"
    finally:
        e.close()


def test_git_reports_an_oversized_blob_by_its_size_and_keeps_reading(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("two files", T0, {"small.txt": "small\n", "big.txt": "y" * (3 * MIB)})
    with Git(repo.path) as git:
        small, big = (git.run("rev-parse", f"HEAD:{name}").strip() for name in ("small.txt", "big.txt"))
        assert git.read_blobs([big, small, big], max_size=CAP) == {big: Oversized(3 * MIB), small: b"small\n"}
        assert git.read_blob(big, max_size=CAP) == Oversized(3 * MIB)
        assert git.read_blob(small, max_size=CAP) == b"small\n"  # the pipe is still in step
        assert git.read_blob(big) == b"y" * (3 * MIB)  # no cap: read as before


def test_a_read_ahead_holds_no_more_than_its_budget(tmp_path: Path) -> None:
    """Many manifests just under the cap, read ahead together: past the budget they are left for
    one-by-one reads instead of all held at once."""
    repo = GitRepo(tmp_path / "gitops")
    repo.commit("three files", T0, {f"f{n}.txt": str(n) * MIB for n in range(3)})
    with Git(repo.path) as git:
        shas = [git.run("rev-parse", f"HEAD:f{n}.txt").strip() for n in range(3)]
        got = git.read_blobs(shas, max_size=CAP, budget=MIB + MIB // 2)
        assert got == {shas[0]: b"0" * MIB}  # the second would pass the budget: left out, as the third
        assert git.read_blob(shas[2], max_size=CAP) == b"2" * MIB  # the pipe is still in step
