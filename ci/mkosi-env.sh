#!/usr/bin/env bash
# ci/mkosi-env.sh — provide mkosi 25 (Debian 13 trixie's) on the Debian 12 build host.
#
# Usage:
#   source ci/mkosi-env.sh          # from another bash script (ci/build-images.sh does)
#   bash ci/mkosi-env.sh [--check] [-h|--help]
#
#   (no args)   Install the host packages an image build needs (if missing) and
#               fetch + unpack trixie's mkosi (if missing). Idempotent; a second
#               run changes nothing and takes well under a second.
#   --check     Change nothing; report what is missing. Exit 1 if anything is.
#   -h, --help  Show this help.
#
# Why not bookworm's mkosi 14: it runs package installs in systemd-nspawn, which
# needs systemd as PID 1 (the build hosts have none) and host workarounds. mkosi
# >= 25 sandboxes with its own mkosi-sandbox (no nspawn, no bubblewrap). Its .deb
# cannot be installed on bookworm (it wants systemd >= 254), but unpacked it runs
# with the host's python3 (../shared/BUILD-HOST-NOTES.md):
#   1. `apt-get download mkosi` from trixie through a private sources list and
#      lists directory under $LAKE_CACHE/apt-trixie/ (the host's apt sources and
#      state are not touched);
#   2. `dpkg-deb -x` into $LAKE_CACHE/tools/mkosi-<version>/;
#   3. run as `PYTHONPATH=<that>/usr/lib/python3/dist-packages python3 -m mkosi`.
# mkosi is not on PyPI; the Debian archive is where it comes from.
#
# When sourced, this exports:
#   LAKE_MKOSI   the command (word-split): python3 -m mkosi, with PYTHONPATH set
#                through env(1)
#   LAKE_MKOSI_VERSION   e.g. 25.3
# and returns non-zero (without exiting the caller's shell) on failure.
#
# Environment:
#   LAKE_CACHE                 cache root (default /var/cache/lakeos)
#   LAKE_DEBIAN_MIRROR         archive to fetch mkosi from (default http://deb.debian.org/debian)
#   LAKE_MKOSI_EXTRA_PACKAGES  space-separated extra host packages to ensure.

# Everything runs in a function in a subshell so that `set -euo pipefail` and
# helper names do not leak into a shell that sources this file. It prints the
# unpacked directory on stdout.
_lake_mkosi_env() (
    set -euo pipefail
    # Host tools mkosi 25 calls for Debian directory and cpio outputs: apt and
    # dpkg (package installs run from the host, into the image), the archive
    # keyring, cpio + zstd for the initramfs, kmod for module dependencies.
    local -a pkgs=(apt dpkg debian-archive-keyring cpio zstd xz-utils kmod python3)
    if [[ -n "${LAKE_MKOSI_EXTRA_PACKAGES:-}" ]]; then
        local -a extra
        read -r -a extra <<<"$LAKE_MKOSI_EXTRA_PACKAGES"
        pkgs+=("${extra[@]}")
    fi
    log() { printf 'mkosi-env: %s\n' "$*" >&2; }
    die() { printf 'mkosi-env: error: %s\n' "$*" >&2; exit 1; }

    local check_only=0
    while (($#)); do
        case "$1" in
            -h|--help)
                sed -n '2,/^# Everything runs/{/^# Everything runs/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}" >&2
                exit 3 ;;
            --check) check_only=1 ;;
            *) printf 'mkosi-env: error: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
        esac
        shift
    done
    ((EUID == 0)) || die "must run as root (mkosi builds images as root)"
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: Debian/Ubuntu hosts only"

    local -A have=()
    local name status p
    while IFS=' ' read -r name status; do
        [[ "$status" == "ii" ]] && have["${name%%:*}"]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)
    local -a missing=()
    for p in "${pkgs[@]}"; do [[ -n "${have[$p]:-}" ]] || missing+=("$p"); done
    local -a apt_opts=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
    if ((${#missing[@]})); then
        ((check_only)) && { log "missing host packages: ${missing[*]}"; exit 1; }
        log "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install failed for: ${missing[*]}"
    fi

    local cache=${LAKE_CACHE:-/var/cache/lakeos}
    local tools=$cache/tools
    # The newest unpacked mkosi 25.x, if any.
    local dir
    dir=$(ls -1d "$tools"/mkosi-25.* 2>/dev/null | sort -V | tail -n1 || true)
    if [[ -n $dir && -f $dir/usr/lib/python3/dist-packages/mkosi/__init__.py ]]; then
        printf '%s\n' "$dir"
        exit 0
    fi
    ((check_only)) && { log "mkosi 25 is not unpacked under $tools (run ci/mkosi-env.sh)"; exit 1; }

    # A private apt configuration for trixie: sources, lists and downloads of
    # its own, so the host's apt state stays bookworm's.
    local apt=$cache/apt-trixie mirror=${LAKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
    mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$tools"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" >"$apt/sources.list"
    local -a private=(
        -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$apt/lists" -o Dir::Cache::Archives="$apt/archives"
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
        -o APT::Sandbox::User=root
    )
    log "fetching mkosi from Debian trixie ($mirror)"
    apt-get -q "${private[@]}" update >"$apt/update.log" 2>&1 || { tail -5 "$apt/update.log" >&2; die "apt-get update of the trixie lists failed"; }
    (cd "$apt/archives" && apt-get -q "${private[@]}" download mkosi >"$apt/download.log" 2>&1) \
        || { tail -5 "$apt/download.log" >&2; die "apt-get download mkosi (trixie) failed"; }
    local deb
    deb=$(ls -1 "$apt/archives"/mkosi_25.*_all.deb 2>/dev/null | sort -V | tail -n1 || true)
    [[ -n $deb ]] || die "trixie's mkosi is not 25.x any more ($(ls "$apt/archives")); update ci/mkosi-env.sh"
    local v=${deb##*/mkosi_}
    v=${v%%-*}
    dir=$tools/mkosi-$v
    rm -rf -- "$dir.tmp"
    dpkg-deb -x "$deb" "$dir.tmp" || die "dpkg-deb -x $deb failed"
    mv -T "$dir.tmp" "$dir"
    log "mkosi $v unpacked in $dir"
    printf '%s\n' "$dir"
)

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced.
    if _lake_mkosi_dir=$(_lake_mkosi_env "$@"); then
        export LAKE_MKOSI="env PYTHONPATH=$_lake_mkosi_dir/usr/lib/python3/dist-packages python3 -m mkosi"
        export LAKE_MKOSI_VERSION=${_lake_mkosi_dir##*/mkosi-}
        unset -f _lake_mkosi_env
        unset _lake_mkosi_dir
        return 0
    else
        _lake_mkosi_env_rc=$?
        unset -f _lake_mkosi_env
        unset _lake_mkosi_dir
        return "$_lake_mkosi_env_rc"
    fi
else
    _lake_mkosi_dir=$(_lake_mkosi_env "$@") || { rc=$?; ((rc == 3)) && exit 0; exit "$rc"; }
    echo "mkosi-env: ok: PYTHONPATH=$_lake_mkosi_dir/usr/lib/python3/dist-packages python3 -m mkosi ($(PYTHONPATH=$_lake_mkosi_dir/usr/lib/python3/dist-packages python3 -m mkosi --version))" >&2
fi
