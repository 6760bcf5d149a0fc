#!/usr/bin/env bash
# POSIX-zone lifecycle benchmark: lake vs ostree, commit + deploy + rollback
# of one ~50 MB package install, on a small and a ~5x larger rootfs.
# Run ci/bench-posix.sh --help for usage. Helper: ci/bench_posix.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
HELPER="$HERE/bench_posix.py"

usage() {
  cat <<'EOF'
Usage: ci/bench-posix.sh [options]

Installs one synthetic ~50 MB Debian package (dpkg -i, no maintainer scripts)
into a deployed rootfs and times what it costs to record and boot the change,
and to go back, with lake (lakectl) and with ostree side by side. Two trees:
  small  the Debian rootfs of ci/debian-rootfs.sh (~14.5k files, ~460 MB)
  large  the same plus --bulk-copies copies of /usr under /opt/bulkK, each
         file tagged so nothing deduplicates (~5x the files and bytes)
A stand-in kernel and initramfs (random bytes) sit in /usr/lib/modules/<v>/.

lake, per run (fresh lake each run; setup untimed):
  lakectl init; generation keep 10 (like ostree --retain, nothing pruned);
  lakectl --ref posix/main commit TREE --loose; generation deploy --tries 0
  --kernel/--initrd (generation 1, as the installer makes it); mount
  overlay(lower=deploy/1/root, upper=deploy/1/upper) on MERGED
  dpkg --root=MERGED -i PKG                                    (untimed)
  commit   lakectl commit --zone posix --root MERGED --upper U --lower LOWER
  deploy   lakectl generation deploy --esp ESP
  rollback lakectl rollback --zone posix --to BASE --root MERGED --upper U
           --lower LOWER --esp ESP --yes   (new commit + new generation)
  rollback-now   the same with --now (also writes the difference into the
           live MERGED root; checked: the package is gone from it)
  ESP is a plain directory (loader/entries, kernels by hash).
ostree, per run (fresh sysroot each run; setup untimed):
  ostree admin init-fs + os-init; commit TREE (/etc moved to /usr/etc);
  ostree admin deploy; ostree checkout -H (hard links, as rpm-ostree does)
  dpkg --root=CHECKOUT -i PKG                                  (untimed)
  commit   ostree commit --link-checkout-speedup --tree=dir=CHECKOUT
  deploy   ostree admin deploy --retain lakeos/base
  rollback ostree admin deploy --retain BASE  (a new deployment of the
           previous commit; ostree 2022.7 has no `admin rollback`)

Options:
  --quick          one run, small tree only
  --runs N         runs per tree (default 3); medians are reported
  --trees LIST     comma list of small,large (default both)
  --only LIST      comma list of lake,ostree (default both)
  --bulk-copies N  copies of /usr in the large tree (default 4)
  --pkg-mib N      package size in MiB (default 50), --pkg-files N (default 200)
  --rootfs DIR     rootfs to start from (copied; default: ci/debian-rootfs.sh
                   --extract)
  --work DIR       work dir (default /var/tmp/lake-bench-posix); removed at
                   the end unless --keep
  --lakectl PATH   lakectl binary (default target/release/lakectl)
  --json OUT       JSON report (default images/bench/posix.json)
  --md OUT         markdown table (default images/bench/posix.md)
  --keep           keep the work dir
  -h, --help       this text

Method: wall time of each step (user+sys CPU from /usr/bin/time), `sync`
untimed before every timed step, page cache warm (not dropped; each tree is
read once before the runs). Needs root (overlay mounts, chattr, dpkg --root).
Exit status: 0 unless a step failed (its stderr is shown) or bad usage.
EOF
}

RUNS=3
TREES="small,large"
ONLY="lake,ostree"
BULK=4
PKG_MIB=50
PKG_FILES=200
ROOTFS=""
WORK=/var/tmp/lake-bench-posix
LAKECTL="$ROOT/target/release/lakectl"
JSON_OUT="$ROOT/images/bench/posix.json"
MD_OUT="$ROOT/images/bench/posix.md"
KEEP=0
QUICK=0

