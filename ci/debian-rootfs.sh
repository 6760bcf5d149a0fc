#!/usr/bin/env bash
# ci/debian-rootfs.sh — a real Debian bookworm rootfs as a test fixture.
#
# Usage:
#   ci/debian-rootfs.sh [--out TARBALL] [--json] [--force]
#   ci/debian-rootfs.sh --extract DEST [--out TARBALL] [--no-special]
#   ci/debian-rootfs.sh --add-special DEST
#   ci/debian-rootfs.sh --check DEST
#   ci/debian-rootfs.sh -h|--help
#
# Modes:
#   (default)          Build the tarball, or reuse it if it already exists and
#                      is newer than this script, or TARBALL.stamp records
#                      this script's sha256 ("reusing ..."). Prints the
#                      path and the number of archive entries at the end.
#   --json             Print one JSON line instead:
#                      {"tarball":"...","files":N,"bytes":N}
#   --force            Rebuild even if a fresh tarball exists.
#                      Concurrent runs share one build: the others wait on
#                      the lock DIR/.debian-rootfs.lock, then reuse it.
#   --extract DEST     Build/reuse the tarball, extract it into DEST exactly
#                      (tar -xpf --xattrs --xattrs-include='*' --numeric-owner
#                      --same-owner), then run --add-special on DEST so the
#                      special files tar cannot carry (the unix socket) exist.
#                      DEST must not exist or be an empty directory.
#   --no-special       With --extract: skip the --add-special step (a plain
#                      tar round trip, e.g. to test what tar preserves).
#   --add-special DEST Create, under DEST/opt/lake-test/, every special file
#                      kind listed below that is missing. Existing entries are
#                      left alone, so on a freshly extracted tree this only
#                      creates the socket. DEST is the root of a rootfs tree.
#   --check DEST       Verify DEST/opt/lake-test/ has every kind below with the
#                      expected type, owner, mode, xattrs, mtime, link count
#                      and content. Exit 1 and list the problems otherwise.
#
# The tree is `debootstrap --variant=minbase` of bookworm plus the packages
# in ROOTFS_INCLUDE (about 18k entries, about 450 MiB; build takes ~2 min),
# from the Debian mirror configured in /etc/apt (or $LAKE_DEBIAN_MIRROR).
# /var/cache/apt/archives/*.deb is removed before archiving.
#
# /opt/lake-test/ then gets one of every file kind a backup tool must handle:
#   cap-file          security.capability xattr (cap_net_raw=ep)
#   xattr-file        user.lake.test="hello lake" and a binary user xattr
#   xattr-dir/        directory with a user xattr
#   fifo              named pipe
#   socket            unix domain socket (not in the tarball: GNU tar skips sockets)
#   blockdev          block device 7,0  (loop0)
#   chardev           char device 1,3   (null)
#   hardlink-a/-b     two names, one inode
#   dangling-symlink  -> /nonexistent/lake-target
#   owned-1234-5678   owned by uid 1234 gid 5678
#   setuid-file       mode 4755
#   setgid-sticky-dir/ mode 3775
#   mtime-1999        mtime 1999-12-31 23:59:59 UTC
#   empty-dir/        empty directory
#   random-5M         5 MiB of seeded (reproducible) pseudo-random bytes,
#                     its sha256 in random-5M.sha256
#   name with spaces é.txt, a >100-char deep path (long-name/...)
#   MANIFEST          this list
#
# GNU tar does NOT archive sockets ("socket ignored"; that warning is
# silenced here). The socket therefore exists only in trees made by
# --extract (or --add-special); tests that need it must create it this way.
#
# Environment:
#   LAKE_CACHE          cache dir (default /var/cache/lakeos); the default
#                       tarball is $LAKE_CACHE/debian-bookworm-minbase.tar
#   LAKE_DEBIAN_MIRROR  override the Debian mirror URL
#
# Needs root (debootstrap, mknod, chown), debootstrap, tar, python3,
# setfattr/getfattr (package attr). See ci/setup.sh.
set -euo pipefail

