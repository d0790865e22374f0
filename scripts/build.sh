#!/usr/bin/env bash
# Configures and builds sluice into build/ (RelWithDebInfo, ccache when present).
# Extra arguments go to cmake, e.g. scripts/build.sh -DSLUICE_SANITIZE=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir="${SLUICE_BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" "$@" > /dev/null
cmake --build "$build_dir" -j "$(nproc)"
