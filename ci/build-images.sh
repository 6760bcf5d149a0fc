#!/usr/bin/env bash
# ci/build-images.sh — build the Lake OS root file system and initramfs with mkosi 25.
#
# Usage: ci/build-images.sh [--rootfs-only|--initrd-only] [--bin-dir DIR] [--no-strip]
#                           [--cache DIR] [--json] [-h|--help]
#
# Outputs (images/build/, git-ignored):
#   rootfs/              the root file system tree (mkosi.conf at the repository root)
#   rootfs.manifest      its package list (JSON)
#   apt/                 the apt sources both builds use (sandbox/) and the one the
#                        image gets (image/etc/apt/sources.list.d/debian.sources)
#   vmlinuz              the kernel, copied from rootfs/boot/vmlinuz-KVER
#   kernel-version       KVER
#   initrd.cpio.zst      the initramfs (crates/lake-initramfs/mkosi/mkosi.conf)
#   initrd.manifest
#   logs/rootfs.log, logs/initrd.log   full mkosi output
#
# Steps:
#   1. ci/mkosi-env.sh: installs the host packages if missing and fetches +
#      unpacks Debian trixie's mkosi 25 (it runs from the unpacked .deb here).
#      The apt sources are written here, not left to mkosi: its defaults add the
#      debian-debug archive (the build hosts' mirror answers it with HTTP 400)
#      and deb-src lines nothing needs.
#   2. (--bin-dir DIR) copies the workspace binaries from DIR (e.g. target/release):
#      lakectl, mkfs-lakefs -> mkfs.lakefs, fsck-lakefs -> fsck.lakefs,
#      lakefs (the LAKE-zone FUSE daemon: lakefs.service mounts /home with it),
#      mount-lakefs -> mount.lakefs, lake-installer (the install medium's live system
#      runs it) (those present) into mkosi.extra/usr/local/bin/,
#      with their man pages and shell completions (ci/gen-docs.sh) in
#      mkosi.extra/usr/local/share/, and lake-initramfs into
#      crates/lake-initramfs/mkosi/mkosi.extra/usr/bin/;
#      debug info is stripped from the copies unless --no-strip. Without
#      --bin-dir, whatever is already there is used (the orchestrator's copies);
#      if the initramfs has no /usr/bin/lake-initramfs at all, the stand-in
#      (crates/lake-initramfs/mkosi/lake-initramfs-stand-in.sh: prints a message,
#      exits 1, so boots end in the emergency shell) is put there, with a warning.
#   3. mkosi --force build of the rootfs, then of the initramfs (each timed;
#      --force replaces the previous outputs). The initramfs takes its kernel
#      modules from the rootfs just built (an extra tree of its /usr/lib/modules),
#      so the two cannot disagree on the kernel.
#   4. Checks: exactly one kernel in the rootfs; its config has CONFIG_RD_ZSTD=y;
#      the initramfs's /usr/lib/modules/KVER and the version inside vmlinuz equal
#      the rootfs's KVER. Any mismatch fails the run (exit 1).
#
# Options:
#   --rootfs-only   build only the rootfs (and refresh vmlinuz, kernel-version)
#   --initrd-only   build only the initramfs (from the existing rootfs's modules)
#   --bin-dir DIR   copy the workspace binaries from DIR first (see 2.)
#   --no-strip      copy them as they are
#   --cache DIR     package cache root (default $LAKE_CACHE/mkosi, LAKE_CACHE
#                   defaulting to /var/cache/lakeos); mkosi keeps the .debs
#                   there, shared by both builds, so re-builds download nothing
#                   that did not change
#   --json          print one JSON line with timings and sizes at the end
# Environment (lake-installer build sets them from the profile):
#   LAKE_RELEASE=trixie        the Debian release of both builds (profile: release)
#   LAKE_COMPONENTS=main,...   archive components (profile: packages.components;
#                              non-free-firmware for firmware packages)
#   LAKE_EXTRA_PACKAGES=a,b    Debian packages added to the rootfs (packages.extra)
#   LAKE_NETWORK=networkd      networkd or networkmanager (mkosi.postinst.chroot)
#   LAKE_DEBIAN_MIRROR         the archive (default http://deb.debian.org/debian;
#                              security updates from .../debian-security beside it)
#   LAKE_MKOSI_ARGS            extra mkosi options for both builds
# The rootfs also gets the repository's zones.toml as /etc/lake/zones.toml.
#                   (human-readable progress goes to stderr)
#
# Needs root. Typical times on a 2-core build host with a warm package cache:
# rootfs ~1.5 min, initramfs ~1 min.
# Exit status: 0 ok, 1 build or check failed, 2 usage error.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/images/build
initrd_dir=$repo/crates/lake-initramfs/mkosi
rootfs_bin=$repo/mkosi.extra/usr/local/bin
initrd_prog=$initrd_dir/mkosi.extra/usr/bin/lake-initramfs
stand_in=$initrd_dir/lake-initramfs-stand-in.sh

