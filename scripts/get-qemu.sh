#!/usr/bin/env bash
# Provides a QEMU that has `-device vfio-user-pci` (QEMU 10.1 or newer) for
# the test suite, without installing anything into the host system.
#
#   scripts/get-qemu.sh [DIR]      DIR defaults to .qemu/ at the repository root
#
# Debian 12 ships QEMU 7.2 and Debian 13 ships 10.0, both without vfio-user-pci,
# so we take qemu-system-x86 from Debian unstable. apt runs with a private
# configuration and an empty package database: it downloads the package with
# every library it needs (unstable's libc included), nothing is configured or
# installed system-wide, and dpkg-deb unpacks the lot into DIR/root. The
# launcher DIR/bin/qemu-system-x86_64 then starts the binary through
# unstable's own dynamic loader, with unstable's libraries, modules and
# firmware, so the host's older libc never gets involved.
#
# Running it again is cheap: a launcher that already offers vfio-user-pci is
# kept as it is. On success stdout holds one line, the launcher's path; the
# QEMU version and progress go to stderr.
#
# Environment:
#   QEMU_SUITE     Debian suite to take QEMU from (default: unstable)
#   QEMU_VERSION   pin an exact package version, e.g. 1:11.1.3+ds-1
#   QEMU_MIRROR    Debian archive URL; default: the one this host's apt uses
#   QEMU_REFRESH=1 reinstall even when DIR already works
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/.qemu}
suite=${QEMU_SUITE:-unstable}
launcher_name=qemu-system-x86_64

say() { printf 'get-qemu: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
launcher=$dir/bin/$launcher_name

has_vfio_user() {
    local devices
    # Captured first: grep -q quitting early would give QEMU a SIGPIPE, and
    # pipefail would call that a failure.
    [ -x "$1" ] && devices=$("$1" -nodefaults -machine none -device help 2>/dev/null) &&
        grep -q '"vfio-user-pci"' <<<"$devices"
}

finish() {
    say "$("$launcher" --version | head -n 1) at $launcher"
    printf '%s\n' "$launcher"
    exit 0
}

if [ "${QEMU_REFRESH:-0}" != 1 ] && has_vfio_user "$launcher"; then
    finish
fi

# shellcheck source=private-apt.sh
. "$repo/scripts/private-apt.sh"
work=$dir/.work
rm -rf "$work" "$dir/root.tmp"
trap 'rm -rf "$work" "$dir/root.tmp"' EXIT
mirror=${QEMU_MIRROR:-$(bash "$repo/scripts/debian-mirror.sh")}
[ -n "$mirror" ] || die "no Debian archive found in /etc/apt sources; set QEMU_MIRROR"
# Unstable's Release file may be older than its Valid-Until on a frozen
# snapshot mirror; signatures are still checked.
private_apt "$work" "$mirror" "$suite" \
    'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
    'Acquire::Check-Valid-Until "false";'
mkdir -p "$dir/root.tmp"

started=$SECONDS
say "fetching the $suite package index"
apt-get -q=2 update >&2
pkg=qemu-system-x86${QEMU_VERSION:+=$QEMU_VERSION}
say "downloading $pkg with its dependencies"
apt-get -q=2 -y install --download-only "$pkg" >&2

# Everything in the closure is unpacked except what only matters to a booted
# system (init, locales, extra crypto providers); the binary never loads it.
count=0
for deb in "$work"/cache/archives/*.deb; do
    case ${deb##*/} in
        systemd_* | systemd-*_* | libsystemd-shared_* | libc-gconv-modules-extra_* | \
        openssl-provider-legacy_*) continue ;;
    esac
    dpkg-deb --extract "$deb" "$dir/root.tmp"
    count=$((count + 1))
done
rm -rf "$dir/root.tmp/usr/share/man" "$dir/root.tmp/usr/share/locale" \
       "$dir/root.tmp/usr/share/info"

loader=usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
[ -e "$dir/root.tmp/$loader" ] || loader=usr/lib64/ld-linux-x86-64.so.2
[ -e "$dir/root.tmp/$loader" ] || die "the unpacked tree has no dynamic loader"
[ -x "$dir/root.tmp/usr/bin/$launcher_name" ] || die "the unpacked tree has no $launcher_name"

rm -rf "$dir/root"
mv "$dir/root.tmp" "$dir/root"
mkdir -p "$dir/bin"
# The launcher finds the tree relative to itself, so DIR may be moved.
cat > "$launcher.tmp" <<LAUNCHER
#!/bin/sh
# Made by scripts/get-qemu.sh: runs the unpacked QEMU with its own loader.
top=\$(dirname "\$(readlink -f "\$0")")/..
root=\$top/root
export QEMU_MODULE_DIR="\$root/usr/lib/x86_64-linux-gnu/qemu"
exec "\$root/$loader" --library-path "\$root/usr/lib/x86_64-linux-gnu" \\
    "\$root/usr/bin/$launcher_name" -L "\$root/usr/share/qemu" -L "\$root/usr/share/seabios" "\$@"
LAUNCHER
chmod +x "$launcher.tmp"
mv "$launcher.tmp" "$launcher"

has_vfio_user "$launcher" || die "unpacked $count packages, but $launcher has no vfio-user-pci"
rm -rf "$work"
say "unpacked $count packages in $((SECONDS - started)) s; $(du -sh "$dir" | cut -f1) in $dir"
finish
