#!/usr/bin/env bash
# Build a real kube-apiserver (Kubernetes 1.20.2, from the Debian source package) for the test suite.
#
# Why: no registry ships a kube-apiserver binary, but Debian 12 ships the sources with vendor/ included.
# The cold build takes ~4 minutes on 2 cores, so the binary is cached and later runs only print its path.
# Two source fixes are required because the 1.20.2 sources predate Go 1.16+ (Debian 12 has Go 1.19):
#  * swap vendored reflect2 for Debian's copy: without it the server crashes on custom resources;
#  * drop the bogus zero-value check in the vendored OpenAPI type validators (kubernetes#99804, fixed
#    upstream by kube-openapi#230): without it every "" in a custom resource is rejected as null, so
#    a real Argo CD Application (e.g. `value: ""` in plugin env) cannot be created.
#
# Usage: .ci/kube-apiserver.sh            (prints the binary path on its last stdout line)
# Env:   DORA_KUBE_CACHE  cache root, default /var/cache/dora-exporter
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_DIR="${DORA_KUBE_CACHE:-/var/cache/dora-exporter}"
DEST_DIR="$CACHE_DIR/kube-apiserver-$KUBE_VERSION"
DEST="$DEST_DIR/kube-apiserver"
# Bump when the build changes, so a binary cached by an older build is rebuilt rather than reused.
RECIPE_ID="reflect2-swap+openapi-zero-value-fix"
STAMP="$DEST.recipe"
PACKAGES=(golang-go etcd-server rsync golang-github-modern-go-reflect2-dev openssl)
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

log() { printf '[kube-apiserver.sh +%ss] %s\n' "$SECONDS" "$*" >&2; }

is_cached() { [[ -x "$DEST" && "$(cat "$STAMP" 2>/dev/null)" == "$RECIPE_ID" ]]; }

if is_cached; then
    echo "$DEST"
    exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO=(sudo)
fi

mkdir -p "$CACHE_DIR"
# Serialise concurrent builds (e.g. parallel CI jobs sharing a cache): the loser waits, then finds the binary.
exec 9>"$CACHE_DIR/.kube-apiserver.lock"
flock 9
if is_cached; then
    echo "$DEST"
    exit 0
fi

have_package() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Enable deb-src by adding a deb-src twin of the main apt source (first stanza of debian.sources).
DEB_SRC=/etc/apt/sources.list.d/deb-src.sources
need_update=0
if [[ ! -f "$DEB_SRC" ]]; then
    log "enabling deb-src in $DEB_SRC"
    sed -n '1,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Types: deb$/Types: deb-src/' \
        | "${SUDO[@]}" tee "$DEB_SRC" >/dev/null
    need_update=1
fi
if ! compgen -G '/var/lib/apt/lists/*_Sources*' >/dev/null; then
    need_update=1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    have_package "$pkg" || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]] && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    need_update=1
fi

if [[ $need_update -eq 1 ]]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq >&2
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2; then
        # Stale package lists are the usual cause: refresh once and retry.
        "${SUDO[@]}" apt-get update -qq >&2
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2
    fi
fi

WORK="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
trap 'chmod -R u+w "$WORK" 2>/dev/null || true; rm -rf "$WORK"' EXIT
cd "$WORK"

log "downloading the kubernetes source package into $WORK"
apt-get source --download-only -qq kubernetes >&2
orig=(kubernetes_*"really$KUBE_VERSION".orig.tar.gz)
[[ -f "${orig[0]}" ]] || { log "no kubernetes_*really$KUBE_VERSION.orig.tar.gz downloaded"; exit 1; }
tar xzf "${orig[0]}"
cd "kubernetes-$KUBE_VERSION"

log "swapping vendored reflect2 for Debian's copy"
R=vendor/github.com/modern-go/reflect2
find "$R" -maxdepth 1 -type f ! -name LICENSE -delete
cp "$REFLECT2_SRC"/*.go "$REFLECT2_SRC"/*.s "$R"/
log "removing the Go>=1.16-broken zero-value check from the OpenAPI type validators"
ZERO_CHECK='if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {'
for f in vendor/github.com/go-openapi/validate/type.go vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go; do
    grep -qF "$ZERO_CHECK" "$f" || { log "expected zero-value check not found in $f"; exit 1; }
    sed -i "s/^\(\s*\)if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/\1if data == nil {/" "$f"
    ! grep -qF "$ZERO_CHECK" "$f" || { log "failed to patch $f"; exit 1; }
done

mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes

log "building kube-apiserver (cold build takes ~4 min on 2 cores)"
build_start=$SECONDS
GOPATH="$PWD/.go" GOPROXY=off CGO_ENABLED=0 HOME="$PWD/.home" KUBE_GIT_VERSION="v$KUBE_VERSION" \
    KUBE_GIT_TREE_STATE=clean make WHAT=cmd/kube-apiserver GOLDFLAGS="-s -w" >&2
log "make took $((SECONDS - build_start))s"

mkdir -p "$DEST_DIR"
# Copy then rename so a reader never sees a half-written binary.
cp _output/bin/kube-apiserver "$DEST.tmp"
chmod 0755 "$DEST.tmp"
mv -f "$DEST.tmp" "$DEST"
echo "$RECIPE_ID" >"$STAMP"
"$DEST" --version >&2
log "done in ${SECONDS}s total"
echo "$DEST"