do_rootfs=1 do_initrd=1 json=0 strip=1 bin_dir=""
cache=${LAKE_CACHE:-/var/cache/lakeos}/mkosi

usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
log() { printf 'build-images: %s\n' "$*" >&2; }
die() { printf 'build-images: error: %s\n' "$*" >&2; exit 1; }

while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --rootfs-only) do_initrd=0 ;;
        --initrd-only) do_rootfs=0 ;;
        --json) json=1 ;;
        --no-strip) strip=0 ;;
        --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
        --bin-dir=*) bin_dir=${1#--bin-dir=} ;;
        --cache) cache=${2:?--cache needs a directory}; shift ;;
        --cache=*) cache=${1#--cache=} ;;
        *) printf 'build-images: error: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
    esac
    shift
done
((do_rootfs || do_initrd)) || { echo "build-images: error: --rootfs-only and --initrd-only exclude each other" >&2; exit 2; }
((EUID == 0)) || die "must run as root (mkosi needs it)"

release=${LAKE_RELEASE:-trixie}
mirror=${LAKE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
components=()
IFS=, read -r -a comps <<<"${LAKE_COMPONENTS:-main}"
for c in "${comps[@]}"; do [[ -n $c ]] && components+=("$c"); done
[[ ${#components[@]} -gt 0 && ${components[0]} == main ]] || die "LAKE_COMPONENTS must start with main (got '${LAKE_COMPONENTS:-}')"
[[ $release =~ ^[a-z]+$ ]] || die "LAKE_RELEASE '$release' is not a Debian release code name (e.g. trixie)"

# 1. host set-up (packages, mkosi 25)
# shellcheck source=ci/mkosi-env.sh
source "$repo/ci/mkosi-env.sh" || die "ci/mkosi-env.sh failed"
read -r -a mkosi <<<"$LAKE_MKOSI"
read -r -a mkosi_args <<<"${LAKE_MKOSI_ARGS:-}"
mkosi_args+=(--force --release="$release" --package-cache-directory="$cache" --output-directory="$out"
             --sandbox-tree="$out/apt/sandbox")

mkdir -p "$out/logs" "$cache"

# The apt sources: the release, its -updates and its security archive (beside
# the mirror, as the build hosts' mirrors serve it), deb lines only. mkosi's apt
# reads the sandbox copy; the image carries the same file as
# /etc/apt/sources.list.d/debian.sources for `apt update` on the running system.
write_sources() { # FILE
    mkdir -p "$(dirname "$1")"
    cat >"$1" <<EOF
Types: deb
URIs: $mirror
Suites: $release $release-updates
Components: ${components[*]}
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: $release-security
Components: ${components[*]}
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}
rm -rf "$out/apt"
write_sources "$out/apt/sandbox/etc/apt/sources.list.d/mkosi.sources"
write_sources "$out/apt/image/etc/apt/sources.list.d/debian.sources"
# One build at a time per work tree (the outputs and mkosi's workspaces are shared).
exec 9>"$out/.build-images.lock"
flock -n 9 || { log "another build-images.sh is running in $repo; waiting"; flock 9; }
# Leftover mkosi workspaces from an interrupted run (mkosi puts them next to the output).
rm -rf "$out"/.mkosi-* 2>/dev/null || true

# 2. binaries
copy_bin() { # SRC DEST
    if ((strip)) && command -v strip >/dev/null 2>&1 && head -c4 "$1" | grep -q ELF; then
        install -m 0755 "$1" "$2.tmp" && strip --strip-debug "$2.tmp" && mv -f "$2.tmp" "$2"
    else
        install -m 0755 "$1" "$2"
    fi
}
if [[ -n "$bin_dir" ]]; then
    [[ -d "$bin_dir" ]] || die "--bin-dir $bin_dir is not a directory"
    copied=()
    for pair in lakectl:lakectl mkfs-lakefs:mkfs.lakefs fsck-lakefs:fsck.lakefs lakefs:lakefs mount-lakefs:mount.lakefs \
                mkfs.lakefs:mkfs.lakefs fsck.lakefs:fsck.lakefs mount.lakefs:mount.lakefs \
                lake-installer:lake-installer; do
        src=$bin_dir/${pair%%:*} dst=$rootfs_bin/${pair#*:}
        if [[ -f "$src" && -x "$src" ]]; then
            copy_bin "$src" "$dst"; copied+=("${pair#*:}")
        fi
    done
    ((${#copied[@]})) || die "no lake tools (lakectl, mkfs-lakefs, fsck-lakefs) in $bin_dir"
    log "rootfs tools from $bin_dir: ${copied[*]}"
    # Their man pages and completions, next to them under /usr/local/share.
    if [[ -x $rootfs_bin/lakectl && -x $rootfs_bin/lakefs && -x $rootfs_bin/mkfs.lakefs && -x $rootfs_bin/fsck.lakefs \
          && -x $rootfs_bin/mount.lakefs && -x $rootfs_bin/lake-installer ]]; then
        bash "$repo/ci/gen-docs.sh" --install "$repo/mkosi.extra/usr/local" "$rootfs_bin" >&2
    else
        log "WARNING: not every lake tool is in $bin_dir: no man pages or completions in the image"
    fi
    if [[ -f "$bin_dir/lake-initramfs" && -x "$bin_dir/lake-initramfs" ]]; then
        mkdir -p "$(dirname "$initrd_prog")"
        copy_bin "$bin_dir/lake-initramfs" "$initrd_prog"
        log "initramfs program from $bin_dir/lake-initramfs"
    fi
fi

# 3. builds
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
run_mkosi() { # NAME DIR [EXTRA MKOSI ARGS...]
    local name=$1 dir=$2 t0 rc=0
    shift 2
    t0=$(now)
    local where=${dir#"$repo"/}
    [[ "$dir" == "$repo" ]] && where=.
    log "building $name (mkosi in $where; log: images/build/logs/$name.log)"
    (cd "$dir" && PYTHONUNBUFFERED=1 "${mkosi[@]}" "${mkosi_args[@]}" "$@" build) >"$out/logs/$name.log" 2>&1 || rc=$?
    if ((rc != 0)); then
        tail -n 40 "$out/logs/$name.log" >&2
        die "$name build failed (mkosi exit $rc); full log: $out/logs/$name.log"
    fi
    build_secs[$name]=$(secs "$t0" "$(now)")
    log "$name built in ${build_secs[$name]} s"
}
declare -A build_secs=()
t_start=$(now)

# The version string inside a bzImage (setup header: kernel_version at 0x20e,
# an offset from 0x200), e.g. "6.1.0-56-amd64".
bzimage_version() {
    python3 - "$1" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read(0x10000)
if d[0x202:0x206] != b"HdrS":
    sys.exit("not a bzImage")
off = struct.unpack_from("<H", d, 0x20e)[0] + 0x200
print(d[off:d.index(b"\0", off)].decode().split()[0])
EOF
}

kver=""
if ((do_rootfs)); then
    # The default zone map goes into the image as /etc/lake/zones.toml.
    install -D -m 0644 "$repo/zones.toml" "$repo/mkosi.extra/etc/lake/zones.toml"
    # A profile's packages.extra (lake-installer build passes them comma-separated).
    extra=()
    IFS=, read -r -a pkgs <<<"${LAKE_EXTRA_PACKAGES:-}"
    for p in "${pkgs[@]}"; do [[ -n $p ]] && extra+=("--package=$p"); done
    ((${#extra[@]} == 0)) || log "extra packages from the profile: ${pkgs[*]}"
    run_mkosi rootfs "$repo" "${extra[@]}" --extra-tree="$out/apt/image" \
        --environment=LAKE_NETWORK="${LAKE_NETWORK:-networkd}"
    mapfile -t kvers < <(ls -1 "$out/rootfs/usr/lib/modules" 2>/dev/null)
    ((${#kvers[@]} == 1)) || die "expected one kernel in rootfs/usr/lib/modules, found: ${kvers[*]:-none}"
    kver=${kvers[0]}
    [[ -f "$out/rootfs/boot/vmlinuz-$kver" ]] || die "rootfs has no /boot/vmlinuz-$kver"
    grep -qx 'CONFIG_RD_ZSTD=y' "$out/rootfs/boot/config-$kver" \
        || die "kernel $kver lacks CONFIG_RD_ZSTD=y: it cannot unpack initrd.cpio.zst"
    install -m 0644 "$out/rootfs/boot/vmlinuz-$kver" "$out/vmlinuz.tmp"
    mv -f "$out/vmlinuz.tmp" "$out/vmlinuz"
    rm -f "$out/rootfs.vmlinuz"   # mkosi's copy of the same kernel
    # `man lakectl` must work in the image: man-db finds /usr/local/share/man,
    # and groff needs its /usr/share/groff (mkosi's WithDocs=no drops it).
    if [[ -x $out/rootfs/usr/local/bin/lakectl ]]; then
        page=$(chroot "$out/rootfs" /usr/bin/man -P cat lakectl 2>&1) || true
        grep -q '^NAME' <<<"$page" \
            || die "the image's man cannot show lakectl(1) (man-db and groff's /usr/share/groff in the rootfs? /usr/local/share/man/man1/lakectl.1?)"
        [[ -f $out/rootfs/usr/share/bash-completion/bash_completion ]] \
            || die "the image has no bash-completion (mkosi.conf Packages): the lake tools' completions would not load"
    fi
    # agetty runs /bin/login; trixie's login is no longer Essential, so
    # without it the console's login prompt cannot log anybody in.
    [[ -x $out/rootfs/usr/bin/login ]] \
        || die "the image has no /usr/bin/login (package login in mkosi.conf Packages): nobody could log in on a console"
    echo "$kver" >"$out/kernel-version"
elif [[ -f "$out/kernel-version" ]]; then
    kver=$(<"$out/kernel-version")
fi
if [[ -f "$out/vmlinuz" && -n "$kver" ]]; then
    vv=$(bzimage_version "$out/vmlinuz") || die "cannot read the version of $out/vmlinuz"
    [[ "$vv" == "$kver" ]] || die "images/build/vmlinuz is $vv but kernel-version says $kver"
fi

program=unknown
if ((do_initrd)); then
    if [[ ! -e "$initrd_prog" ]]; then
        log "WARNING: no $initrd_prog (the orchestrator or --bin-dir puts the real program there):"
        log "WARNING: using the stand-in; this initramfs will stop in the emergency shell"
        mkdir -p "$(dirname "$initrd_prog")"
        install -m 0755 "$stand_in" "$initrd_prog"
    fi
    [[ -x "$initrd_prog" ]] || die "$initrd_prog is not executable"
    if cmp -s "$initrd_prog" "$stand_in"; then program=stand-in; else program=real; fi
    [[ -n $kver && -d "$out/rootfs/usr/lib/modules/$kver" ]] \
        || die "no rootfs kernel modules in $out/rootfs/usr/lib/modules: the initramfs takes them from there (build the rootfs first)"
    run_mkosi initrd "$initrd_dir" --extra-tree="$out/rootfs/usr/lib/modules:/usr/lib/modules"
    [[ -s "$out/initrd.cpio.zst" ]] || die "mkosi did not write $out/initrd.cpio.zst"
    listing=$(zstd -dc "$out/initrd.cpio.zst" | cpio -it --quiet 2>/dev/null) \
        || die "$out/initrd.cpio.zst is not a zstd-compressed cpio archive"
    mapfile -t ikvers < <(grep -E '^usr/lib/modules/[^/]+$' <<<"$listing" | sed 's#^usr/lib/modules/##')
    ((${#ikvers[@]} == 1)) || die "expected one kernel in the initramfs, found: ${ikvers[*]:-none}"
    for f in init etc/initrd-release usr/bin/lake-initramfs usr/lib/systemd/system/lake-initramfs.service; do
        grep -qx "$f" <<<"$listing" || die "the initramfs lacks /$f"
    done
    # Only lake-initramfs.service is enabled (00-lake-initramfs.preset).
    others=$(grep -E '^etc/systemd/system/[^/]+\.(wants|requires)/' <<<"$listing" | grep -v '/lake-initramfs\.service$' || true)
    [[ -z $others ]] || die "the initramfs enables units besides lake-initramfs.service: $(echo $others)"
    [[ "${ikvers[0]}" == "$kver" ]] \
        || die "KERNEL MISMATCH: initramfs modules are for ${ikvers[0]}, the rootfs kernel (images/build/vmlinuz) is $kver"
    grep -q "^usr/lib/modules/$kver/vmlinuz$" <<<"$listing" && die "the initramfs carries a kernel image (usr/lib/modules/$kver/vmlinuz)"

fi
total=$(secs "$t_start" "$(now)")

# 4. report
rootfs_bytes=null rootfs_files=null initrd_bytes=null vmlinuz_bytes=null
if [[ -d "$out/rootfs" ]]; then
    rootfs_bytes=$(du -sb "$out/rootfs" | cut -f1)
    rootfs_files=$(find "$out/rootfs" -xdev | wc -l)
fi
[[ -f "$out/initrd.cpio.zst" ]] && initrd_bytes=$(stat -c %s "$out/initrd.cpio.zst")
[[ -f "$out/vmlinuz" ]] && vmlinuz_bytes=$(stat -c %s "$out/vmlinuz")
mib() { if [[ "$1" == null ]]; then echo "-"; else awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; fi; }

if ((json)); then
    printf '{"kernel_version":"%s","rootfs":{"built":%s,"seconds":%s,"path":"%s","bytes":%s,"entries":%s},' \
        "$kver" "$([[ -n "${build_secs[rootfs]:-}" ]] && echo true || echo false)" "${build_secs[rootfs]:-null}" \
        "$out/rootfs" "$rootfs_bytes" "$rootfs_files"
    printf '"initrd":{"built":%s,"seconds":%s,"path":"%s","bytes":%s,"program":"%s"},' \
        "$([[ -n "${build_secs[initrd]:-}" ]] && echo true || echo false)" "${build_secs[initrd]:-null}" \
        "$out/initrd.cpio.zst" "$initrd_bytes" "$program"
    printf '"vmlinuz":{"path":"%s","bytes":%s},"total_seconds":%s}\n' "$out/vmlinuz" "$vmlinuz_bytes" "$total"
else
    echo "kernel   $kver"
    [[ -n "${build_secs[rootfs]:-}" ]] && echo "rootfs   images/build/rootfs  $(mib "$rootfs_bytes"), $rootfs_files entries, built in ${build_secs[rootfs]} s"
    [[ -n "${build_secs[initrd]:-}" ]] && echo "initrd   images/build/initrd.cpio.zst  $(mib "$initrd_bytes"), lake-initramfs: $program, built in ${build_secs[initrd]} s"
    [[ -f "$out/vmlinuz" ]] && echo "vmlinuz  images/build/vmlinuz  $(mib "$vmlinuz_bytes")"
    echo "total    $total s"
fi
