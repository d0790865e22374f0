#!/usr/bin/env bash
# Installs everything sluice needs to build and test, from Debian 12 packages only.
# Idempotent and non-interactive: packages already present are left alone.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libcaf-dev libprotobuf-dev protobuf-compiler librocksdb-dev libboost-dev zlib1g-dev libssl-dev openssl
  nlohmann-json3-dev doctest-dev libyaml-cpp-dev libcli11-dev
  libpqxx-dev libpq-dev postgresql
  librdkafka-dev
  nodejs npm
  chromium chromium-driver
)

# The JS SDK compatibility test (tests/remote_compat.test.cpp) runs a server
# on the official StateFun JS SDK, pinned by tests/compat/js/package-lock.json.
install_js_sdk() {
  local dir
  dir="$(cd "$(dirname "$0")/.." && pwd)/tests/compat/js"
  if [ -f "$dir/node_modules/.package-lock.json" ] &&
     [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    echo "setup: JS SDK packages up to date"
    return
  fi
  echo "setup: npm ci in tests/compat/js"
  (cd "$dir" && npm ci --no-audit --no-fund)
}

missing=()
for p in "${packages[@]}"; do
  # Node.js from another source (e.g. NodeSource, which bundles npm) counts.
  if { [ "$p" = nodejs ] && command -v node > /dev/null; } ||
     { [ "$p" = npm ] && command -v npm > /dev/null; }; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  install_js_sdk
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
install_js_sdk
