#!/usr/bin/env bash
# Build the dora-exporter image for real with buildah and check it from the inside.
#
# Not called by .ci/run: a cold run (debootstrap of the stand-in base, then the image build) takes several
# minutes on 2 cores. Run it by hand after changing the Dockerfile, .dockerignore or the packaging.
#
# No registry can be pulled from here, so the Dockerfile's default base (ARG PYTHON_IMAGE, a python slim
# image) is replaced by a local stand-in carrying the same name: a debootstrap minbase bookworm root file
# system plus Debian's python3, python3-venv and python3-pip. The Dockerfile itself builds unchanged with
# --pull-never. The stand-in also trusts the CA certificates this host trusts (a TLS-inspecting egress proxy
# may sit between the build and the package index); it only ever exists in the local image store.
#
# Checks made on the built image:
#   - the configured user is 10001 and the entrypoint is exec-form tini
#   - the OCI labels source, revision and version are set
#   - `dora-exporter --version` (the version and commit passed in) and `dora-exporter check-config --config
#     examples/dora.yaml` run as uid 10001
#   - the application's venv holds exactly the distributions requirements.lock pins, plus the project
#   - git and tini are present; no compiler, no apt lists, and no pip or setuptools in the app's venv
#
# Usage: .ci/build-image.sh [--base-only]
# Env:   DORA_CACHE       cache root (default /var/cache/dora-exporter): base rootfs tarball and image store
#        IMAGE            tag of the built image (default localhost/dora-exporter:local)
#        PYTHON           interpreter with setuptools-scm, for the version (default .venv/bin/python)
set -euo pipefail

