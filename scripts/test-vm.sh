#!/usr/bin/env bash
# Runs the tests that need QEMU: `qemu` (test/qemu, QEMU without a guest
# kernel) or `guest` (test/guest, real Linux guests). What they need is
# provisioned first (scripts/get-qemu.sh, scripts/get-guest.sh; cached, so
# cheap when present), and a missing part fails the run: nothing skips
# silently. VFU_SKIP_VM=1 is the only way to skip them, and says so loudly.
#
#   scripts/test-vm.sh qemu|guest [jest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

kind=${1:?usage: scripts/test-vm.sh qemu|guest [jest arguments]}
shift
case $kind in
    qemu | guest) ;;
    *) echo "test-vm: unknown kind $kind (qemu or guest)" >&2; exit 2 ;;
esac

if [ "${VFU_SKIP_VM:-0}" = 1 ]; then
    printf '\n%s\n%s\n%s\n\n' \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' \
        "!!! SKIPPED: every test in test/$kind/ (VFU_SKIP_VM=1 is set)" \
        '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
    exit 0
fi

QEMU=${QEMU:-$(bash scripts/get-qemu.sh)}
export QEMU VFU_REQUIRE_QEMU=1
if [ "$kind" = guest ]; then
    bash scripts/get-guest.sh >/dev/null
fi
# The jest project of the same name (jest.config.js); last, as it takes a list.
exec npx jest "$@" --selectProjects "$kind"