need_arg() { [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick)       QUICK=1; shift ;;
    --runs)        need_arg "$@"; RUNS="$2"; shift 2 ;;
    --trees)       need_arg "$@"; TREES="$2"; shift 2 ;;
    --only)        need_arg "$@"; ONLY="$2"; shift 2 ;;
    --bulk-copies) need_arg "$@"; BULK="$2"; shift 2 ;;
    --pkg-mib)     need_arg "$@"; PKG_MIB="$2"; shift 2 ;;
    --pkg-files)   need_arg "$@"; PKG_FILES="$2"; shift 2 ;;
    --rootfs)      need_arg "$@"; ROOTFS="$2"; shift 2 ;;
    --work)        need_arg "$@"; WORK="$2"; shift 2 ;;
    --lakectl)     need_arg "$@"; LAKECTL="$2"; shift 2 ;;
    --json)        need_arg "$@"; JSON_OUT="$2"; shift 2 ;;
    --md)          need_arg "$@"; MD_OUT="$2"; shift 2 ;;
    --keep)        KEEP=1; shift ;;
    -h|--help)     usage; exit 0 ;;
    *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then RUNS=1; TREES=small; fi

[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "error: --runs must be a positive integer" >&2; exit 2; }
[[ "$BULK" =~ ^[1-9][0-9]*$ ]] || { echo "error: --bulk-copies must be a positive integer" >&2; exit 2; }
[[ "$PKG_FILES" =~ ^[1-9][0-9]*$ ]] || { echo "error: --pkg-files must be a positive integer" >&2; exit 2; }
[[ "$PKG_MIB" =~ ^[0-9]+([.][0-9]+)?$ ]] && awk -v m="$PKG_MIB" 'BEGIN{exit !(m > 0)}' \
  || { echo "error: --pkg-mib must be a positive number" >&2; exit 2; }
for t in ${TREES//,/ }; do
  case "$t" in small|large) ;; *) echo "error: --trees: unknown tree '$t'" >&2; exit 2 ;; esac
done
for t in ${ONLY//,/ }; do
  case "$t" in lake|ostree) ;; *) echo "error: --only: unknown side '$t'" >&2; exit 2 ;; esac
