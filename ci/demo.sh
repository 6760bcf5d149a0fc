#!/usr/bin/env bash
# ci/demo.sh — the main job for now: import a real Debian rootfs into a lake,
# change it as a package upgrade would, commit only the change, then show log,
# diff, verify and stats; finally format an ext4 lake image with mkfs.lakefs and
# check it with fsck.lakefs.
#
# Usage: ci/demo.sh [--work DIR] [--json] [-h|--help]
#   --work DIR  where to put the rootfs, the lake and the image
#               (default /var/tmp/lake-demo; emptied first)
#   --json      print a JSON summary on the last line
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
work=/var/tmp/lake-demo json=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) work=${2:?--work needs a directory}; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ci/demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/demo.sh: run as root (the rootfs has device nodes and root-owned files)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "setting up and building"
bash ci/setup.sh
cargo build --release --workspace
bin=$PWD/target/release
rm -rf "$work" && mkdir -p "$work"
lake=("$bin/lakectl" --lake "$work/lake")

step "a real Debian bookworm rootfs"
bash ci/debian-rootfs.sh --extract "$work/rootfs"

step "lakectl init + commit (full import)"
"${lake[@]}" init
first=$("${lake[@]}" commit "$work/rootfs" --scope zone:posix --trigger demo -m "Debian bookworm rootfs")

step "change the tree as an upgrade would, commit only the changed paths"
echo lake-demo > "$work/rootfs/etc/hostname"
mkdir -p "$work/rootfs/opt/demo"
cp "$bin/lakectl" "$work/rootfs/opt/demo/lakectl"
rm -f "$work/rootfs/usr/share/doc/bash/README"
printf '%s\n' etc/hostname opt/demo usr/share/doc/bash/README > "$work/changed"
second=$("${lake[@]}" commit "$work/rootfs" --changed "$work/changed" --scope zone:posix --trigger demo -m "hostname, /opt/demo")

step "lakectl log"
"${lake[@]}" log
step "lakectl diff main~1 main"
"${lake[@]}" diff main~1 main
step "lakectl cat /etc/hostname@main~1"
"${lake[@]}" cat /etc/hostname@main~1
step "lakectl verify"
"${lake[@]}" verify
step "lakectl stats"
"${lake[@]}" stats

step "mkfs.lakefs: an ext4 lake image populated from the rootfs (no loop device)"
"$bin/mkfs-lakefs" --size 2G --populate "$work/rootfs" --yes "$work/lake.img"
step "fsck.lakefs on the image"
"$bin/fsck-lakefs" "$work/lake.img"

if [[ $json -eq 1 ]]; then
    printf '{"work":"%s","first":"%s","second":"%s","image":"%s"}\n' "$work" "$first" "$second" "$work/lake.img"
fi
