#!/usr/bin/env bash
# ci/build-deb.sh — a Debian package of the lake tools, `lake-tools`, that installs
# on an existing Debian 12 (bookworm) or 13 (trixie) machine:
#   /usr/bin/lakectl, /usr/bin/lakefs
#   /usr/sbin/mkfs.lakefs, fsck.lakefs, mount.lakefs (so `mount -t lakefs` finds it
#     as /sbin/mount.lakefs: /sbin is /usr/sbin on merged-/usr systems), lake-installer
#   their man pages (lakectl(1), lakectl-commit(1), ..., mkfs.lakefs(8), ...) and
#   bash, zsh and fish completions (ci/gen-docs.sh), and the copyright file.
# Depends: the shared libraries the binaries link (dpkg-shlibdeps: libc6, libgcc-s1)
# plus the programs they run: e2fsprogs (mke2fs, e2fsck, debugfs, resize2fs),
# fuse3 (fusermount3 and /etc/fuse.conf, for the FUSE /home), mount (mount,
# umount, losetup). Suggests what only lake-installer's image builds need.
#
# The archive is gzip-compressed: xz makes it 8 MiB instead of 18 but takes 40 s
# more of a 2-core CI.
#
# Usage: ci/build-deb.sh [--bin-dir DIR] [--out DIR] [--no-build] [-h|--help]
#   --bin-dir DIR  the built binaries (default target/release)
#   --out DIR      where the .deb goes (default target/deb); its path is printed last
#   --no-build     use the binaries as they are (default: cargo build --release them)
#
# Needs dpkg-deb and dpkg-shlibdeps (dpkg-dev). Runs as any user (files are
# owned by root in the package: --root-owner-group).
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;; esac
die() { echo "ci/build-deb.sh: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=$repo/target/release out=$repo/target/deb build=1
while (($#)); do
    case "$1" in
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        --no-build) build=0 ;;
        *) echo "ci/build-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
bin_dir=$(realpath -m "$bin_dir") out=$(realpath -m "$out")
cd "$repo"
for c in dpkg-deb dpkg-shlibdeps strip gzip; do
    command -v "$c" >/dev/null || die "$c not found (apt-get install dpkg-dev binutils)"
done
if ((build)); then
    export PATH="$HOME/.cargo/bin:$PATH"
    cargo build --release -p lakectl -p lakefs -p lake-installer
fi

readonly PACKAGE=lake-tools
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[[ -n $version ]] || die "no [workspace.package] version in Cargo.toml"
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/sbin" "$root/usr/share/doc/$PACKAGE"

# cargo's name : installed path
bins=()
for pair in lakectl:usr/bin/lakectl lakefs:usr/bin/lakefs mkfs-lakefs:usr/sbin/mkfs.lakefs \
            fsck-lakefs:usr/sbin/fsck.lakefs mount-lakefs:usr/sbin/mount.lakefs \
            lake-installer:usr/sbin/lake-installer; do
    src=$bin_dir/${pair%%:*} dst=$root/${pair#*:}
    [[ -x $src ]] || die "$src is missing (build it, or drop --no-build)"
    install -m 0755 "$src" "$dst"
    # What dh_strip does for executables: no debug info, no .comment/.note.
    strip --remove-section=.comment --remove-section=.note "$dst"
    bins+=("$dst")
done
bash ci/gen-docs.sh --gzip --install "$root/usr" "$bin_dir" >/dev/null

# Built statically from the workspace and its crates: one copyright file for all.
cat >"$root/usr/share/doc/$PACKAGE/copyright" <<'COPYRIGHT'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Lake OS
Comment: The binaries also contain Rust crates from crates.io, linked statically,
 under their own licenses (MIT, Apache-2.0, BSD, Unlicense, Zlib; SQLite is in
 the public domain); Cargo.lock in the source lists them.

Files: *
Copyright: Lake OS developers
License: Expat or Apache-2.0

License: Expat
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN
 THE SOFTWARE.

License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT
date=$(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
printf '%s (%s) unstable; urgency=medium\n\n  * Built from the Lake OS repository (%s).\n\n -- Lake OS developers <lakeos@example.org>  %s\n' \
    "$PACKAGE" "$version" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$date" \
    | gzip -9n >"$root/usr/share/doc/$PACKAGE/changelog.gz"

# dpkg-shlibdeps wants a source tree: a debian/control naming the package.
mkdir -p "$stage/src/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$PACKAGE" "$PACKAGE" >"$stage/src/debian/control"
shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O "${bins[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no shared-library dependencies of ${bins[*]}"

installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: $PACKAGE
Version: $version
Architecture: $arch
Maintainer: Lake OS developers <lakeos@example.org>
Installed-Size: $installed_size
Depends: $shlibs, e2fsprogs, fuse3, mount
Suggests: systemd-boot-efi, xorriso
Section: admin
Priority: optional
Homepage: https://example.org/lakeos
Description: Lake OS tools: a content-addressed, versioned file store
 The lake stores file trees content-addressed (BLAKE3, FastCDC chunks) and
 versioned (commits, refs), indexed in SQLite. These tools work with lakes on
 an existing system:
  lakectl         init, commit, log, diff, checkout, verify, restore, search
  lakefs          serve a lake volume (such as /home) over FUSE with history
  mount.lakefs    the mount(8) helper: mount -t lakefs LAKE DIR -o name=NAME
  mkfs.lakefs     format a device or image file as a lake partition
  fsck.lakefs     check a lake and every object in it
  lake-installer  install Lake OS onto a disk or a disk image
CONTROL
(cd "$root" && find usr -type f | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/${PACKAGE}_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
echo "ci/build-deb.sh: $(du -h "$deb" | cut -f1) $deb (Depends: $shlibs, e2fsprogs, fuse3, mount)"
echo "$deb"