# Everything runs inside main(): bash parses it whole first, so editing this file mid-run is harmless.
main() {
    cd "$(dirname "$0")/.."
    ROOT="$PWD"
    CACHE="${DORA_CACHE:-/var/cache/dora-exporter}/image-build"
    IMAGE="${IMAGE:-localhost/dora-exporter:local}"
    BASE_ONLY=0
    [[ "${1:-}" == "--base-only" ]] && BASE_ONLY=1

    log() { printf '[build-image +%ss] %s\n' "$SECONDS" "$*" >&2; }
    die() { log "FAILED: $*"; exit 1; }

    [[ "$(id -u)" -eq 0 ]] || die "run as root (debootstrap and buildah chroot isolation need it)"

    need=()
    command -v buildah >/dev/null || need+=(buildah)
    command -v debootstrap >/dev/null || need+=(debootstrap)
    if [[ ${#need[@]} -gt 0 ]]; then
        log "installing ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "${need[@]}" \
            || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; }
    fi

    mkdir -p "$CACHE"
    B=(buildah --root "$CACHE/storage" --runroot "$CACHE/runroot" --storage-driver vfs)

    # --- the stand-in base image --------------------------------------------------------------------------
    base_name="$(sed -n 's/^ARG PYTHON_IMAGE=//p' Dockerfile | head -n 1)"
    [[ -n "$base_name" ]] || die "Dockerfile has no 'ARG PYTHON_IMAGE=<default>'"
    base_ref="localhost/${base_name}"
    base_tar="$CACHE/base-bookworm-python3.tar"

    if ! "${B[@]}" inspect --type image "$base_ref" >/dev/null 2>&1; then
        if [[ ! -s "$base_tar" ]]; then
            # The mirror is the one this host's apt already uses (first bookworm 'deb' stanza).
            mirror="$(awk '/^Types: deb$/{d=1} /^URIs:/{if(d){print $2; exit}}' \
                /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
            [[ -n "$mirror" ]] || die "cannot find a Debian mirror in /etc/apt/sources.list.d/debian.sources"
            rootfs="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
            trap 'rm -rf "$rootfs"' EXIT
            log "debootstrap minbase bookworm + python3 into $rootfs"
            t0=$SECONDS
            debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
                bookworm "$rootfs" "$mirror" >"$CACHE/debootstrap.log" 2>&1 \
                || { tail -n 30 "$CACHE/debootstrap.log" >&2; die "debootstrap (log: $CACHE/debootstrap.log)"; }
            log "debootstrap took $((SECONDS - t0))s"
            if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
                cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
                chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
            fi
            # Like the python slim images: no package lists, no downloaded .debs.
            rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
            tar -C "$rootfs" --numeric-owner -cf "$base_tar.tmp" .
            mv "$base_tar.tmp" "$base_tar"
            rm -rf "$rootfs"
            trap - EXIT
        fi
        log "importing $base_tar as $base_ref"
        ctr="$("${B[@]}" from scratch)"
        "${B[@]}" add "$ctr" "$base_tar" / >/dev/null
        "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --env LANG=C.UTF-8 --cmd python3 "$ctr"
        "${B[@]}" commit --quiet --rm "$ctr" "$base_ref" >/dev/null
    fi
    log "base image: $base_ref ($("${B[@]}" run --isolation chroot "$("${B[@]}" from --pull-never "$base_ref")" \
        python3 --version 2>&1))"
    "${B[@]}" rm --all >/dev/null
    [[ $BASE_ONLY -eq 1 ]] && { log "--base-only: done"; exit 0; }

    # --- the image ----------------------------------------------------------------------------------------
    [[ -f exporter/cli/main.py ]] || die "exporter/cli/main.py is missing: nothing to build yet"
    # The version setuptools-scm derives from git (the build context has no .git, so it is passed in).
    version="$("${PYTHON:-.venv/bin/python}" -m setuptools_scm 2>/dev/null || true)"
    [[ -n "$version" ]] || die "cannot compute the version: setuptools-scm missing from ${PYTHON:-.venv/bin/python}"
    revision="$(git rev-parse HEAD)"
    log "building $IMAGE (version $version, revision $revision)"
    t0=$SECONDS
    "${B[@]}" bud --isolation chroot --pull-never --layers=false \
        --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
        --build-arg "SOURCE=file://$ROOT" \
        -t "$IMAGE" -f Dockerfile . >"$CACHE/bud.log" 2>&1 \
        || { tail -n 40 "$CACHE/bud.log" >&2; die "buildah bud (log: $CACHE/bud.log)"; }
    build_seconds=$((SECONDS - t0))
    "${B[@]}" rmi --prune >/dev/null 2>&1 || true   # the previous build's now-untagged image
    log "buildah bud took ${build_seconds}s"

    # --- checks -------------------------------------------------------------------------------------------
    # buildah 1.28's --format has no json function: read the OCI config with the host's python3.
    IFS='|' read -r user entrypoint l_version l_revision l_source < <("${B[@]}" inspect --type image "$IMAGE" \
        | python3 -c 'import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
labels = c.get("Labels") or {}
print("|".join([c.get("User", ""), json.dumps(c.get("Entrypoint"), separators=(",", ":"))]
               + [labels.get("org.opencontainers.image." + k, "") for k in ("version", "revision", "source")]))')
    log "user=$user entrypoint=$entrypoint"
    log "labels: version=$l_version revision=$l_revision source=$l_source"
    [[ "$user" == "10001:10001" ]] || die "image user is '$user', expected 10001:10001"
    [[ "$entrypoint" == '["/usr/bin/tini","--","dora-exporter"]' ]] || die "unexpected entrypoint $entrypoint"
    [[ "$l_version" == "$version" && "$l_revision" == "$revision" && -n "$l_source" ]] || die "OCI labels not set"

    ctr="$("${B[@]}" from --pull-never "$IMAGE")"
    trap '"${B[@]}" rm "$ctr" >/dev/null 2>&1 || true' EXIT
    "${B[@]}" copy --chown 10001:10001 "$ctr" examples/dora.yaml /etc/dora-exporter/dora.yaml >/dev/null
    # buildah's chroot isolation has no PID namespace, so tini is not PID 1 here: let it register as a
    # subreaper instead (in a pod it is PID 1 and needs nothing).
    run() { "${B[@]}" run --isolation chroot --env TINI_SUBREAPER=1 "$ctr" -- "$@"; }

    echo "--- id"
    run id
    [[ "$(run id -u)" == "10001" ]] || die "commands do not run as uid 10001"
    echo "--- dora-exporter --version"
    said="$(run /usr/bin/tini -- dora-exporter --version)"
    echo "$said"
    # setuptools-scm keeps an abbreviated hash: the revision shown must be a prefix of the commit built.
    said_revision="$(sed -n 's/.*(revision \([0-9a-f]\{7,\}\), Python .*/\1/p' <<<"$said")"
    [[ "$said" == "dora-exporter $version (revision "* && -n "$said_revision" && "$revision" == "$said_revision"* ]] \
        || die "--version: '$said'"
    echo "--- the application's venv holds exactly the locked distributions (plus the project)"
    installed="$(run /opt/venv/bin/python -c 'import importlib.metadata as m, re
for d in m.distributions(): print(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(), d.version)' | sort)"
    locked="$(python3 -c 'import re, sys
for line in open(sys.argv[1]):
    m = re.match(r"([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
    if m: print(re.sub(r"[-_.]+", "-", m[1]).lower(), m[2])' requirements.lock | sort)"
    expected="$(printf '%s\ndora-exporter %s\n' "$locked" "$version" | sort)"
    [[ "$installed" == "$expected" ]] || die "venv differs from requirements.lock: $(diff <(echo "$expected") <(echo "$installed"))"
    echo "$(wc -l <<<"$installed") distributions, as locked"
    echo "--- dora-exporter check-config (DORA_EXPORTER_CONFIG=/etc/dora-exporter/dora.yaml)"
    run /usr/bin/tini -- dora-exporter check-config
    echo "--- git --version"
    run git --version
    echo "--- no build tools, no pip in the application venv"
    # (The base image's own interpreter may ship pip, as the python slim images do; the application's venv does
    # not, and no compiler or build dependency is ever installed.)
    leftovers="$(run sh -c 'for t in gcc cc c++ make ld; do command -v "$t"; done
        ls /opt/venv/bin | grep -E "^(pip|easy_install|wheel)" || true
        ls /var/lib/apt/lists | grep -v -e "^lock$" -e "^partial$" || true
        /opt/venv/bin/python -c "import pip" 2>/dev/null && echo "pip importable in /opt/venv" || true')"
    [[ -z "$leftovers" ]] || die "build or packaging tools left in the image: $leftovers"
    echo "none"

    size="$("${B[@]}" images --format '{{.Size}}' "$IMAGE" | head -n 1)"
    log "OK: $IMAGE, size $size, build ${build_seconds}s, total ${SECONDS}s"
}

main "$@"
