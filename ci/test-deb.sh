#!/usr/bin/env bash
# ci/test-deb.sh — the lake-tools .deb, installed and used as on an existing
# Debian 12 machine:
#   1. ci/build-deb.sh --no-build (ci/test.sh has built the workspace)
#   2. lintian reports no error and no warning
#   3. every command and subcommand has its man page, which renders (man -l, no
#      groff warning) and names every option its --help names and every
#      subcommand (as TOOL-SUB(N))
#   4. in a Debian bookworm chroot (ci/debian-rootfs.sh's rootfs, extracted into a
#      temporary directory, in a private mount namespace): `apt-get install
#      ./lake-tools_*.deb` (Depends pulled from the Debian mirror), then as a
#      user would: lakectl --help, man lakectl, man lakectl-commit, man
#      mkfs.lakefs, the bash completion loads, a lake (init, commit, log,
#      verify, fsck.lakefs), mkfs.lakefs of an image file, `mount -t lakefs`
#      (mount(8) finds /sbin/mount.lakefs) of volume home with a file written
#      through it and committed, umount; `dpkg --purge` leaves none of its files.
#
# Usage: ci/test-deb.sh [--deb FILE] [--root DIR] [--keep] [-h|--help]
#   --deb FILE  test this package instead of building one
#   --root DIR  install into this Debian root instead (used in place, so a
#               throwaway one: e.g. `debootstrap --variant=minbase
#               --include=man-db trixie DIR` for Debian 13)
#   --keep      keep the temporary directory, the chroot included (path printed)
# Needs root, the packages of ci/setup.sh (dpkg-dev, lintian, man-db, debootstrap)
# and the Debian mirror (apt). About a minute.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."
log() { echo "test-deb: $*" >&2; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || fail "run as root (chroot, mounts)"
deb="" keep=0 root=""
while (($#)); do
    case "$1" in
        --deb) deb=${2:?--deb needs a file}; shift ;;
        --root) root=${2:?--root needs a directory}; shift ;;
        --keep) keep=1 ;;
        *) echo "ci/test-deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[[ -n $deb ]] || deb=$(bash ci/build-deb.sh --no-build | tail -n1)
