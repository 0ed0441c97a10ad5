#!/usr/bin/env bash
# Proves the addon works when built against a system libvfio-user found with
# pkg-config (node-gyp rebuild --vfio_user_system_lib=true) instead of the
# vendored sources: our library is installed into a temporary prefix with its
# generated libvfio-user.pc, the addon is built from a copy of binding.gyp and
# native/ that holds no C library sources, and a device served through that
# addon is read by a client, and reads and writes the memory of a client in
# another process by messages (test/native/system-lib-check.js).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d "${TMPDIR:-/tmp}/vfu-system-lib.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== installing libvfio-user into $work/prefix"
cmake -S . -B "$work/cmake" -DVFU_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --build "$work/cmake" -j "$(nproc)" --target vfio-user vfio-user-static >/dev/null
cmake --install "$work/cmake" >/dev/null
pc=$(find "$work/prefix" -name libvfio-user.pc)
export PKG_CONFIG_PATH="$(dirname "$pc")"
echo "pkg-config: $(pkg-config --cflags --libs libvfio-user)"

echo "== building the addon with vfio_user_system_lib=true"
addon="$work/addon"
mkdir -p "$addon/vendor/libvfio-user"
cp -r binding.gyp native "$addon/"
cp vendor/libvfio-user/libvfio-user.gypi "$addon/vendor/libvfio-user/"
ln -s "$root/node_modules" "$addon/node_modules"
if command -v node-gyp >/dev/null; then
    gyp=(node-gyp)
else
    # Outside npm scripts: npm's own node-gyp.
    gyp=(node "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js")
fi
# Node's own headers, as npm is configured to use, so nothing is downloaded.
node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [ -z "${npm_config_nodedir:-}" ] && [ -f "$node_prefix/include/node/node_api.h" ]; then
    export npm_config_nodedir="$node_prefix"
fi
(cd "$addon" && "${gyp[@]}" rebuild --vfio_user_system_lib=true -j "$(nproc)" >"$work/gyp.log" 2>&1) || {
    cat "$work/gyp.log"
    exit 1
}
module="$addon/build/Release/vfio_user.node"
# It uses the installed shared object, not a copy of the library. The output
# is captured first: grep -q stopping early would give ldd a SIGPIPE, which
# pipefail turns into a failure.
linked=$(ldd "$module")
grep -q "$work/prefix/.*libvfio-user.so.0" <<<"$linked" || {
    echo "FAIL: $module does not load $work/prefix's libvfio-user.so.0"
    ldd "$module"
    exit 1
}
symbols=$(nm -D --defined-only "$module")
if grep -q ' T vfu_' <<<"$symbols"; then
    echo "FAIL: $module contains the library itself"
    exit 1
fi

echo "== compiling the package to run on it"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$work/lib"

echo "== serving a device through it"
# The check times itself out, except while the library blocks it in a
# transfer: this bound holds then too.
VFIO_USER_ADDON="$module" VFIO_USER_LIB="$work/lib" \
    timeout --kill-after=5 60 node test/native/system-lib-check.js
