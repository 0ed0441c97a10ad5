#!/usr/bin/env bash
# Builds the C library (shared and static), its samples and tests into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc)"
