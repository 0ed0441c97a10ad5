#!/usr/bin/env bash
# Checks that native/ and the C library are formatted as their .clang-format
# files say (npm test runs it); scripts/format.sh formats them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
    echo "format:check needs clang-format: apt-get install clang-format" >&2
    exit 1
fi
clang-format --dry-run --Werror $(bash scripts/format.sh --list)
echo "format:check: native/ and vendor/libvfio-user/ are formatted"