[[ -f $deb ]] || fail "no package $deb"
work=$(mktemp -d /var/tmp/test-deb.XXXXXX)
cleanup() { if ((keep)); then log "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

# 2. lintian (as nobody: it warns about running as root)
chmod 0755 "$work"
cp "$deb" "$work/" && chmod 0644 "$work/$(basename "$deb")"
deb=$work/$(basename "$deb")
log "lintian $(basename "$deb")"
setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME=/tmp lintian --fail-on error,warning "$deb" \
    || fail "lintian found problems in $deb (above)"

# 3. the man pages against --help
dpkg-deb -x "$deb" "$work/pkg"
pages=0
check_command() { # BIN PAGE SECTION [SUBCOMMAND WORDS...]
    local bin=$1 page=$2 sec=$3 help text file opt sub
    shift 3
    help=$("$bin" "$@" --help) || fail "$bin $* --help failed"
    file=$work/pkg/usr/share/man/man$sec/$page.$sec.gz
    [[ -f $file ]] || fail "no man page $page($sec) for '$(basename "$bin") $*'"
    text=$(MANWIDTH=1000 man --warnings -l -P cat "$file" 2>"$work/man.err") || fail "man -l $file failed: $(cat "$work/man.err")"
    [[ ! -s $work/man.err ]] || fail "man -l $file warns: $(cat "$work/man.err")"
    pages=$((pages + 1))
    for opt in $(grep -oE -- '--[a-z][a-z0-9-]+' <<<"$help" | sort -u) $(grep -oE '^ +-[a-zA-Z]\b' <<<"$help" | sort -u); do
        grep -qF -- "$opt" <<<"$text" || fail "$page($sec) does not name $opt (in '$(basename "$bin") $* --help')"
    done
    for sub in $(sed -n '/^Commands:/,/^$/{/^Commands:/d;p}' <<<"$help" | awk 'NF {print $1}'); do
        [[ $sub == help ]] && continue
        grep -qF -- "$page-$sub($sec)" <<<"$text" || fail "$page($sec) does not list its subcommand $sub"
        check_command "$bin" "$page-$sub" "$sec" "$@" "$sub"
    done
}
for t in usr/bin/lakectl:1 usr/bin/lakefs:1 usr/sbin/mkfs.lakefs:8 usr/sbin/fsck.lakefs:8 \
         usr/sbin/mount.lakefs:8 usr/sbin/lake-installer:8; do
    bin=$work/pkg/${t%:*}
    check_command "$bin" "$(basename "$bin")" "${t#*:}"
done
shipped=$(find "$work/pkg/usr/share/man" -type f | wc -l)
((shipped == pages)) || fail "$shipped man pages shipped, $pages commands checked"
log "$pages man pages render and name every option and subcommand of their command's --help"

# 4. install and use it in a Debian chroot (bookworm unless --root)
if [[ -z $root ]]; then
    root=$work/root
    log "extracting the Debian bookworm rootfs (ci/debian-rootfs.sh)"
    bash ci/debian-rootfs.sh --extract "$root" --no-special >/dev/null
fi
[[ -x $root/usr/bin/apt-get && -x $root/usr/bin/man ]] || fail "$root is not a Debian root with apt and man-db"
cp "$deb" "$root/tmp/"
cp /etc/resolv.conf "$root/etc/resolv.conf"
cat >"$root/tmp/use.sh" <<'USE'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
step() { echo "test-deb (chroot): $*" >&2; }
deb=$(ls /tmp/lake-tools_*.deb)
step "apt-get install $deb"
apt-get install -y -q "$deb" >/tmp/apt.log 2>&1 || { apt-get update -q >>/tmp/apt.log 2>&1 && apt-get install -y -q "$deb" >>/tmp/apt.log 2>&1; } \
    || { cat /tmp/apt.log; exit 1; }
grep -E '^(Setting up|Unpacking) ' /tmp/apt.log | sed 's/^/    /' >&2
lakectl --help | grep -q 'Work with a lake'
man -P cat lakectl 2>/dev/null | grep -q 'lakectl-commit(1)'
man -P cat lakectl-commit 2>/dev/null | grep -q -- '--message'
man -P cat 8 mkfs.lakefs 2>/dev/null | grep -q -- '--populate'
bash -c 'source /usr/share/bash-completion/completions/lakectl && complete -p lakectl' | grep -q lakectl
[[ -f /usr/share/zsh/vendor-completions/_lakectl && -f /usr/share/fish/vendor_completions.d/lakectl.fish ]]
step "lakectl init, commit, log, verify; fsck.lakefs"
mkdir -p /tmp/src/sub && echo 'hello lake' >/tmp/src/a.txt && head -c 300000 /dev/urandom >/tmp/src/sub/b.bin
lakectl --lake /tmp/lake init >/dev/null
lakectl --lake /tmp/lake -q commit /tmp/src -m 'first' >/dev/null
lakectl --lake /tmp/lake log | grep -q first
lakectl --lake /tmp/lake -q verify >/dev/null
fsck.lakefs -q /tmp/lake
step "mkfs.lakefs of an image file (mke2fs from e2fsprogs)"
mkfs.lakefs --size 64M --populate /tmp/src /tmp/lake.img >/dev/null
step "mount -t lakefs (mount.lakefs), write through the mount, umount"
mkdir -p /mnt/home
mount -t lakefs /tmp/lake /mnt/home -o name=home
trap 'umount /mnt/home 2>/dev/null || true' EXIT
echo 'written through FUSE' >/mnt/home/note.txt
lakectl commit /mnt/home/note.txt -m 'note' >/dev/null
umount /mnt/home
trap - EXIT
lakectl --lake /tmp/lake cat note.txt@home/main | grep -q 'written through FUSE'
step "dpkg --purge lake-tools"
dpkg --purge lake-tools >/dev/null
for f in /usr/bin/lakectl /usr/sbin/mount.lakefs /usr/share/man/man1/lakectl.1.gz /usr/share/bash-completion/completions/lakectl; do
    [[ ! -e $f ]] || { echo "$f is left after dpkg --purge" >&2; exit 1; }
done
USE
log "installing and using the package in $root"
unshare --mount --propagation private bash -c '
    set -e
    root=$1
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount -t sysfs sysfs "$root/sys"
    mount -t tmpfs tmpfs "$root/run"
    chroot "$root" bash /tmp/use.sh
' _ "$root" || fail "installing or using $(basename "$deb") in the chroot $root failed (above)"
log "ok: $(basename "$deb") installs on $(. "$root/etc/os-release" && echo "$PRETTY_NAME"), its tools, man pages and completions work, and it purges cleanly"
