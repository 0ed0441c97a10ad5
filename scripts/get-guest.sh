#!/usr/bin/env bash
# Provides what the guest tests boot: a Debian 12 cloud kernel (vmlinuz and
# its modules) and a static busybox for the initramfs, without installing
# anything into the host system.
#
#   scripts/get-guest.sh [DIR]      DIR defaults to .guest/ at the repository root
#
# apt runs with a private configuration and an empty package database, like
# scripts/get-qemu.sh: it downloads linux-image-cloud-amd64's real kernel
# package and busybox-static, and dpkg-deb unpacks them into DIR. Afterwards:
#   DIR/vmlinuz        the kernel
#   DIR/modules/       lib/modules/<version> of that kernel (no modules.dep:
#                      the harness reads each module's depends= itself)
#   DIR/busybox        the static busybox
# Running it again is cheap: a complete DIR is kept as it is. On success
# stdout holds one line, DIR; progress goes to stderr.
#
# Environment:
#   GUEST_SUITE      Debian suite to take them from (default: bookworm)
#   GUEST_MIRROR     Debian archive URL; default: the one this host's apt uses
#   GUEST_REFRESH=1  download again even when DIR is complete
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/.guest}
suite=${GUEST_SUITE:-bookworm}

say() { printf 'get-guest: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

complete() {
    [ -s "$dir/vmlinuz" ] && [ -x "$dir/busybox" ] && [ -s "$dir/modules/modules.order" ]
}
if [ "${GUEST_REFRESH:-0}" != 1 ] && complete; then
    say "kernel $(cat "$dir/kernel-version") and busybox in $dir"
    printf '%s\n' "$dir"
    exit 0
fi

# shellcheck source=private-apt.sh
. "$repo/scripts/private-apt.sh"
work=$dir/.work
rm -rf "$work"
trap 'rm -rf "$work"' EXIT
mirror=${GUEST_MIRROR:-$(bash "$repo/scripts/debian-mirror.sh")}
[ -n "$mirror" ] || die "no Debian archive found in /etc/apt sources; set GUEST_MIRROR"
private_apt "$work" "$mirror" "$suite"
mkdir -p "$work/unpacked" "$work/debs"

started=$SECONDS
say "fetching the $suite package index"
apt-get -q=2 update >&2
# The metapackage only depends on the versioned kernel package; that one is
# what holds vmlinuz and the modules.
kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 |
             awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
[ -n "$kernel_pkg" ] || die "linux-image-cloud-amd64 names no kernel package in $suite"
say "downloading $kernel_pkg and busybox-static"
(cd "$work/debs" && apt-get -q=2 download "$kernel_pkg" busybox-static >&2)
for deb in "$work"/debs/*.deb; do
    dpkg-deb --extract "$deb" "$work/unpacked"
done

version=${kernel_pkg#linux-image-}
[ -s "$work/unpacked/boot/vmlinuz-$version" ] || die "$kernel_pkg has no boot/vmlinuz-$version"
[ -d "$work/unpacked/lib/modules/$version" ] || die "$kernel_pkg has no lib/modules/$version"
[ -x "$work/unpacked/bin/busybox" ] || die "busybox-static has no bin/busybox"

rm -rf "$dir/modules" "$dir/vmlinuz" "$dir/busybox"
mv "$work/unpacked/lib/modules/$version" "$dir/modules"
mv "$work/unpacked/boot/vmlinuz-$version" "$dir/vmlinuz"
mv "$work/unpacked/bin/busybox" "$dir/busybox"
printf '%s\n' "$version" > "$dir/kernel-version"
complete || die "the unpacked files are incomplete"
say "kernel $version and busybox in $dir ($((SECONDS - started)) s, $(du -sh "$dir" | cut -f1))"
printf '%s\n' "$dir"
