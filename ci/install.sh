#!/usr/bin/env bash
# ci/install.sh — install the built tools under their system names:
# lakectl to PREFIX/bin; mkfs.lakefs, fsck.lakefs and lake-installer to PREFIX/sbin (so that
# `mkfs -t lakefs` and `fsck -t lakefs` find them). Cargo cannot name a binary
# with a dot, so they are built as mkfs-lakefs and fsck-lakefs.
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
echo "installed lakectl, mkfs.lakefs, fsck.lakefs, lake-installer under $prefix"
