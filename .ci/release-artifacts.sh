#!/usr/bin/env bash
# Build and check the release artifacts that need no registry: the sdist and wheel, the CycloneDX SBOM of the
# runtime environment, and the packaged Helm chart. The release workflow (.github/workflows/release.yml) runs
# it on a v* tag and publishes what it writes; .ci/run runs it on every change, so a release cannot fail on a
# step CI never ran.
#
#   1. sdist + wheel with `python -m build` (setuptools + setuptools-scm: the version comes from git), then
#      `twine check --strict`; with VERSION given, the wheel's version must be exactly that.
#   2. A venv built like the image's (requirements.lock in hash mode, then the wheel with --no-deps), and its
#      SBOM from `cyclonedx-py environment` (CycloneDX 1.6 JSON, schema-validated by the tool). The SBOM must
#      list every locked runtime dependency at its locked version, and the project itself.
#   3. The chart packaged by Helm's engine (helm-python-sdk) with `version` and `appVersion` set (VERSION, or
#      for a build between tags the SemVer form of setuptools-scm's version), then linted, schema-checked and
#      rendered again from the packaged .tgz.
#
# Usage: .ci/release-artifacts.sh OUTDIR [VERSION]     VERSION: X.Y.Z from the tag (release), or none (CI)
# Env:   PYTHON            interpreter with the test extra installed (default .venv/bin/python)
#        IMAGE_REPOSITORY  image.repository written into the packaged chart's values (default: unchanged)
set -euo pipefail

main() {
    cd "$(dirname "$0")/.."
    local out="${1:?usage: $0 OUTDIR [VERSION]}" version="${2:-}"
    local python="${PYTHON:-.venv/bin/python}"
    local bin
    bin="$(dirname "$python")"
    log() { printf '[release-artifacts +%ss] %s\n' "$SECONDS" "$*" >&2; }
    die() { log "FAILED: $*"; exit 1; }

    rm -rf "$out" && mkdir -p "$out/dist"
    out="$(cd "$out" && pwd)"

    # --- 1. sdist and wheel ---------------------------------------------------------------------------------
    log "sdist and wheel"
    "$python" -m build --sdist --wheel --outdir "$out/dist" . >"$out/build.log" 2>&1 \
        || { tail -n 30 "$out/build.log" >&2; die "python -m build"; }
    "$bin/twine" check --strict "$out"/dist/*
    local wheel built
    wheel="$(ls "$out"/dist/*.whl)"
    built="$(basename "$wheel" | cut -d- -f2)"
    [[ -z "$version" || "$built" == "$version" ]] || die "the wheel is $built, the tag says $version"
    log "built $built"

    # --- 2. SBOM of the runtime environment -----------------------------------------------------------------
    log "runtime venv (requirements.lock + wheel) and its CycloneDX SBOM"
    local venv="$out/runtime-venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$wheel"
    "$venv/bin/python" -m pip check
    # pip and setuptools are removed from the image's venv, so they are not part of what it ships.
    "$venv/bin/python" -m pip uninstall -q --yes pip setuptools
    "$bin/cyclonedx-py" environment --output-format JSON --spec-version 1.6 --mc-type application \
        --output-reproducible --validate -o "$out/dist/dora-exporter-$built.cdx.json" "$venv/bin/python"
    "$python" - "$out/dist/dora-exporter-$built.cdx.json" requirements.lock "$built" <<'EOF'
import json, re, sys
from packaging.utils import canonicalize_name
sbom, lock, version = json.load(open(sys.argv[1])), open(sys.argv[2]).read(), sys.argv[3]
assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.6", "not a CycloneDX 1.6 document"
listed = {canonicalize_name(c["name"]): c for c in sbom["components"]}
pins = {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", lock, re.M)}
wrong = {n: (v, listed.get(n, {}).get("version")) for n, v in pins.items() if listed.get(n, {}).get("version") != v}
assert not wrong, f"SBOM components differ from the lock (locked, listed): {wrong}"
assert listed["dora-exporter"]["version"] == version, listed.get("dora-exporter")
missing_purl = [n for n, c in listed.items() if n in pins and not c.get("purl", "").startswith("pkg:pypi/")]
assert not missing_purl, f"components without a pypi purl: {missing_purl}"
print(f"SBOM: {len(listed)} components, every one of the {len(pins)} locked dependencies at its locked version")
EOF
    rm -rf "$venv"

    # --- 3. the chart -----------------------------------------------------------------------------------------
    local chart_version
    if [[ -n "$version" ]]; then
        chart_version="$version"
    else  # Helm wants SemVer: 1.2.4.dev5+gabc -> 1.2.4-dev.5+gabc
        chart_version="$("$python" -c 'import sys
from packaging.version import Version
v = Version(sys.argv[1])
print(v.base_version + (f"-dev.{v.dev}" if v.dev is not None else "") + (f"+{v.local}" if v.local else ""))' "$built")"
    fi
    log "chart $chart_version"
    "$python" - "$out/dist" "$chart_version" "${IMAGE_REPOSITORY:-}" <<'EOF'
import pathlib, shutil, sys, tarfile, tempfile
import helm_python, yaml
dest, version, repository = sys.argv[1], sys.argv[2], sys.argv[3]
chart = pathlib.Path("helm/dora-exporter")
with tempfile.TemporaryDirectory() as tmp:
    if repository:  # a fork's release: its own image by default
        copy = pathlib.Path(tmp) / "dora-exporter"
        shutil.copytree(chart, copy, symlinks=False)
        values = copy / "values.yaml"
        text = values.read_text()
        old = "  repository: ghcr.io/dora-exporter/dora-exporter\n"
        assert text.count(old) == 1, "values.yaml: image.repository line not found"
        values.write_text(text.replace(old, f"  repository: {repository}\n"))
        chart = copy
    archive = pathlib.Path(helm_python.package(chart, destination=dest, version=version, app_version=version))
assert archive.name == f"dora-exporter-{version}.tgz", archive
with tarfile.open(archive) as tar:
    meta = yaml.safe_load(tar.extractfile("dora-exporter/Chart.yaml").read())
    names = tar.getnames()
assert meta["version"] == meta["appVersion"] == version, meta
assert "dora-exporter/templates/networkpolicy.yaml" in names and "dora-exporter/values.schema.json" in names
report = helm_python.lint(str(archive), {}, strict=True, namespace="dora")
assert report["errors"] == [] and not [m for m in report["messages"] if m["severity"] >= 2], report
with helm_python.Chart.load(archive) as packaged:
    packaged.validate_schema({})
    rendered = packaged.render({}, name="dora-exporter", namespace="dora")
image = next(line.split('"')[1] for line in rendered["dora-exporter/templates/deployment.yaml"].splitlines()
             if line.strip().startswith("image:"))
assert image.endswith(f":{version}"), f"the packaged chart's image is {image}, not at {version}"
print(f"chart: {archive.name}, {len(names)} files, renders {len(rendered)} templates, image {image}")
EOF
    (cd "$out/dist" && sha256sum -- * >SHA256SUMS)
    log "done: $(cd "$out/dist" && echo *)"
}

main "$@"
