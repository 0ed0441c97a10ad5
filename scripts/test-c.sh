#!/usr/bin/env bash
# Builds the C library with its tests and samples, then runs them under ctest.
#   scripts/test-c.sh              plain build in build-c/
#   scripts/test-c.sh --sanitize   AddressSanitizer + UBSan build in build-c-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build-c
args=()
if [ "${1:-}" = --sanitize ]; then
    dir=build-c-asan
    args+=(-DVFU_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
# LeakSanitizer reports leaks at exit; UBSan stops at the first report.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
