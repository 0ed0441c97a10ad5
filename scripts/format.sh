#!/usr/bin/env bash
# Formats the C and C++ sources in place (npm run format); --list prints them.
set -euo pipefail
cd "$(dirname "$0")/.."
# The public headers are left as written: each function's name starts a line,
# as upstream's do (test/exported-symbols.sh checks it).
files=$(git ls-files 'native/*.cc' 'native/*.h' 'vendor/libvfio-user/*.c' 'vendor/libvfio-user/*.h' \
    'vendor/libvfio-user/*.cc' ':!vendor/libvfio-user/include/')
if [ "${1:-}" = --list ]; then
    echo "$files"
    exit 0
fi
# shellcheck disable=SC2086
clang-format -i $files
