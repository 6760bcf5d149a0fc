#!/usr/bin/env bash
# ci/test.sh — the project's test command: set up, build, run every test.
#
# Usage: ci/test.sh [-h|--help] [--full] [CARGO TEST ARGS...]
#
# --full adds the longer matrix after everything below (what .ci/run leaves
# out to stay under an hour on 2 cores): the installed disk booted on NVMe,
# SATA (AHCI) and USB (ci/boot-matrix.sh, about 10 minutes), and the desktop
# profile built and booted to its graphical login with a screenshot checked to
# be non-blank (ci/boot-desktop.sh: docs/images/desktop-login.png, about 15 minutes).
#
# Installs missing Debian packages (ci/setup.sh), checks formatting
# (`cargo fmt --check`) and lints (`cargo clippy -D warnings`, the workspace's
# [workspace.lints]), builds the workspace in release mode, runs
# `cargo test --release --workspace`, then the .deb of the
# tools (ci/test-deb.sh, about a minute: lintian, man pages against --help,
# installed and used in a bookworm chroot; skip with LAKE_SKIP_DEB=1), then builds an
# image and boots it in QEMU/OVMF (ci/boot.sh; skip with LAKE_SKIP_BOOT=1 while
# iterating on the store), then runs the POSIX-zone end-to-end scenario on that
# image (ci/e2e-posix.sh, about 10 minutes: package hooks, rollback, boot
# counting and fallback; skip with LAKE_SKIP_E2E=1), then the install medium
# end to end (ci/e2e-iso.sh, about 9 minutes: ISO built twice with one
# checksum, unattended install from USB with an install configuration on a
# LAKECONFIG stick, the installed disk booted and logged into over SSH and on
# the serial console, the ISO as a CD booted; skip with LAKE_SKIP_ISO=1).
# The image these use is the server profile's (profiles/server.toml: the
# minimal one plus sshd, sudo, curl), so one mkosi build serves the SSH
# login too. Tests need root
# (device nodes, chown, loop devices, tmpfs mounts) and build or reuse a cached
# Debian bookworm rootfs (ci/debian-rootfs.sh, about 2 minutes the first time).
# Extra arguments go to `cargo test` (e.g. `ci/test.sh -- crash`).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;; esac
full=0
if [[ ${1:-} == --full ]]; then full=1; shift; fi
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/test.sh: run as root (the tests create device nodes and mount file systems)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
bash ci/setup.sh
# Style and lints first: they take a minute and fail before the slow parts.
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --release --workspace
cargo test --release --workspace "$@"
if [[ ${LAKE_SKIP_DEB:-0} != 1 ]]; then
    bash ci/test-deb.sh
fi
if [[ ${LAKE_SKIP_BOOT:-0} != 1 ]]; then
    # The server profile: the minimal system plus sshd and sudo, so the one
    # mkosi build also serves the SSH login of the installed system.
    bash ci/boot.sh --profile profiles/server.toml
    if [[ ${LAKE_SKIP_E2E:-0} != 1 ]]; then
        bash ci/e2e-posix.sh --image images/server.raw
    fi
    if [[ ${LAKE_SKIP_ISO:-0} != 1 ]]; then
        bash ci/e2e-iso.sh --profile profiles/server.toml
    fi
    if ((full)); then
        bash ci/boot-matrix.sh images/server.raw
        bash ci/boot-desktop.sh
    fi
fi
