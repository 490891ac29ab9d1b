# SPDX-License-Identifier: Apache-2.0
"""The container image recipe and the CI workflow that publishes it.

Linted for real (hadolint, actionlint) and checked for the properties the deployment relies on: a pinned
slim Python base chosen by a build argument, the wheel built in a first stage, no build tools in the final
stage, git and tini present, uid 10001, an exec-form entrypoint under tini, OCI labels, and an allow-list
``.dockerignore``. The image itself is built by ``.ci/build-image.sh`` (buildah), which ``.ci/run`` runs in
the background beside the tests (a cold build takes about 4 minutes on 2 cores, mostly downloads).

Tools missing make the tests fail (not skip) with the install step: ``.ci/install-helm-tools.sh``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.paths import PROJECT_ROOT

ROOT = PROJECT_ROOT
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
BUILD_SCRIPT = ROOT / ".ci" / "build-image.sh"
INSTALL_HINT = "run .ci/install-helm-tools.sh"
BUILD_TOOLS = ("gcc", "g++", "make", "build-essential", "python3-dev", "libffi-dev", "libssl-dev", "cargo", "rustc")


def tool(name: str) -> str:
    """A command-line tool from the venv (pip-installed) or PATH; fail with the install step if absent."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}", pytrace=False)
    return found


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped (enough for this Dockerfile)."""
    out: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by FROM; global ARGs before the first FROM are dropped."""
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([ins])
        elif result:
            result[-1].append(ins)
    return result


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
STAGES = stages(INSTRUCTIONS)


def default_arg(name: str) -> str:
    for ins in INSTRUCTIONS:
        if ins.keyword == "ARG" and ins.args.startswith(f"{name}="):
            return ins.args.split("=", 1)[1].strip('"')
    raise AssertionError(f"no ARG {name}=<default>")


def run_text(stage: list[Instruction]) -> str:
    return "\n".join(i.args for i in stage if i.keyword == "RUN")


def test_hadolint_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_base_image_is_a_pinned_slim_python_chosen_by_build_arg() -> None:
    base = default_arg("PYTHON_IMAGE")
    # A full patch version (or a digest), never a floating tag such as 3.11-slim or latest.
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    assert len(STAGES) == 2
    assert STAGES[0][0].args == "${PYTHON_IMAGE} AS build"
    assert STAGES[1][0].args == "${PYTHON_IMAGE} AS runtime"
    # The ARG is declared before the first FROM, so both stages use the same base.
    first_from = next(i for i, ins in enumerate(INSTRUCTIONS) if ins.keyword == "FROM")
    assert any(ins.keyword == "ARG" and ins.args.startswith("PYTHON_IMAGE=") for ins in INSTRUCTIONS[:first_from])


