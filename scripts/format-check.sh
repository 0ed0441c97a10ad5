#!/usr/bin/env bash
# Checks that native/ is formatted as .clang-format says (npm test runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
    echo "format:check needs clang-format: apt-get install clang-format" >&2
    exit 1
fi
clang-format --dry-run --Werror native/*.cc native/*.h
echo "format:check: native/ is formatted"
