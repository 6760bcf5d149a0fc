#!/usr/bin/env bash
# ci/install.sh — install the built tools under their system names:
# lakectl and lakefs to PREFIX/bin; mkfs.lakefs, fsck.lakefs, mount.lakefs and
# lake-installer to PREFIX/sbin (so that `mkfs -t lakefs` and `fsck -t lakefs`
# find them; mount(8) looks for helpers in /sbin only, so with another PREFIX
# link /sbin/mount.lakefs to it). Cargo cannot name a binary with a dot, so they
# are built as mkfs-lakefs, fsck-lakefs and mount-lakefs. Their man pages and
# bash, zsh and fish completions go under PREFIX/share (ci/gen-docs.sh --install).
# A Debian package of the same: ci/build-deb.sh.
#
# Usage: ci/install.sh [--prefix DIR] [-h|--help]   (default prefix /usr/local)
set -euo pipefail
prefix=/usr/local
case "${1:-}" in
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
    --prefix) prefix=${2:?--prefix needs a directory} ;;
    "") ;;
    *) echo "ci/install.sh: unknown argument $1" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace
install -D -m 0755 target/release/lakectl "$prefix/bin/lakectl"
install -D -m 0755 target/release/mkfs-lakefs "$prefix/sbin/mkfs.lakefs"
install -D -m 0755 target/release/fsck-lakefs "$prefix/sbin/fsck.lakefs"
install -D -m 0755 target/release/lake-installer "$prefix/sbin/lake-installer"
install -D -m 0755 target/release/lakefs "$prefix/bin/lakefs"
install -D -m 0755 target/release/mount-lakefs "$prefix/sbin/mount.lakefs"
bash ci/gen-docs.sh --install "$prefix" target/release
echo "installed lakectl, lakefs, mkfs.lakefs, fsck.lakefs, mount.lakefs, lake-installer, their man pages and completions under $prefix"
