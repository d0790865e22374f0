#!/usr/bin/env bash
# Installs dependencies, builds, and runs the streaming word count demo
# (bundled text, parallelism 2, local mini-cluster). Arguments go to the demo,
# e.g. scripts/demo.sh --input FILE --parallelism 4.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
exec build/examples/word_count "$@"
