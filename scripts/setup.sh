#!/usr/bin/env bash
# Installs everything sluice needs to build and test, from Debian 12 packages only.
# Idempotent and non-interactive: packages already present are left alone.
set -euo pipefail

packages=(
  build-essential cmake ccache pkg-config
  libcaf-dev libprotobuf-dev protobuf-compiler librocksdb-dev libboost-dev zlib1g-dev
  nlohmann-json3-dev doctest-dev libyaml-cpp-dev libcli11-dev
  libpqxx-dev libpq-dev postgresql
  librdkafka-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages already installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
