#!/usr/bin/env bash
# The jest projects that run the addon (not QEMU; see jest.config.js) against an addon built with AddressSanitizer and
# UBSan, vendored C library included.
#   scripts/test-asan.sh [JEST ARGS...]
# The addon is built from a copy of its sources in build-asan/tree/, so the
# normal build/Release addon the other tests use is left alone; the tests
# load the sanitized one through $VFIO_USER_ADDON. Any sanitizer report fails
# the script, even one from a child process a test spawned.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$PWD/build-asan
tree=$out/tree
mkdir -p "$tree/vendor/libvfio-user" "$out/reports"
# -p keeps the sources' times, so a rebuild only recompiles what changed.
cp -rp binding.gyp native "$tree/"
cp -rp vendor/libvfio-user/src vendor/libvfio-user/include \
    vendor/libvfio-user/libvfio-user.gypi "$tree/vendor/libvfio-user/"
# npm puts its own node-gyp on the PATH of package scripts; outside them,
# take the one npm bundles.
node_gyp=$(command -v node-gyp ||
           echo "$(dirname "$(readlink -f "$(command -v npm)")")/node-gyp-bin/node-gyp")
if ! (cd "$tree" && "$node_gyp" configure --vfio_user_sanitize=true &&
      "$node_gyp" build -j "$(nproc)") >"$out/build.log" 2>&1; then
    cat "$out/build.log" >&2
    echo "test-asan: building the sanitized addon failed" >&2
    exit 1
fi
addon=$tree/build/Release/vfio_user.node

# The addon's ASan runtime has to be the first library loaded, and node
# itself is not instrumented, so gcc's libasan is preloaded into every node
# process of the run. Leak detection is off: node does not free everything
# at exit, by design, and would report those as leaks of its own; the C
# library's leaks are LeakSanitizer's business in test-c.sh --sanitize.
libasan=$(gcc -print-file-name=libasan.so)
rm -f "$out"/reports/*
status=0
LD_PRELOAD=$libasan \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$out/reports/asan \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$out/reports/ubsan \
VFIO_USER_ADDON=$addon \
    node node_modules/jest/bin/jest.js --runInBand "$@" \
    --selectProjects device migration examples addon ||
    status=$?

if compgen -G "$out/reports/*" >/dev/null; then
    echo "test-asan: sanitizer reports:" >&2
    cat "$out"/reports/* >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi
echo "test-asan: every suite passed against $addon, no sanitizer report"