def test_wheel_is_built_in_the_first_stage_and_only_the_venv_is_copied() -> None:
    build, runtime = STAGES
    text = run_text(build)
    # The locked dependencies first, in hash mode, then the project alone; pip check proves they fit.
    locked = text.index("pip install --require-hashes --no-deps -r requirements.lock")
    wheel = text.index("pip wheel --no-deps --wheel-dir /wheels .")
    project = text.index("pip install --no-deps /wheels/*.whl")
    assert locked < wheel < project < text.index("pip check")
    assert text.count("pip install") == 2, "nothing installed outside the lock"
    # The build context has no .git: the version and commit reach setuptools-scm from the build arguments.
    assert 'SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DORA_EXPORTER="${VERSION}"' in text
    assert "SETUPTOOLS_SCM_PRETEND_METADATA_FOR_DORA_EXPORTER=" in text
    assert "pip uninstall --yes pip setuptools" in run_text(build)
    copies = [i.args for i in runtime if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the runtime stage gets the venv and nothing else"


def test_runtime_stage_has_git_and_tini_and_no_build_tools() -> None:
    runtime = run_text(STAGES[1])
    assert re.search(r"apt-get install --yes --no-install-recommends [^&]*\bgit\b", runtime)
    assert re.search(r"apt-get install --yes --no-install-recommends [^&]*\btini\b", runtime)
    assert "rm -rf /var/lib/apt/lists/*" in runtime
    for name in BUILD_TOOLS:
        assert not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", runtime), f"{name} in the runtime stage"
    assert "pip " not in runtime


def test_runs_as_uid_10001_under_tini_in_exec_form() -> None:
    runtime = STAGES[1]
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users == ["10001:10001"], "numeric user, so runAsNonRoot can verify it"
    assert "--uid 10001" in run_text(runtime) and "--gid 10001" in run_text(runtime)
    entrypoint = [i.args for i in runtime if i.keyword == "ENTRYPOINT"]
    assert len(entrypoint) == 1
    assert json.loads(entrypoint[0]) == ["/usr/bin/tini", "--", "dora-exporter"]
    cmd = [i.args for i in runtime if i.keyword == "CMD"]
    assert [json.loads(c) for c in cmd] == [["run"]]
    env = " ".join(i.args for i in runtime if i.keyword == "ENV")
    assert "HOME=/tmp" in env, "git needs a writable HOME on a read-only root filesystem"
    assert "DORA_EXPORTER_CONFIG=/etc/dora-exporter/dora.yaml" in env


def test_oci_labels_come_from_build_args() -> None:
    labels = " ".join(i.args for i in STAGES[1] if i.keyword == "LABEL")
    for label, arg in (("source", "SOURCE"), ("revision", "REVISION"), ("version", "VERSION")):
        assert f'org.opencontainers.image.{label}="${{{arg}}}"' in labels, label
        assert any(i.keyword == "ARG" and i.args.startswith(f"{arg}=") for i in STAGES[1]), arg
    for arg in ("VERSION", "REVISION"):
        assert any(i.keyword == "ARG" and i.args.startswith(f"{arg}=") for i in STAGES[0]), f"{arg} in the build stage"


def test_dockerignore_is_an_allow_list() -> None:
    lines = [line for line in DOCKERIGNORE.read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*", "exclude everything, then allow what the wheel needs"
    allowed = {line[1:] for line in lines if line.startswith("!")}
    assert {"pyproject.toml", "requirements.lock", "README.md", "LICENSE", "exporter/"} <= allowed
    assert not allowed & {".git", ".venv", "tests/", "helm/", ".env"}
    assert "**/*.db" in lines


def test_build_script_runs_in_ci() -> None:
    assert BUILD_SCRIPT.is_file() and os.access(BUILD_SCRIPT, os.X_OK)
    result = subprocess.run(["bash", "-n", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = BUILD_SCRIPT.read_text()
    assert "--pull-never" in text and "--isolation chroot" in text
    # It builds the Dockerfile unchanged: the base's name is read from the Dockerfile, not repeated.
    assert default_arg("PYTHON_IMAGE") not in text
    # .ci/run builds the image (in the background, beside the tests: a cold build is ~4 min, mostly downloads)
    # and fails when the build or its checks fail.
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/build-image.sh" in ci_run and 'wait "$image_build"' in ci_run
    # The workflow's test job runs .ci/run in a privileged container: debootstrap and buildah need it.
    test_job = _workflow()["jobs"]["test"]
    assert test_job["container"] == {"image": "python:3.11-bookworm", "options": "--privileged"}


def test_actionlint_clean() -> None:
    result = subprocess.run(
        [tool("actionlint"), "-no-color", str(WORKFLOW)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


def test_workflow_tests_pull_requests_and_publishes_main() -> None:
    workflow = _workflow()
    assert set(workflow["on"]) == {"pull_request", "push"}
    assert workflow["on"]["push"] == {"branches": ["main"]}, "version tags belong to release.yml"
    assert workflow["permissions"] == {"contents": "read"}
    test, image = workflow["jobs"]["test"], workflow["jobs"]["image"]
    assert test["if"] == "github.event_name == 'pull_request'"
    assert any(step.get("run") == "bash .ci/run" for step in test["steps"])
    assert image["if"] == "github.event_name == 'push'"
    steps = {step.get("uses", "").split("@")[0]: step for step in image["steps"]}
    tags = steps["docker/metadata-action"]["with"]["tags"].split()
    assert "type=sha,format=long,prefix=" in tags, "every pushed image carries the commit SHA"
    build = steps["docker/build-push-action"]["with"]
    assert build["push"] is True
    assert "REVISION=${{ github.sha }}" in build["build-args"]
    assert "VERSION=${{ steps.meta.outputs.version }}" in build["build-args"]
