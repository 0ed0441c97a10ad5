# Sourced by get-qemu.sh and get-guest.sh: an apt of their own, in a work
# folder, that downloads Debian packages from the host's archive (or the one
# given) without touching the host's apt state, needing root or installing
# anything. The caller defines die().
#
#   private_apt WORK MIRROR SUITE [APT.CONF LINES...]
#
# checks the host, makes WORK's apt folders and config (the extra lines go
# into apt.conf), and exports APT_CONFIG; WORK must not exist.

private_apt() {
    local work=$1 mirror=$2 suite=$3
    shift 3
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg

    [ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 hosts are supported"
    [ -r "$keyring" ] || die "$keyring is missing (package debian-archive-keyring)"
    command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
        die "apt-get and dpkg-deb are needed"

    mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" \
             "$work/etc/parts" "$work/etc/prefs"
    : > "$work/state/status"
    printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$mirror" "$suite" \
        > "$work/etc/sources.list"
    {
        cat <<CONF
Dir::Etc "$work/etc";
Dir::Etc::sourcelist "$work/etc/sources.list";
Dir::Etc::sourceparts "-";
Dir::Etc::parts "$work/etc/parts";
Dir::Etc::preferencesparts "$work/etc/prefs";
Dir::State "$work/state";
Dir::State::status "$work/state/status";
Dir::Cache "$work/cache";
Debug::NoLocking "true";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "$(id -un)";
Acquire::Languages "none";
Acquire::Retries "3";
CONF
        printf '%s\n' "$@"
    } > "$work/apt.conf"
    export APT_CONFIG=$work/apt.conf
}