done
if [[ -n "$ROOTFS" && ! -d "$ROOTFS" ]]; then echo "error: --rootfs $ROOTFS is not a directory" >&2; exit 2; fi
case "$LAKECTL" in /*) ;; *) LAKECTL="$PWD/$LAKECTL" ;; esac
case "$JSON_OUT" in /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
case "$MD_OUT" in /*) ;; *) MD_OUT="$PWD/$MD_OUT" ;; esac
case "$WORK" in /*) ;; *) WORK="$PWD/$WORK" ;; esac
((EUID == 0)) || { echo "error: needs root (overlay mounts, dpkg --root, chattr)" >&2; exit 2; }
for c in /usr/bin/time dpkg dpkg-deb chattr mount umount "$PY"; do
  command -v "$c" >/dev/null || { echo "error: $c not found (see ci/setup.sh)" >&2; exit 2; }
done

want() { [[ ",$ONLY," == *",$1,"* ]]; }
log() { printf '[bench-posix %s] %s\n' "$(date +%T)" "$*" >&2; }

if want lake && [[ ! -x "$LAKECTL" ]]; then
  echo "error: lakectl not found at $LAKECTL (cargo build --release -p lakectl, or --only ostree)" >&2; exit 2
fi
if want ostree && ! command -v ostree >/dev/null; then
  echo "error: ostree not installed (apt-get install ostree, or --only lake)" >&2; exit 2
fi

# ---- work dir --------------------------------------------------------------
MARK="$WORK/.lake-bench-posix"
if [[ -e "$WORK" && ! -e "$MARK" && -n "$(ls -A "$WORK" 2>/dev/null)" ]]; then
  echo "error: --work $WORK exists, is not empty and was not made by this script" >&2
  exit 2
fi

# Unmounts whatever this script mounted under the work dir, clears ostree's
# immutable bit on deployment dirs, then removes DIR.
unmount_under() {
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done < <(awk -v w="$1/" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
}
wipe() {
  local d="$1"
  [[ -e "$d" ]] || return 0
  unmount_under "$d"
  local x
  for x in "$d"/ostree/deploy/*/deploy/*; do
    [[ -d "$x" ]] && chattr -i "$x" 2>/dev/null || true
  done
  rm -rf --one-file-system "${d:?}"
}

mkdir -p "$WORK"
touch "$MARK"
for d in "$WORK"/*; do wipe "$d"; done
mkdir -p "$WORK/trees" "$WORK/logs"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
cleanup() {
  unmount_under "$WORK"
  if [[ $KEEP == 1 ]]; then
    log "work dir kept: $WORK"
  else
    for d in "$WORK"/*; do wipe "$d"; done
    rm -f "$MARK"
    rmdir "$WORK" 2>/dev/null || true
  fi
}
trap cleanup EXIT

FAILED=0
NOTES=()

# Runs one timed step: timed SIDE TREE RUN STEP CMD...
# Appends a line to results.tsv: side tree run step status wall user sys note
# and leaves the command's stdout in $WORK/logs/<tag>.out.
timed() {
  local side="$1" tree="$2" run="$3" step="$4"; shift 4
  local tag="$side.$tree.$run.$step" lg="$WORK/logs"
  sync
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %U %S' -o "$lg/$tag.time" "$@" >"$lg/$tag.out" 2>"$lg/$tag.err" </dev/null || rc=$?
  t1=$(date +%s%N)
  if [[ $rc != 0 ]]; then
    FAILED=1
    echo "" >&2
    echo "!!! $side $tree run $run: $step failed (exit $rc): $*" >&2
    tail -n 30 "$lg/$tag.err" >&2 || true
    printf '%s\t%s\t%s\t%s\tfailed\t\t\t\texit %s\n' "$side" "$tree" "$run" "$step" "$rc" >>"$RESULTS"
    return 1
  fi
  local wall user sys
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  read -r _ user sys < <(tail -n 1 "$lg/$tag.time")
  printf '%s\t%s\t%s\t%s\tok\t%s\t%s\t%s\t\n' "$side" "$tree" "$run" "$step" "$wall" "$user" "$sys" >>"$RESULTS"
  log "$(printf '%-6s %-5s run %s  %-13s %8.3f s' "$side" "$tree" "$run" "$step" "$wall")"
}

# Untimed setup step: quiet unless it fails. untimed TAG CMD...
untimed() {
  local tag="$1"; shift
  if ! "$@" >"$WORK/logs/$tag.out" 2>"$WORK/logs/$tag.err" </dev/null; then
    FAILED=1
    echo "!!! setup step $tag failed: $*" >&2
    tail -n 30 "$WORK/logs/$tag.err" >&2 || true
    return 1
  fi
}

warm() { find "$1" -type f -exec cat {} + >/dev/null 2>&1 || true; }

# ---- inputs -----------------------------------------------------------------
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
KVER=6.1.0-lake-bench
PKG="$WORK/lake-bench-payload_1.0_all.deb"
PKG_NAME=lake-bench-payload
log "building the ${PKG_MIB} MiB package ($PKG_FILES files)"
PKG_JSON=$("$PY" "$HELPER" make-pkg "$PKG" --mib "$PKG_MIB" --files "$PKG_FILES" --name "$PKG_NAME")

declare -A TREE_JSON
make_tree() {
  local t="$1" dst="$WORK/trees/$1"
  if [[ $t == small ]]; then
    if [[ -n "$ROOTFS" ]]; then
      log "copying rootfs $ROOTFS -> $dst"
      cp -a "$ROOTFS" "$dst"
    else
      log "extracting the Debian rootfs (ci/debian-rootfs.sh --extract)"
      "$HERE/debian-rootfs.sh" --extract "$dst" >/dev/null 2>"$WORK/logs/rootfs.err" \
        || { tail -n 20 "$WORK/logs/rootfs.err" >&2; exit 1; }
    fi
    # ostree cannot store device nodes, fifos or sockets; both sides get the same tree.
    "$PY" "$HERE/bench_report.py" strip-special "$dst" >/dev/null
    "$PY" "$HELPER" kernel "$dst" --kver "$KVER" >/dev/null
  else
    [[ -d "$WORK/trees/small" ]] || make_tree small
    log "making the large tree: small + $BULK tagged copies of /usr under /opt/bulkK"
    cp -a "$WORK/trees/small" "$dst"
    "$PY" "$HELPER" bulk "$dst" --copies "$BULK" >/dev/null
  fi
  # The ostree input: the same files with /etc as /usr/etc (what ostree deploys
  # from), as a hard-link copy so no data is duplicated.
  cp -al "$dst" "$dst.ostree"
  mv "$dst.ostree/etc" "$dst.ostree/usr/etc"
  TREE_JSON[$t]=$("$PY" "$HERE/bench_report.py" stat "$dst")
  log "tree $t: ${TREE_JSON[$t]}"
}
TREE_LIST=()
for t in small large; do
  [[ ",$TREES," == *",$t,"* ]] || continue
  make_tree "$t"
  TREE_LIST+=("$t")
done
# Trees are made before any run, so the large tree's creation does not
# leave dirty pages behind the small tree's runs.
sync

# ---- lake --------------------------------------------------------------------
LK=("$LAKECTL" -q)
lake_run() {
  local t="$1" r="$2" tree="$WORK/trees/$1" L="$WORK/lake" M="$WORK/merged" E="$WORK/esp"
  wipe "$L"; wipe "$M"; wipe "$E"
  mkdir -p "$M" "$E/loader/entries"
  untimed "lake.$t.$r.init" "${LK[@]}" --lake "$L" init || return 1
  untimed "lake.$t.$r.import" "${LK[@]}" --lake "$L" --ref posix/main commit "$tree" --loose \
    --scope zone:posix -m "rootfs" || return 1
  local base
  base=$("${LK[@]}" --lake "$L" --json log --ref posix/main | "$PY" -c \
    'import json,sys; d=json.load(sys.stdin); d=d.get("commits", d) if isinstance(d, dict) else d; print(d[0]["id"])') \
    || { FAILED=1; echo "!!! lake: cannot read the base commit id" >&2; return 1; }
  # Generation 1 as the installer makes it: an uncounted entry (later deploys
  # copy kernel, initrd and command line from the newest good entry).
  untimed "lake.$t.$r.keep" "${LK[@]}" --lake "$L" generation keep 10 || return 1
  untimed "lake.$t.$r.deploy1" "${LK[@]}" --lake "$L" generation deploy posix/main --esp "$E" --tries 0 \
    --kernel "$tree/usr/lib/modules/$KVER/vmlinuz" --initrd "$tree/usr/lib/modules/$KVER/initramfs.img" \
    --cmdline "quiet" --title "Lake OS (bench)" || return 1
  local low="$L/deploy/1/root" up="$L/deploy/1/upper" wk="$L/deploy/1/work"
  mkdir -p "$up" "$wk"
  mount -t overlay overlay -o "lowerdir=$low,upperdir=$up,workdir=$wk" "$M" \
    || { FAILED=1; echo "!!! lake: overlay mount failed on $M" >&2; return 1; }
  untimed "lake.$t.$r.dpkg" dpkg --root="$M" -i "$PKG" || { umount "$M"; return 1; }
  local ok=0
  timed lake "$t" "$r" commit "${LK[@]}" --lake "$L" commit --zone posix --root "$M" --upper "$up" --lower "$low" \
    && timed lake "$t" "$r" deploy "${LK[@]}" --lake "$L" generation deploy posix/main --esp "$E" \
    && timed lake "$t" "$r" rollback "${LK[@]}" --lake "$L" rollback --zone posix --to "$base" --esp "$E" \
         --root "$M" --upper "$up" --lower "$low" --yes \
    && timed lake "$t" "$r" rollback-now "${LK[@]}" --lake "$L" rollback --zone posix --to "$base" --esp "$E" \
         --root "$M" --upper "$up" --lower "$low" --now --yes \
    && ok=1
  # --now must have taken the package out of the live root.
  if [[ $ok == 1 && -e "$M/usr/lib/$PKG_NAME" ]]; then
    FAILED=1; echo "!!! lake: /usr/lib/$PKG_NAME still in the live root after rollback --now" >&2
  fi
  umount "$M"
  [[ $ok == 1 ]]
}

# ---- ostree ------------------------------------------------------------------
ostree_run() {
  local t="$1" r="$2" S="$WORK/sysroot" CO="$WORK/checkout"
  local R="$S/ostree/repo"
  wipe "$S"; wipe "$CO"
  mkdir -p "$S"
  untimed "ostree.$t.$r.init" ostree admin init-fs "$S" || return 1
  untimed "ostree.$t.$r.osinit" ostree admin --sysroot="$S" os-init lakeos || return 1
  untimed "ostree.$t.$r.import" ostree --repo="$R" commit --branch=lakeos/base \
    --tree=dir="$WORK/trees/$t.ostree" -s rootfs || return 1
  local base; base=$(ostree --repo="$R" rev-parse lakeos/base)
  untimed "ostree.$t.$r.deploy1" ostree admin --sysroot="$S" deploy --os=lakeos lakeos/base || return 1
  untimed "ostree.$t.$r.checkout" ostree --repo="$R" checkout -H lakeos/base "$CO" || return 1
  # dpkg appends to its log in place; in a hard-link checkout that would write
  # into the repository's object, so the log gets its own inode first.
  cp -a "$CO/var/log/dpkg.log" "$CO/var/log/dpkg.log.new" && mv "$CO/var/log/dpkg.log.new" "$CO/var/log/dpkg.log"
  untimed "ostree.$t.$r.dpkg" dpkg --root="$CO" -i "$PKG" || return 1
  timed ostree "$t" "$r" commit ostree --repo="$R" commit --link-checkout-speedup --branch=lakeos/base \
      --tree=dir="$CO" -s "install $PKG_NAME" \
    && timed ostree "$t" "$r" deploy ostree admin --sysroot="$S" deploy --retain --os=lakeos lakeos/base \
    && timed ostree "$t" "$r" rollback ostree admin --sysroot="$S" deploy --retain --os=lakeos "$base" \
    || return 1
  if [[ $r == 1 ]]; then
    # The hard-link checkout must not have changed any stored object.
    log "ostree fsck of the $t repo (untimed, run 1 only)"
    untimed "ostree.$t.$r.fsck" ostree --repo="$R" fsck || return 1
  fi
}

# ---- run -----------------------------------------------------------------------
for t in "${TREE_LIST[@]}"; do
  log "warming the page cache for tree $t"
  warm "$WORK/trees/$t"
  for ((r = 1; r <= RUNS; r++)); do
    # Alternate which side goes first, so neither always inherits the other's
    # dirty pages and write-back.
    sides=(lake ostree)
    if ((r % 2 == 0)); then sides=(ostree lake); fi
    for s in "${sides[@]}"; do
      want "$s" || continue
      "${s}_run" "$t" "$r" || log "$s $t run $r failed (see above)"
    done
  done
  if [[ $KEEP != 1 ]]; then wipe "$WORK/lake"; wipe "$WORK/sysroot"; wipe "$WORK/checkout"; fi
done
END=$(date +%s)

# ---- report ----------------------------------------------------------------------
NOTES+=("warm page cache: caches are not dropped; each tree is read once before its runs; sync (untimed) before every timed step")
NOTES+=("every run starts from a fresh lake / ostree sysroot; setup (import, first deploy, checkout, dpkg -i) is untimed")
NOTES+=("ostree: bare repo in the sysroot (ostree admin init-fs), commit from a hard-link checkout with --link-checkout-speedup (as rpm-ostree does), default fsync; deploy/rollback with --retain")
NOTES+=("ostree rollback = ostree admin deploy of the previous commit (a new deployment; 2022.7 has no admin rollback); lake rollback = a new generation of the previous commit")
NOTES+=("lake rollback --now also writes the difference into the live overlay root (MERGED)")
NOTES+=("both trees carry a stand-in kernel+initramfs (24 MiB random) in /usr/lib/modules/$KVER")
json_list() { local sep="" n; printf '['; for n in "$@"; do printf '%s"%s"' "$sep" "$(printf '%s' "$n" | sed 's/\\/\\\\/g; s/"/\\"/g')"; sep=", "; done; printf ']'; }
META="$WORK/meta.json"
{
  printf '{'
  printf '"date": "%s", ' "$(date -u +%FT%TZ)"
  printf '"hostname": "%s", ' "$(hostname)"
  printf '"kernel": "%s", ' "$(uname -r)"
  printf '"cpu": "%s", ' "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo | sed 's/"/\\"/g')"
  printf '"nproc": %s, ' "$(nproc)"
  printf '"mem_gib": %s, ' "$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)"
  printf '"fs": "%s", ' "$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")"
  printf '"work": "%s", ' "$WORK"
  printf '"git": "%s", ' "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  printf '"runs": %s, ' "$RUNS"
  printf '"quick": %s, ' "$([[ $QUICK == 1 ]] && echo true || echo false)"
  printf '"bulk_copies": %s, ' "$BULK"
  printf '"cache": "warm page cache", '
  printf '"total_run_s": %s, ' "$((END - START))"
  printf '"loadavg_start": "%s", "loadavg_end": "%s", ' "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '"pkg": %s, ' "$(echo "$PKG_JSON" | "$PY" -c "import json,sys; d=json.load(sys.stdin); d['mib']=$PKG_MIB; print(json.dumps(d))")"
  printf '"trees_order": %s, ' "$(json_list "${TREE_LIST[@]}")"
  printf '"tree_stats": {'
  sep=""
  for t in "${TREE_LIST[@]}"; do printf '%s"%s": %s' "$sep" "$t" "${TREE_JSON[$t]}"; sep=", "; done
  printf '}, "tool_versions": {'
  sep=""
  if want lake; then printf '"lake": "%s"' "$("$LAKECTL" --version 2>/dev/null | head -n 1 | sed 's/"/\\"/g')"; sep=", "; fi
  if want ostree; then printf '%s"ostree": "%s"' "$sep" "$(ostree --version | awk -F"'" '/Version/{print $2; exit}')"; fi
  printf '}, "notes": %s' "$(json_list "${NOTES[@]}")"
  printf '}\n'
} >"$META"

"$PY" "$HELPER" report --results "$RESULTS" --meta "$META" --json "$JSON_OUT" --md "$MD_OUT"

if [[ $FAILED != 0 ]]; then
  echo "" >&2
  echo "error: at least one step failed (see the stderr above)" >&2
  exit 1
fi
