#!/usr/bin/env bash
# Install Prometheus (server + promtool) and Alertmanager from Debian's packages.
# Idempotent: does nothing when both are already installed. Runs `apt-get update`
# only when the package lists are empty or the first install attempt fails.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1; then
    echo "install-prometheus: promtool and prometheus-alertmanager already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
packages=(prometheus prometheus-alertmanager)

if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' || true)" ]; then
    echo "install-prometheus: apt lists are empty, running apt-get update"
    apt-get update
fi

if ! apt-get install -y --no-install-recommends "${packages[@]}"; then
    echo "install-prometheus: install failed, refreshing apt lists and retrying"
    apt-get update
    apt-get install -y --no-install-recommends "${packages[@]}"
fi

promtool --version | head -n 1
