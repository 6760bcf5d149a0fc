#!/usr/bin/env bash
# ci/setup.sh — install what Lake OS needs to build and test (idempotent).
#
# Usage: ci/setup.sh [--check] [-h|--help]
#
#   (no args)  Install every missing Debian package listed below, then make
#              sure a Rust toolchain (cargo) is available.
#   --check    Install nothing; only report what is missing. Exits 1 if
#              anything is missing.
#   -h, --help Show this help.
#
# Idempotent and fast: packages are checked with dpkg-query first, and
# `apt-get update` / `apt-get install` only run when something is missing,
# so a second run takes well under 2 seconds.
#
# The Rust toolchain cannot be installed here (no network access to the
# rustup servers); the script only looks for `cargo` on PATH or in
# ~/.cargo/bin and fails with a clear message if there is none.
#
# Also installs pjdfstest 0.2.2 (cargo install) into target/tools/bin when missing.
#
# Environment:
#   LAKE_EXTRA_APT_PACKAGES  space-separated extra packages to ensure too.
#
# Exit status: 0 ok, 1 something missing / install failed, 2 usage error.
set -euo pipefail

readonly APT_PACKAGES=(
    build-essential pkg-config
    e2fsprogs dosfstools mtools gdisk fdisk util-linux
    debootstrap fuse3 fusefat attr acl zstd xxd
    ostree restic borgbackup hyperfine bindfs fuse-overlayfs
    python3 ca-certificates curl
    debian-archive-keyring cpio
    qemu-system-x86 ovmf systemd-boot-efi xorriso sbsigntool
    dpkg-dev lintian man-db
)

# Commands that must be runnable once the packages above are in place.
# Checked against PATH plus the sbin directories (non-root PATHs lack them).
readonly REQUIRED_COMMANDS=(
    cc make pkg-config mkfs.ext4 mkfs.vfat mcopy sgdisk sfdisk losetup
    debootstrap fusermount3 fusefat getfattr setfattr setfacl zstd xxd ostree restic borg
    bindfs fuse-overlayfs hyperfine python3 curl tar
    dpkg-deb dpkg-shlibdeps lintian man sbattach sbverify
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }

check_only=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --check) check_only=1 ;;
        *) printf 'setup: error: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done

command -v dpkg-query >/dev/null 2>&1 \
    || die "dpkg-query not found: this script supports Debian/Ubuntu only"

packages=("${APT_PACKAGES[@]}")
if [[ -n "${LAKE_EXTRA_APT_PACKAGES:-}" ]]; then
    read -r -a extra <<<"$LAKE_EXTRA_APT_PACKAGES"
    packages+=("${extra[@]}")
fi

# One dpkg-query call for all packages. Unknown packages produce no line
# (and an error on stderr, which we ignore); "ii " means fully installed.
declare -A installed=()
while IFS=' ' read -r name status; do
    [[ "$status" == "ii" ]] && installed["${name%%:*}"]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null || true)

missing=()
for p in "${packages[@]}"; do
    [[ -n "${installed[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all ${#packages[@]} apt packages already installed"
elif ((check_only)); then
    log "missing apt packages: ${missing[*]}"
else
    log "installing missing apt packages: ${missing[*]}"
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 \
            || die "not root and sudo not found; cannot install: ${missing[*]}"
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_opts=(-q -y -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" update \
        || die "apt-get update failed (check /etc/apt/sources.list and /etc/apt/sources.list.d/)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" \
        install --no-install-recommends "${missing[@]}" \
        || die "apt-get install failed for: ${missing[*]}"
    missing=()
fi

# Sanity: the commands the build and tests call.
search_path="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
missing_cmds=()
for c in "${REQUIRED_COMMANDS[@]}"; do
    PATH="$search_path" command -v "$c" >/dev/null 2>&1 || missing_cmds+=("$c")
done
if ((${#missing_cmds[@]})); then
    log "commands not found after setup: ${missing_cmds[*]}"
fi

# Rust toolchain.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rust_ok=1
if command -v cargo >/dev/null 2>&1; then
    log "cargo: $(command -v cargo) ($(cargo --version 2>/dev/null || echo 'version unknown'))"
elif [[ -x "$cargo_home/bin/cargo" ]]; then
    log "cargo found at $cargo_home/bin/cargo but $cargo_home/bin is not on PATH"
    log "hint: export PATH=\"$cargo_home/bin:\$PATH\"   (or: . \"$cargo_home/env\")"
else
    if [[ -d "$cargo_home/bin" ]]; then
        log "hint: $cargo_home/bin exists but has no cargo; try: rustup default stable"
    fi
    log "Rust toolchain not found: no 'cargo' on PATH and no $cargo_home/bin/cargo."
    log "Install Rust with rustup (https://rustup.rs) or Debian's 'cargo' package; this"
    log "script cannot download a toolchain."
    rust_ok=0
fi

# pjdfstest (POSIX conformance suite run against the lakefs FUSE mount by
# crates/lake-volume/tests/fuse_pjdfstest.rs), built from crates.io into target/tools.
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pjdfstest_bin="$repo/target/tools/bin/pjdfstest"
pjdfstest_ok=1
if [[ -x "$pjdfstest_bin" ]]; then
    log "pjdfstest: $pjdfstest_bin"
elif ((check_only)); then
    log "missing: pjdfstest ($pjdfstest_bin)"
    pjdfstest_ok=0
elif ((rust_ok)); then
    cargo_cmd="$(command -v cargo || echo "$cargo_home/bin/cargo")"
    log "installing pjdfstest 0.2.2 into $repo/target/tools"
    "$cargo_cmd" install pjdfstest --version 0.2.2 --locked --root "$repo/target/tools" \
        || { log "cargo install pjdfstest failed"; pjdfstest_ok=0; }
fi

if ((${#missing[@]} || ${#missing_cmds[@]} || !rust_ok || !pjdfstest_ok)); then
    die "setup incomplete (see messages above)"
fi
log "ok"
