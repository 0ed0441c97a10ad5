#!/usr/bin/env bash
# Builds the C library (shared and static), its samples and tests into build-c/ (build/ belongs to node-gyp).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-c >/dev/null
cmake --build build-c -j "$(nproc)"
