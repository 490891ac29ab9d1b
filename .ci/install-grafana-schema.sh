#!/usr/bin/env bash
# Generate Grafana's dashboard JSON schema from the npm package @grafana/schema.
#
# Installs @grafana/schema, ts-json-schema-generator and typescript into a cache
# directory and writes dashboard.schema.json there. Idempotent: when the schema
# file already exists for the pinned version it does nothing.
#
#   cache dir: ${DORA_GRAFANA_SCHEMA_DIR:-${DORA_CACHE:-/var/cache/dora-exporter}/grafana-schema}
#   output:    <cache dir>/dashboard.schema.json  (tests read it via DORA_GRAFANA_SCHEMA or this path)
set -euo pipefail

GRAFANA_SCHEMA_VERSION="13.2.3"
GENERATOR_VERSION="2.4.0"
TYPESCRIPT_VERSION="5"
stamp_value="grafana-schema@${GRAFANA_SCHEMA_VERSION} ts-json-schema-generator@${GENERATOR_VERSION}"
cache_root="${DORA_CACHE:-/var/cache/dora-exporter}"
dir="${DORA_GRAFANA_SCHEMA_DIR:-${cache_root}/grafana-schema}"
out="${dir}/dashboard.schema.json"
stamp="${dir}/.schema-version"

if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$stamp_value" ]; then
    echo "install-grafana-schema: $out is up to date ($stamp_value)"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "install-grafana-schema: npm not found, installing Debian's nodejs and npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends nodejs npm || {
        apt-get update
        apt-get install -y --no-install-recommends nodejs npm
    }
fi

mkdir -p "$dir"
cd "$dir"
if [ ! -f package.json ]; then
    printf '{\n  "name": "dora-grafana-schema",\n  "private": true\n}\n' > package.json
fi

npm install --no-audit --no-fund --no-save --loglevel=error \
    "@grafana/schema@${GRAFANA_SCHEMA_VERSION}" \
    "ts-json-schema-generator@${GENERATOR_VERSION}" "typescript@${TYPESCRIPT_VERSION}"

types="node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts"
if [ ! -f "$types" ]; then
    echo "install-grafana-schema: $types missing from @grafana/schema@$GRAFANA_SCHEMA_VERSION" >&2
    exit 1
fi

tmp="${out}.tmp"
npx --no-install ts-json-schema-generator --path "$types" --type Dashboard --no-type-check -o "$tmp"
mv "$tmp" "$out"
echo "$stamp_value" > "$stamp"
echo "install-grafana-schema: wrote $out"
