#!/usr/bin/env bash
# ci/mkosi-env.sh — make mkosi 14 usable on hosts where systemd is not PID 1.
#
# Usage:
#   source ci/mkosi-env.sh          # from another bash script (ci/build-images.sh does)
#   bash ci/mkosi-env.sh [--check] [--no-install] [-h|--help]
#
#   (no args)     Install the packages an image build needs (if missing) and
#                 apply the host workarounds below. Idempotent; a second run
#                 changes nothing and takes well under a second.
#   --check       Change nothing; report what is missing. Exit 1 if anything is.
#   --no-install  Apply the workarounds, but do not run apt-get.
#   -h, --help    Show this help.
#
# mkosi 14 runs package installs and scripts inside systemd-nspawn. Without
# systemd as PID 1 a plain `mkosi build` fails ("Failed to open system bus",
# then "Attempted to remove disk file system under /run/systemd/nspawn/
# propagate/..."). The workarounds (see ../shared/BUILD-HOST-NOTES.md):
#   1. create the placeholder nodes systemd makes at boot and nspawn bind-mounts
#      over paths it hides: /run/systemd/inaccessible/{reg,dir,fifo,sock,chr,blk}
#      (mode 000; chr = `mknod c 0 0`, blk = `mknod b 0 0`);
#   2. mount a tmpfs on /run/systemd/nspawn (nspawn only removes its propagation
#      directories from a tmpfs, it refuses to rm -rf a disk file system);
#   3. pass --nspawn-keep-unit (config key `NspawnKeepUnit=yes` — note the
#      spelling: mkosi 14 turns `NSpawnKeepUnit` into the unknown option
#      --n-spawn-keep-unit). Both mkosi.conf files of this repository set it,
#      and LAKE_MKOSI_ARGS below carries it for callers too.
# Steps 1 and 2 are skipped when systemd is PID 1 (/run/systemd/system exists):
# there systemd owns those paths, and a tmpfs over /run/systemd/nspawn would hide
# running containers' state.
#
# When sourced, this exports:
#   LAKE_MKOSI_ENV=ok
#   LAKE_MKOSI_ARGS="--nspawn-keep-unit"   (extra mkosi arguments, word-split)
# and returns non-zero (without exiting the caller's shell) on failure.
#
# Environment:
#   LAKE_MKOSI_EXTRA_PACKAGES  space-separated extra apt packages to ensure.

