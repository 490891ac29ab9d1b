# syntax=docker/dockerfile:1
#
# dora-exporter container image.
#
# Build:   docker build -t dora-exporter:dev .
# Base:    PYTHON_IMAGE pins the slim Python base. Override it to pin by digest in production, e.g.
#          --build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>
# Labels:  VERSION, REVISION and SOURCE fill the OCI labels (CI passes them). VERSION and REVISION are also the
#          package's version and commit (setuptools-scm reads them: the build context has no .git).
# Pinned:  the dependencies come from requirements.lock (versions and hashes, made by uv pip compile from
#          pyproject.toml); pip refuses anything else.
#
# Stage 1 builds the project's wheel and installs it with its dependencies into a virtual environment.
# Stage 2 starts again from the same base, adds git (the daemon runs it) and tini (PID 1: reaps zombie git
# processes and forwards SIGTERM), and copies only the virtual environment: no compiler, no build backend,
# and no pip in the application's venv end up in the final image.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

ARG VERSION=""
ARG REVISION=""

WORKDIR /src
# .dockerignore is an allow-list: only pyproject.toml, requirements.lock, README.md, LICENSE and exporter/ reach
# this stage.
COPY . .

# The dependencies first, exactly as locked: every file checked against its hash, nothing resolved. Then pip
# builds the project's wheel with the backend pyproject.toml's [build-system] names (setuptools with
# setuptools-scm, in an isolated build environment that does not end up in the image) and installs it alone;
# pip check proves the locked set satisfies the wheel's requirements. pip and setuptools are removed from the
# venv so the runtime stage gets no packaging tools.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock \
 && if [ -n "${VERSION}" ]; then export SETUPTOOLS_SCM_PRETEND_VERSION_FOR_DORA_EXPORTER="${VERSION}"; fi \
 && if [ -n "${REVISION}" ]; then export SETUPTOOLS_SCM_PRETEND_METADATA_FOR_DORA_EXPORTER="{node=\"g${REVISION}\"}"; fi \
 && /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && /opt/venv/bin/dora-exporter --version


FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=""

LABEL org.opencontainers.image.title="dora-exporter" \
      org.opencontainers.image.description="DORA metrics from Git, Argo CD and GitHub, for Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"

# Versions are not pinned on purpose: the pinned base fixes the Debian release, and a rebuild should pick up
# that release's security updates for git.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends git tini ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dora \
 && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin dora \
 && mkdir -p /data /etc/dora-exporter \
 && chown 10001:10001 /data

COPY --from=build /opt/venv /opt/venv

# HOME=/tmp: git writes its config and credential caches under HOME, and the root filesystem is read-only in
# the Helm chart (only /data and /tmp are writable).
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DORA_EXPORTER_CONFIG=/etc/dora-exporter/dora.yaml

WORKDIR /data
USER 10001:10001
EXPOSE 9478 9479

ENTRYPOINT ["/usr/bin/tini", "--", "dora-exporter"]
CMD ["run"]
