#!/usr/bin/env bash
# regenerate.sh — rebuild the format-v1 fixture: lake.tar.gz, a small lake made
# by the current tools, and expected/, what the test reads back from it
# (crates/lakectl/tests/format_fixture.rs).
#
# RUN ONLY ON A DELIBERATE FORMAT CHANGE. The fixture stands for the lakes that
# exist on users' disks: if format_fixture fails, the change broke them. Fix the
# change (or add a migration and a new fixture next to this one), do not
# regenerate this one to make the test pass.
#
# Usage: crates/lakectl/tests/testdata/format-v1/regenerate.sh   (as root: FUSE, chown)
#   LAKE_BIN_DIR  the built tools (default: the repository's target/release;
#                 `cargo build --release -p lakectl -p lakefs` first)
#
# The lake holds: two commits on main of a tree with a multi-chunk file, a sparse
# file (8 MiB, two 4 KiB data extents), a hard link, a symlink, a non-UTF-8 name
# (caf\xe9.txt), an xattr, a private file and an empty directory; a POSIX-zone
# commit (loose objects) deployed as generation 1; volume home with a LAKE-zone
# commit made through a real lakefs mount. Packs, meta.db (checkpointed, no WAL),
# loose objects, refs, the volume's state: everything a v1 lake has.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../../../.." && pwd)
bin=${LAKE_BIN_DIR:-$repo/target/release}
[[ $EUID -eq 0 ]] || { echo "regenerate.sh: run as root (FUSE mount, chown)" >&2; exit 1; }
for b in lakectl lakefs; do [[ -x $bin/$b ]] || { echo "regenerate.sh: no $bin/$b (build it)" >&2; exit 1; }; done
work=$(mktemp -d)
mnt=$work/mnt
cleanup() { mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$work"; }
trap cleanup EXIT
export LAKE=$work/lake
lakectl() { "$bin/lakectl" -q "$@"; }
# Reproducible bytes (content need not be random, only chunkable).
bytes() { python3 -c "import random,sys; r=random.Random($1); sys.stdout.buffer.write(r.randbytes($2))"; }

lakectl init >/dev/null

# main: a tree with every kind of entry the store encodes.
src=$work/src
mkdir -p "$src/docs" "$src/empty"
echo 'hello lake' >"$src/hello.txt"
bytes 1 150000 >"$src/data.bin"                       # several FastCDC chunks, a chunk list
printf 'caf\xc3\xa9\n' >"$src/caf"$'\xe9'".txt"       # the name is Latin-1, not UTF-8
echo 'linked' >"$src/docs/link-a" && ln "$src/docs/link-a" "$src/link-b"
ln -s docs/link-a "$src/symlink"
echo 'secret' >"$src/private" && chmod 0600 "$src/private" && chown 1234:5678 "$src/private"
setfattr -n user.lake.note -v 'an xattr' "$src/hello.txt"
truncate -s 8M "$src/sparse.img"
bytes 2 4096 | dd of="$src/sparse.img" bs=4096 seek=256 conv=notrunc status=none    # at 1 MiB
bytes 3 4096 | dd of="$src/sparse.img" bs=4096 seek=1536 conv=notrunc status=none   # at 6 MiB
touch -h -d '2024-02-29 12:00:00 UTC' "$src"/* "$src"/docs/* "$src/symlink" "$src/docs" "$src/empty" "$src"
lakectl commit "$src" -m 'first: every kind of entry' >/dev/null
echo 'hello again' >"$src/hello.txt" && rm "$src/data.bin" && echo 'new' >"$src/docs/new.txt"
touch -h -d '2024-03-01 12:00:00 UTC' "$src/hello.txt" "$src/docs/new.txt" "$src/docs" "$src"
lakectl commit "$src" -m 'second: modified, deleted, added' >/dev/null

# posix/main and generation 1 (its checkout under deploy/1/root).
rootfs=$work/rootfs
mkdir -p "$rootfs/etc" "$rootfs/usr/bin"
printf 'PRETTY_NAME="Lake OS fixture"\nID=lakeos\n' >"$rootfs/etc/os-release"
printf '#!/bin/sh\necho tool\n' >"$rootfs/usr/bin/tool" && chmod 0755 "$rootfs/usr/bin/tool"
touch -h -d '2024-02-29 12:00:00 UTC' "$rootfs"/etc/* "$rootfs"/usr/bin/* "$rootfs"/etc "$rootfs"/usr/bin "$rootfs"/usr "$rootfs"
lakectl --zone posix commit "$rootfs" -m 'base system' >/dev/null
mkdir -p "$work/esp"
bytes 4 1000 >"$work/vmlinuz" && bytes 5 1000 >"$work/initrd"
lakectl --zone posix generation deploy --esp "$work/esp" --kernel "$work/vmlinuz" --initrd "$work/initrd" --tries 0 >/dev/null

# Volume home: a LAKE-zone file written through a real mount and committed.
mkdir -p "$mnt"
"$bin/lakefs" mount --name home "$LAKE" "$mnt"
mkdir "$mnt/ann"
echo 'notes of ann' >"$mnt/ann/notes.txt"
lakectl commit "$mnt/ann/notes.txt" -m 'ann: notes' >/dev/null
umount "$mnt"
# The daemon makes its final commit and closes meta.db after the unmount.
for _ in $(seq 100); do pgrep -f "lakefs mount --name home $LAKE" >/dev/null || break; sleep 0.1; done
[[ ! -e $LAKE/meta.db-wal || ! -s $LAKE/meta.db-wal ]] || echo "regenerate.sh: warning: meta.db-wal is not empty" >&2

rm -f "$here/lake.tar.gz"
tar --sparse --numeric-owner --xattrs --xattrs-include='*' -C "$work" -czf "$here/lake.tar.gz" lake
echo "regenerate.sh: $(du -k "$here/lake.tar.gz" | cut -f1) KiB $here/lake.tar.gz"
# expected/: what the test reads back from it, written by the test itself.
cd "$repo"
LAKE_FIXTURE_BLESS=1 cargo test --release -p lakectl --test format_fixture
git -C "$repo" status --short -- "$here"