# Everything runs in a function in a subshell so that `set -euo pipefail` and
# helper names do not leak into a shell that sources this file.
_lake_mkosi_env() (
    set -euo pipefail

    # Packages the image builds need on the host (mkosi 14 itself, nspawn,
    # debootstrap for the Debian bootstrap, cpio + zstd for the initramfs).
    local -a pkgs=(
        mkosi systemd-container debootstrap debian-archive-keyring
        cpio zstd xz-utils kmod
    )
    if [[ -n "${LAKE_MKOSI_EXTRA_PACKAGES:-}" ]]; then
        local -a extra
        read -r -a extra <<<"$LAKE_MKOSI_EXTRA_PACKAGES"
        pkgs+=("${extra[@]}")
    fi

    log() { printf 'mkosi-env: %s\n' "$*" >&2; }
    die() { printf 'mkosi-env: error: %s\n' "$*" >&2; exit 1; }

    local check_only=0 install=1
    while (($#)); do
        case "$1" in
            -h|--help)
                sed -n '2,/^# Everything runs/{/^# Everything runs/d;s/^# \{0,1\}//;p;}' "${BASH_SOURCE[0]}"
                exit 0 ;;
            --check) check_only=1 ;;
            --no-install) install=0 ;;
            *) printf 'mkosi-env: error: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
        esac
        shift
    done

    ((EUID == 0)) || die "must run as root (mkosi, mknod and mount need it)"
    command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: Debian/Ubuntu hosts only"

    local problems=0

    # --- packages ---------------------------------------------------------
    local -A have=()
    local name status
    while IFS=' ' read -r name status; do
        [[ "$status" == "ii" ]] && have["${name%%:*}"]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${pkgs[@]}" 2>/dev/null || true)
    local -a missing=()
    local p
    for p in "${pkgs[@]}"; do
        [[ -n "${have[$p]:-}" ]] || missing+=("$p")
    done
    if ((${#missing[@]})); then
        if ((check_only || !install)); then
            log "missing packages: ${missing[*]}"
            problems=1
        else
            log "installing: ${missing[*]}"
            local -a apt_opts=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Use-Pty=0)
            DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update >/dev/null \
                || die "apt-get update failed"
            DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install \
                --no-install-recommends "${missing[@]}" >/dev/null \
                || die "apt-get install failed for: ${missing[*]}"
        fi
    fi
    if ((!check_only)) && command -v mkosi >/dev/null 2>&1; then
        local v
        v=$(mkosi --version 2>/dev/null | awk '{print $2}')
        [[ "$v" == 14* ]] || log "warning: mkosi $v found; this project's configs are written for mkosi 14"
    fi

    # --- host workarounds ---------------------------------------------------
    if [[ -d /run/systemd/system ]]; then
        log "systemd is PID 1: no workarounds needed beyond --nspawn-keep-unit"
    else
        local d=/run/systemd/inaccessible kind want_type actual
        if ((!check_only)); then
            mkdir -p "$d"
            chmod 0755 /run/systemd "$d" 2>/dev/null || true
        fi
        # kind -> the type `stat -c %F` reports
        for kind in reg dir fifo sock chr blk; do
            case "$kind" in
                reg)  want_type="regular empty file" ;;
                dir)  want_type="directory" ;;
                fifo) want_type="fifo" ;;
                sock) want_type="socket" ;;
                chr)  want_type="character special file" ;;
                blk)  want_type="block special file" ;;
            esac
            actual=$(stat -c '%F %a' "$d/$kind" 2>/dev/null || true)
            if [[ "$actual" == "$want_type 0" ]]; then
                continue
            fi
            if ((check_only)); then
                log "missing or wrong: $d/$kind (${actual:-absent})"
                problems=1
                continue
            fi
            if [[ -n "$actual" && "${actual% *}" != "$want_type" ]]; then
                rm -rf -- "${d:?}/$kind"
            fi
            if [[ ! -e "$d/$kind" ]]; then
                case "$kind" in
                    reg)  : >"$d/reg" ;;
                    dir)  mkdir "$d/dir" ;;
                    fifo) mkfifo "$d/fifo" ;;
                    sock) python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$d/sock" \
                              || die "cannot create socket $d/sock (python3 needed)" ;;
                    chr)  mknod "$d/chr" c 0 0 ;;
                    blk)  mknod "$d/blk" b 0 0 ;;
                esac
            fi
            chmod 000 "$d/$kind"
        done

        local n=/run/systemd/nspawn
        if [[ "$(findmnt -n -o FSTYPE --mountpoint "$n" 2>/dev/null | tail -n1)" == tmpfs ]]; then
            :
        elif ((check_only)); then
            log "no tmpfs mounted on $n"
            problems=1
        else
            mkdir -p "$n"
            mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$n" || die "cannot mount a tmpfs on $n"
            log "mounted tmpfs on $n"
        fi
    fi

    if ((problems)); then
        exit 1
    fi
    ((check_only)) && log "ok (nothing missing)"
    exit 0
)

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced.
    if _lake_mkosi_env "$@"; then
        export LAKE_MKOSI_ENV=ok
        export LAKE_MKOSI_ARGS="--nspawn-keep-unit"
        unset -f _lake_mkosi_env
        return 0
    else
        _lake_mkosi_env_rc=$?
        unset -f _lake_mkosi_env
        return "$_lake_mkosi_env_rc"
    fi
else
    _lake_mkosi_env "$@"
fi
