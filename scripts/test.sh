#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
cd "${SLUICE_BUILD_DIR:-build}"
ctest --output-on-failure -j 2 --timeout 600