readonly SUITE=bookworm
readonly ROOTFS_INCLUDE=systemd,systemd-sysv,udev,python3,python3-pip,perl,locales,tzdata,iproute2,openssl,ca-certificates,kmod,procps,less,vim-tiny,netbase,man-db,manpages,git,openssh-client
readonly TEST_DIR_REL=opt/lake-test
readonly CAP_VALUE=0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=   # cap_net_raw=ep, VFS_CAP_REVISION_2
readonly RANDOM_SEED=20240229
readonly RANDOM_BYTES=$((5 * 1024 * 1024))
readonly MTIME_1999='1999-12-31 23:59:59 UTC'
readonly MTIME_1999_EPOCH=946684799
readonly SPACES_NAME='name with spaces é.txt'
readonly LONG_DIR='long-name/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'
readonly LONG_FILE="$LONG_DIR/file-with-a-path-longer-than-100-characters.txt"

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT_PATH
CACHE_DIR=${LAKE_CACHE:-/var/cache/lakeos}
readonly CACHE_DIR
# Tar flags shared by create and extract.
readonly TAR_META=(--xattrs --xattrs-include='*' --numeric-owner)

log() { printf 'debian-rootfs: %s\n' "$*" >&2; }
die() { printf 'debian-rootfs: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$SCRIPT_PATH"; }

need_root() {
    ((EUID == 0)) || die "$1 needs root (mknod, chown, debootstrap); run it as root"
}

need_cmd() {
    local c
    for c in "$@"; do
        PATH="$PATH:/usr/sbin:/sbin" command -v "$c" >/dev/null 2>&1 \
            || die "'$c' not found on PATH; run ci/setup.sh first"
    done
}

json_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# Debian mirror: $LAKE_DEBIAN_MIRROR, else the first ".../debian" URI that apt
# is configured with (deb822 *.sources or one-line *.list), else deb.debian.org.
detect_mirror() {
    if [[ -n "${LAKE_DEBIAN_MIRROR:-}" ]]; then
        printf '%s\n' "$LAKE_DEBIAN_MIRROR"
        return
    fi
    local f uri
    for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
        [[ -r "$f" ]] || continue
        uri=$(awk '
            /^[[:space:]]*#/ { next }
            tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i; next }
            $1 == "deb" {
                inb = 0
                for (i = 2; i <= NF; i++) {
                    if ($i ~ /^\[/) inb = 1
                    if (inb) { if ($i ~ /\]$/) inb = 0; continue }
                    print $i; break
                }
            }
        ' "$f" | grep -E '^https?://[^ ]*/debian/?$' | head -n1 || true)
        if [[ -n "$uri" ]]; then
            printf '%s\n' "${uri%/}"
            return
        fi
    done
    printf '%s\n' http://deb.debian.org/debian
}

# ---------------------------------------------------------------- specials --

# Create each special entry under ROOT/opt/lake-test that does not exist yet.
# Order matters: chown clears security.capability and setuid, so ownership
# is set first, then modes, then xattrs; mtimes last.
add_special() {
    local root=$1
    need_root "--add-special"
    need_cmd python3 setfattr mknod mkfifo
    [[ -d "$root" ]] || die "rootfs directory not found: $root"
    local d="$root/$TEST_DIR_REL"
    mkdir -p "$d" || die "cannot create $d"
    local created=()

    missing() { [[ ! -e "$d/$1" && ! -L "$d/$1" ]]; }

    if missing MANIFEST; then
        {
            echo "Lake OS test fixture: one of each file kind (see ci/debian-rootfs.sh)."
            echo "The unix socket is not in the tarball (GNU tar skips sockets);"
            echo "ci/debian-rootfs.sh --extract / --add-special creates it."
            sed -n '/^# \/opt\/lake-test\/ then gets/,/^#   MANIFEST/p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'
        } >"$d/MANIFEST"
        created+=(MANIFEST)
    fi
    if missing cap-file; then
        printf '#!/bin/sh\necho "file with security.capability"\n' >"$d/cap-file"
        chmod 0755 "$d/cap-file"
        setfattr -n security.capability -v "$CAP_VALUE" "$d/cap-file" \
            || die "setfattr security.capability failed on $d/cap-file (filesystem without xattrs?)"
        created+=(cap-file)
    fi
    if missing xattr-file; then
        printf 'file with user xattrs\n' >"$d/xattr-file"
        setfattr -n user.lake.test -v 'hello lake' "$d/xattr-file" \
            || die "setfattr user.lake.test failed on $d/xattr-file (filesystem without user xattrs?)"
        setfattr -n user.lake.binary -v 0x00ff10fe7f "$d/xattr-file"
        created+=(xattr-file)
    fi
    if missing xattr-dir; then
        mkdir "$d/xattr-dir"
        printf 'inside a dir with an xattr\n' >"$d/xattr-dir/child"
        setfattr -n user.lake.dir -v 'dir xattr' "$d/xattr-dir"
        created+=(xattr-dir)
    fi
    if missing fifo; then
        mkfifo -m 0644 "$d/fifo"
        created+=(fifo)
    fi
    if missing socket; then
        python3 - "$d/socket" <<'EOF' || die "cannot create unix socket $d/socket"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.close()
os.chmod(sys.argv[1], 0o755)
EOF
        created+=(socket)
    fi
    if missing blockdev; then
        mknod -m 0660 "$d/blockdev" b 7 0 || die "mknod block device failed: $d/blockdev"
        created+=(blockdev)
    fi
    if missing chardev; then
        mknod -m 0666 "$d/chardev" c 1 3 || die "mknod char device failed: $d/chardev"
        created+=(chardev)
    fi
    if missing hardlink-a && missing hardlink-b; then
        printf 'one inode, two names\n' >"$d/hardlink-a"
        ln "$d/hardlink-a" "$d/hardlink-b"
        created+=(hardlink-a hardlink-b)
    fi
    if missing dangling-symlink; then
        ln -s /nonexistent/lake-target "$d/dangling-symlink"
        created+=(dangling-symlink)
    fi
    if missing owned-1234-5678; then
        printf 'owned by 1234:5678\n' >"$d/owned-1234-5678"
        chown 1234:5678 "$d/owned-1234-5678"
        chmod 0640 "$d/owned-1234-5678"
        created+=(owned-1234-5678)
    fi
    if missing setuid-file; then
        printf '#!/bin/sh\necho setuid\n' >"$d/setuid-file"
        chmod 4755 "$d/setuid-file"
        created+=(setuid-file)
    fi
    if missing setgid-sticky-dir; then
        mkdir "$d/setgid-sticky-dir"
        chmod 3775 "$d/setgid-sticky-dir"
        created+=(setgid-sticky-dir)
    fi
    if missing mtime-1999; then
        printf 'last modified in 1999\n' >"$d/mtime-1999"
        touch -d "$MTIME_1999" "$d/mtime-1999"
        created+=(mtime-1999)
    fi
    if missing empty-dir; then
        mkdir "$d/empty-dir"
        created+=(empty-dir)
    fi
    if missing random-5M; then
        python3 - "$d/random-5M" "$RANDOM_SEED" "$RANDOM_BYTES" <<'EOF' || die "cannot write $d/random-5M"
import random, sys
path, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
with open(path, "wb") as f:
    f.write(rng.getrandbits(n * 8).to_bytes(n, "little"))
EOF
        (cd "$d" && sha256sum random-5M >random-5M.sha256)
        created+=(random-5M)
    fi
    if missing "$SPACES_NAME"; then
        printf 'unicode and spaces in the name\n' >"$d/$SPACES_NAME"
        created+=("$SPACES_NAME")
    fi
    if missing "$LONG_FILE"; then
        mkdir -p "$d/$LONG_DIR"
        printf 'long path\n' >"$d/$LONG_FILE"
        created+=(long-name/...)
    fi
    unset -f missing

    if ((${#created[@]})); then
        log "add-special: created in $d: ${created[*]}"
    else
        log "add-special: nothing to do in $d"
    fi
}

# ------------------------------------------------------------------ check --

check_special() {
    local root=$1
    need_cmd getfattr stat sha256sum
    local d="$root/$TEST_DIR_REL"
    [[ -d "$d" ]] || die "test directory not found: $d"
    local problems=0

    bad() { printf 'debian-rootfs: check: FAIL %s\n' "$*" >&2; problems=$((problems + 1)); }
    # expect_stat NAME FORMAT EXPECTED — compare `stat -c FORMAT` output.
    expect_stat() {
        local got
        got=$(stat -c "$2" -- "$d/$1" 2>/dev/null) || { bad "$1: missing"; return; }
        [[ "$got" == "$3" ]] || bad "$1: stat '$2' is '$got', expected '$3'"
    }
    expect_xattr() {  # NAME ATTR VALUE (getfattr -e base64 value, "0s...")
        local got
        got=$(getfattr --absolute-names -h --only-values -n "$2" -- "$d/$1" 2>/dev/null | base64 -w0) \
            || { bad "$1: xattr $2 missing"; return; }
        [[ "$got" == "$3" ]] || bad "$1: xattr $2 is base64 '$got', expected '$3'"
    }

    expect_stat cap-file '%F %a %u:%g' 'regular file 755 0:0'
    expect_xattr cap-file security.capability "${CAP_VALUE#0s}"
    expect_stat xattr-file '%F' 'regular file'
    expect_xattr xattr-file user.lake.test "$(printf 'hello lake' | base64 -w0)"
    expect_xattr xattr-file user.lake.binary "$(printf '\x00\xff\x10\xfe\x7f' | base64 -w0)"
    expect_stat xattr-dir '%F' 'directory'
    expect_xattr xattr-dir user.lake.dir "$(printf 'dir xattr' | base64 -w0)"
    expect_stat fifo '%F %a' 'fifo 644'
    expect_stat socket '%F' 'socket'
    expect_stat blockdev '%F %t:%T %a' 'block special file 7:0 660'
    expect_stat chardev '%F %t:%T %a' 'character special file 1:3 666'
    expect_stat hardlink-a '%F %h' 'regular file 2'
    local ia ib
    ia=$(stat -c %i -- "$d/hardlink-a" 2>/dev/null || echo a)
    ib=$(stat -c %i -- "$d/hardlink-b" 2>/dev/null || echo b)
    [[ "$ia" == "$ib" ]] || bad "hardlink-a/hardlink-b: inodes differ ($ia vs $ib)"
    expect_stat dangling-symlink '%F %N' "symbolic link '$d/dangling-symlink' -> '/nonexistent/lake-target'"
    [[ ! -e "$d/dangling-symlink" ]] || bad "dangling-symlink: target unexpectedly exists"
    expect_stat owned-1234-5678 '%u:%g %a' '1234:5678 640'
    expect_stat setuid-file '%a %u:%g' '4755 0:0'
    expect_stat setgid-sticky-dir '%F %a' 'directory 3775'
    expect_stat mtime-1999 '%Y' "$MTIME_1999_EPOCH"
    expect_stat empty-dir '%F' 'directory'
    if [[ -d "$d/empty-dir" ]] && [[ -n "$(ls -A "$d/empty-dir")" ]]; then
        bad "empty-dir: not empty"
    fi
    expect_stat random-5M '%s' "$RANDOM_BYTES"
    if [[ -f "$d/random-5M.sha256" ]]; then
        (cd "$d" && sha256sum --quiet -c random-5M.sha256 >/dev/null 2>&1) \
            || bad "random-5M: sha256 does not match random-5M.sha256"
    else
        bad "random-5M.sha256: missing"
    fi
    expect_stat "$SPACES_NAME" '%F' 'regular file'
    expect_stat "$LONG_FILE" '%F' 'regular file'
    unset -f bad expect_stat expect_xattr

    if ((problems)); then
        die "check: $problems problem(s) in $d"
    fi
    log "check: all special files OK in $d"
}

# ------------------------------------------------------------------ build --

WORK_DIR=
cleanup() {
    local rc=$?
    if [[ -n "$WORK_DIR" && -d "$WORK_DIR" ]]; then
        # debootstrap mounts proc/sys in the target; never rm -rf through them.
        local m
        while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done < <(awk -v w="$WORK_DIR/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
        rm -rf --one-file-system "$WORK_DIR" || log "warning: could not remove $WORK_DIR"
    fi
    exit "$rc"
}

build_tarball() {
    local out=$1
    need_root "building the rootfs"
    need_cmd debootstrap tar python3 setfattr mknod
    local out_dir
    out_dir=$(dirname "$out")
    [[ -w "$out_dir" ]] || die "output directory not writable: $out_dir"

    local mirror
    mirror=$(detect_mirror)
    trap cleanup EXIT
    trap 'log "interrupted; cleaning up"; exit 130' INT TERM
    WORK_DIR=$(mktemp -d "$out_dir/.debian-rootfs.XXXXXX") \
        || die "cannot create a work directory in $out_dir"
    local root="$WORK_DIR/root"
    local t0=$SECONDS
    log "debootstrap --variant=minbase $SUITE from $mirror into $root (log: $WORK_DIR/debootstrap.log)"
    if ! debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" \
        "$SUITE" "$root" "$mirror" >"$WORK_DIR/debootstrap.log" 2>&1; then
        local keep="$out.debootstrap.log"
        cat "$WORK_DIR/debootstrap.log" "$root/debootstrap/debootstrap.log" >"$keep" 2>/dev/null || true
        tail -n 30 "$WORK_DIR/debootstrap.log" >&2 || true
        die "debootstrap failed (suite $SUITE, mirror $mirror); full log kept in $keep"
    fi
    log "debootstrap done in $((SECONDS - t0)) s"
    rm -f "$root"/var/cache/apt/archives/*.deb

    add_special "$root"
    check_special "$root"

    local tmp="$out.tmp.$$"
    log "archiving $root -> $tmp"
    # --warning=no-file-ignored: GNU tar cannot archive sockets and says
    # "socket ignored"; that is expected (see --help).
    if ! tar "${TAR_META[@]}" --sort=name --warning=no-file-ignored \
        -C "$root" -cpf "$tmp" .; then
        rm -f "$tmp"
        die "tar failed creating $tmp from $root"
    fi
    rm -f "$out.stamp" "$out.debootstrap.log"
    mv -f "$tmp" "$out" || { rm -f "$tmp"; die "cannot rename $tmp to $out"; }
    if ! { printf 'script-sha256 %s\n' "$SCRIPT_HASH" >"$out.stamp.tmp.$$" \
        && mv -f "$out.stamp.tmp.$$" "$out.stamp"; }; then
        rm -f "$out.stamp.tmp.$$"
        log "warning: could not write $out.stamp (cache reuse then relies on mtime only)"
    fi
    log "built $out in $((SECONDS - t0)) s total"
}

script_hash() { sha256sum "$SCRIPT_PATH" | cut -d' ' -f1; }
# Hash of this script as it was when it started (the stamp must describe the
# code that built the tarball even if the file is replaced mid-build).
SCRIPT_HASH=$(script_hash)
readonly SCRIPT_HASH

# Is OUT reusable? Yes if it is newer than this script, or if OUT.stamp
# records the sha256 of this very script (a fresh git clone gives the script
# a new mtime, so mtime alone would rebuild the cache on every CI run).
tarball_is_fresh() {  # OUT
    local out=$1
    [[ -f "$out" ]] || return 1
    if [[ "$out" -nt "$SCRIPT_PATH" ]]; then
        log "reusing $out (newer than $SCRIPT_PATH)"
        return 0
    fi
    if [[ -f "$out.stamp" && "$(cat "$out.stamp")" == "script-sha256 $SCRIPT_HASH" ]]; then
        log "reusing $out (built by this same script version, see $out.stamp)"
        return 0
    fi
    return 1
}

# Remove work dirs of builds that were killed (SIGKILL, CI timeout) in DIR.
# Only called with the build lock held; the age limit also spares a build
# by a script version that did not take the lock yet.
remove_stale_work_dirs() {  # DIR
    local dir=$1 w m
    while IFS= read -r -d '' w; do
        log "removing stale work directory $w"
        while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done < <(awk -v w="$w/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
        rm -rf --one-file-system "$w" || log "warning: could not remove $w"
    done < <(find "$dir" -mindepth 1 -maxdepth 1 -type d -name '.debian-rootfs.??????' -mmin +60 -print0)
}

# Build OUT unless it is fresh. Concurrent callers (parallel tests) share one
# build: they wait on a lock in OUT's directory and then reuse the result.
ensure_tarball() {  # OUT FORCE
    local out=$1 force=$2
    if ((!force)) && tarball_is_fresh "$out"; then
        return
    fi
    [[ -e "$out" && ! -f "$out" ]] && die "output path exists and is not a regular file: $out"
    need_cmd flock
    local out_dir lock lock_fd
    out_dir=$(dirname "$out")
    mkdir -p "$out_dir" || die "cannot create output directory $out_dir"
    lock="$out_dir/.debian-rootfs.lock"
    exec {lock_fd}>>"$lock" || die "cannot open lock file $lock"
    if ! flock -n "$lock_fd"; then
        log "another build is running in $out_dir; waiting for lock $lock"
        flock "$lock_fd" || die "cannot lock $lock"
        if ((!force)) && tarball_is_fresh "$out"; then
            exec {lock_fd}>&-
            return
        fi
    fi
    remove_stale_work_dirs "$out_dir"
    build_tarball "$out"
    exec {lock_fd}>&-
}

check_extract_dest() {  # DEST — must not exist, or be an empty directory
    local dest=$1
    need_root "--extract"
    if [[ -e "$dest" || -L "$dest" ]]; then
        [[ -d "$dest" && ! -L "$dest" ]] || die "extract destination exists and is not a directory: $dest"
        [[ -z "$(ls -A "$dest")" ]] || die "extract destination is not empty: $dest"
    fi
}

extract_tarball() {  # TARBALL DEST
    local tarball=$1 dest=$2
    check_extract_dest "$dest"
    mkdir -p "$dest" || die "cannot create extract destination $dest"
    log "extracting $tarball -> $dest"
    tar "${TAR_META[@]}" --same-owner -xpf "$tarball" -C "$dest" \
        || die "tar failed extracting $tarball into $dest"
}

# ------------------------------------------------------------------- main --

main() {
    local out="$CACHE_DIR/debian-bookworm-minbase.tar"
    local json=0 force=0 no_special=0 mode=build target=
    while (($#)); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --out) (($# >= 2)) || die "--out needs a path"; out=$2; shift ;;
            --out=*) out=${1#--out=} ;;
            --json) json=1 ;;
            --force) force=1 ;;
            --no-special) no_special=1 ;;
            --extract|--add-special|--check)
                [[ "$mode" == build ]] || die "only one of --extract, --add-special, --check"
                (($# >= 2)) || die "$1 needs a directory"
                mode=${1#--}; target=$2; shift ;;
            *) printf 'debian-rootfs: error: unknown argument: %s (see --help)\n' "$1" >&2; exit 2 ;;
        esac
        shift
    done
    [[ "$out" == /* ]] || out="$PWD/$out"

    case "$mode" in
        add-special) add_special "$target"; return ;;
        check) check_special "$target"; return ;;
        extract)
            check_extract_dest "$target"
            ensure_tarball "$out" "$force"
            extract_tarball "$out" "$target"
            if ((!no_special)); then
                add_special "$target"
            fi
            printf '%s\n' "$target"
            return ;;
    esac

    ensure_tarball "$out" "$force"
    local files bytes
    files=$(tar -tf "$out" | wc -l) || die "cannot list $out"
    bytes=$(stat -c %s "$out")
    if ((json)); then
        printf '{"tarball":%s,"files":%d,"bytes":%d}\n' "$(json_str "$out")" "$files" "$bytes"
    else
        printf '%s\n%d files, %d bytes\n' "$out" "$files" "$bytes"
    fi
}

main "$@"
