# SPDX-License-Identifier: Apache-2.0
"""The release workflow (``.github/workflows/release.yml``), linted with actionlint as ``ci.yml`` is, and checked
for what a release must do: run on ``v*`` tags with least-privilege permissions, build the artifacts with the
same script ``.ci/run`` runs (``.ci/release-artifacts.sh``), push a multi-arch image signed keyless with the
SBOM attested, push the chart to an OCI registry, and make a GitHub release from the CHANGELOG section.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.artifacts.test_dockerfile import tool
from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
RELEASE = ROOT / ".github" / "workflows" / "release.yml"
CI = ROOT / ".github" / "workflows" / "ci.yml"


def workflow(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = job["steps"]
    return result


def uses(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["uses"].split("@")[0]: s for s in steps(job) if "uses" in s}


def runs(job: dict[str, Any]) -> str:
    return "\n".join(s.get("run", "") for s in steps(job))


def test_actionlint_clean() -> None:
    result = subprocess.run(
        [tool("actionlint"), "-no-color", str(RELEASE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_on_version_tags_with_least_privilege() -> None:
    release = workflow(RELEASE)
    assert release["on"] == {"push": {"tags": ["v*"]}}
    assert release["permissions"] == {"contents": "read"}
    jobs = release["jobs"]
    assert set(jobs) == {"artifacts", "image", "chart", "release"}
    assert "permissions" not in jobs["artifacts"]
    assert jobs["image"]["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    assert jobs["chart"]["permissions"] == {"contents": "read", "packages": "write"}
    assert jobs["release"]["permissions"] == {"contents": "write"}


def test_actions_are_pinned_like_ci() -> None:
    """Every action at a major version tag (as ci.yml pins them) or a full commit SHA; the ones both workflows
    use at the same version."""
    pinned = re.compile(r"^[\w.-]+/[\w./-]+@(v\d+|[0-9a-f]{40})$")

    def refs(path: Path) -> dict[str, str]:
        out = {}
        for job in workflow(path)["jobs"].values():
            for step in steps(job):
                if "uses" in step:
                    assert pinned.match(step["uses"]), step["uses"]
                    name, ref = step["uses"].split("@")
                    out[name] = ref
        return out

    ours, ci = refs(RELEASE), refs(CI)
    assert {name: ref for name, ref in ours.items() if name in ci} == {name: ci[name] for name in ours if name in ci}


def test_artifacts_job_runs_the_script_ci_runs() -> None:
    job = workflow(RELEASE)["jobs"]["artifacts"]
    checkout = uses(job)["actions/checkout"]
    assert checkout["with"]["fetch-depth"] == 0, "setuptools-scm needs the tag"
    assert "pip install -q --require-hashes --no-deps -r requirements.lock" in runs(job)
    assert 'bash .ci/release-artifacts.sh out "${{ steps.version.outputs.version }}"' in runs(job)
    assert "bash .ci/release-artifacts.sh" in (ROOT / ".ci" / "run").read_text()


def test_image_is_multi_arch_signed_and_carries_the_sbom_attestation() -> None:
    job = workflow(RELEASE)["jobs"]["image"]
    build = uses(job)["docker/build-push-action"]["with"]
    assert build["platforms"] == "linux/amd64,linux/arm64"
    assert build["push"] is True
    assert "REVISION=${{ github.sha }}" in build["build-args"]
    assert "VERSION=${{ env.VERSION }}" in build["build-args"]
    assert job["env"]["IMAGE"].startswith("ghcr.io/")
    assert "sigstore/cosign-installer" in uses(job)
    script = runs(job)
    # Signed and attested by digest, never by a tag that could move.
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in script
    assert "cosign attest --yes --type cyclonedx --predicate" in script and '"$IMAGE@$DIGEST"' in script


def test_chart_is_pushed_as_an_oci_artifact() -> None:
    job = workflow(RELEASE)["jobs"]["chart"]
    assert 'helm push "dist/dora-exporter-$VERSION.tgz" "oci://ghcr.io/$OWNER/charts"' in runs(job)


def _notes_script() -> str:
    job = workflow(RELEASE)["jobs"]["release"]
    step = next(s for s in steps(job) if s.get("name", "").startswith("Notes from the CHANGELOG"))
    script: str = step["run"]
    return script


def test_release_notes_are_the_changelog_section(tmp_path: Path) -> None:
    """The workflow's own notes script, run on a CHANGELOG with two versions."""
    (tmp_path / "CHANGELOG.md").write_text(
        "# Changelog\n\n## [Unreleased]\n\n- next\n\n## [1.2.0] - 2026-06-01\n\n### Added\n- the thing\n\n"
        "## [1.1.0] - 2026-05-01\n\n- older\n"
    )
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "image-digest.txt").write_text("ghcr.io/o/dora-exporter@sha256:" + "0" * 64 + "\n")
    script = _notes_script().replace("${{ needs.artifacts.outputs.owner }}", "o")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"VERSION": "1.2.0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    notes = (tmp_path / "notes.md").read_text()
    assert notes.startswith("\n### Added\n- the thing\n")
    assert "older" not in notes and "next" not in notes
    assert "sha256:" + "0" * 64 in notes and "oci://ghcr.io/o/charts/dora-exporter --version 1.2.0" in notes
    missing = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={"VERSION": "9.9.9", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "no '## [9.9.9]' section" in missing.stdout


def test_release_attaches_every_file() -> None:
    script = runs(workflow(RELEASE)["jobs"]["release"])
    assert 'gh release create "$GITHUB_REF_NAME"' in script and "--notes-file notes.md" in script
    for pattern in ("dist/*.whl", "dist/*.tar.gz", "dist/*.tgz", "dist/*.cdx.json", "dist/SHA256SUMS"):
        assert pattern in script
