#!/usr/bin/env bash
# LAKE-zone benchmark: the lakefs FUSE mount vs plain ext4 and two other FUSE
# file systems that mirror a directory (bindfs, fuse-overlayfs), all on the
# same file system (untar, git status, 1 GiB sequential write/read, 10k small files).
# Run ci/bench-lakezone.sh --help for usage. Helper: ci/bench_lakezone.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
HELPER="$HERE/bench_lakezone.py"

usage() {
  cat <<'EOF'
Usage: ci/bench-lakezone.sh [options]

One ext4 file system on a loop device (a sparse image file), and on it, side
by side:
  ext4       a plain directory
  lake       a lake (lakectl init) whose LAKE-zone volume "home" is mounted
             with `lakefs mount --foreground --name home LAKE MNT` (FUSE
             passthrough for file data where the kernel has it: the default)
  lake-nopt  the same with `-o passthrough=off` (every read and write through
             the daemon)
  bindfs     `bindfs SRC MNT` of an empty directory on the ext4 (plain options:
             single-threaded, no FUSE passthrough), as a peer FUSE file system
  fuse-overlayfs
             `fuse-overlayfs -o lowerdir=L,upperdir=U,workdir=W MNT` with an
             empty lowerdir and upperdir/workdir on the ext4: every file lands
             in the upper layer (a peer FUSE file system; default options)
The peers show what a FUSE file system costs on this host without lakefs's
history; they need the apt packages bindfs and fuse-overlayfs (ci/setup.sh).
Each run of each side starts from a fresh directory / fresh lake and mount,
and does, in a subdirectory `user/` (for the lake: MNT/user, so the LAKE zone;
for the peers: MNT/user):
  untar          tar -xf of a source tree (a git repository, 20k+ files; made
                 once from ~/.cargo/registry/src/* and /usr/include, cached as
                 images/bench/lakezone-src.tar)
  git-status     git status in it, warm: one untimed run, then the median of 3
  seq-write      dd bs=1M count=1024 conv=fsync of 1 GiB of random bytes (from
                 a file in the page cache). On the lake fsync returns once the
                 file's version is committed, so this includes hashing it.
  seq-write-nofsync
                 the same into a second file without conv=fsync, then
                 sync -f (syncfs) of the ext4 underneath: the data path alone;
                 on the lake the commit follows the close (commit-1g)
  seq-read       dd bs=1M of that file to /dev/null after sync and
                 echo 3 > /proc/sys/vm/drop_caches
  small-create, small-stat, small-delete
                 10k files of 1 KiB in 100 directories: created, stat'ed,
                 deleted (python os calls, each phase timed)
lake sides also record: catchup (seconds from the end of the untar until the
ref home/main stopped moving for --quiet s; then a "flush" control request
shows whether anything was still pending), commits-untar (commits on the ref
then), commit-1g (the same catch-up after the unsynced 1 GiB write), commits-total,
daemon-cpu (user+sys seconds of the lakefs process per run). These do not
apply to the peers; lake sides and peers record unmount (seconds to unmount
and for the daemon to exit; in the JSON only).

Ratios are ext4 time / side time (1.0 = as fast as ext4; the issue's targets
for lakefs: >= 0.7 for data, >= 0.5 for metadata). With lake and a peer, a
second table "lakefs vs other FUSE file systems" gives peer time / lakefs
(passthrough) time per workload (> 1: lakefs is faster than that peer).

Options:
  --runs N         runs per side (default 3); medians are reported
  --quick          one run, 2k small files, 256 MiB sequential file
  --only LIST      comma list of ext4,lake,lake-nopt,bindfs,fuse-overlayfs
                   (default all)
  --seq-mib N      sequential file size in MiB (default 1024)
  --small N        small files (default 10000)
  --img-gib N      size of the sparse ext4 image (default 8)
  --quiet S        catch-up: seconds without a ref move that count as caught
                   up (default 5)
  --tree big|cargo the source tree: big = ~/.cargo/registry/src/* and
                   /usr/include (20k+ files; images/bench/lakezone-src.tar),
                   cargo = ~/.cargo/registry/src/* alone (~12.5k files;
                   images/bench/lakezone-src-cargo.tar); made once if missing
  --tarball PATH   use this tarball instead
  --work DIR       work dir (default /var/tmp/lake-bench-lakezone); removed at
                   the end unless --keep
  --mnt DIR        where the FUSE mounts go (default /mnt/lake-bench-lakezone).
                   Not below /var, /usr, /etc or /opt: zones.toml maps those
                   prefixes onto the mount point as the POSIX zone, which is
                   never committed.
  --lakefs PATH    lakefs binary (default target/release/lakefs)
  --lakectl PATH   lakectl binary (default target/release/lakectl)
  --json OUT       JSON report (default images/bench/lakezone.json)
  --md OUT         markdown table (default images/bench/lakezone.md)
  --keep           keep the work dir (and the loop device's image)
  -h, --help       this text

Needs root (loop device, mount, drop_caches, FUSE). Page cache warm except for
the read; the tarball and the random source are read once before each use.
Exit status: 0 unless setup failed or bad usage (failed steps are reported in
the table and the JSON).
EOF
}

RUNS=3
QUICK=0
ONLY="ext4,lake,lake-nopt,bindfs,fuse-overlayfs"
SEQ_MIB=1024
SMALL=10000
IMG_GIB=8
QUIET=5
TREE=big
TARBALL=""
WORK=/var/tmp/lake-bench-lakezone
MNT=/mnt/lake-bench-lakezone
LAKEFS="$ROOT/target/release/lakefs"
LAKECTL="$ROOT/target/release/lakectl"
JSON_OUT="$ROOT/images/bench/lakezone.json"
MD_OUT="$ROOT/images/bench/lakezone.md"
KEEP=0

need_arg() { [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs)     need_arg "$@"; RUNS="$2"; shift 2 ;;
    --quick)    QUICK=1; shift ;;
    --only)     need_arg "$@"; ONLY="$2"; shift 2 ;;
    --seq-mib)  need_arg "$@"; SEQ_MIB="$2"; shift 2 ;;
    --small)    need_arg "$@"; SMALL="$2"; shift 2 ;;
    --img-gib)  need_arg "$@"; IMG_GIB="$2"; shift 2 ;;
    --quiet)    need_arg "$@"; QUIET="$2"; shift 2 ;;
    --tree)     need_arg "$@"; TREE="$2"; shift 2 ;;
    --tarball)  need_arg "$@"; TARBALL="$2"; shift 2 ;;
    --work)     need_arg "$@"; WORK="$2"; shift 2 ;;
    --mnt)      need_arg "$@"; MNT="$2"; shift 2 ;;
    --lakefs)   need_arg "$@"; LAKEFS="$2"; shift 2 ;;
    --lakectl)  need_arg "$@"; LAKECTL="$2"; shift 2 ;;
    --json)     need_arg "$@"; JSON_OUT="$2"; shift 2 ;;
    --md)       need_arg "$@"; MD_OUT="$2"; shift 2 ;;
    --keep)     KEEP=1; shift ;;
    -h|--help)  usage; exit 0 ;;
    *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ $QUICK == 1 ]]; then RUNS=1; SMALL=2000; SEQ_MIB=256; fi
for v in RUNS SEQ_MIB SMALL IMG_GIB; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "error: ${v,,} must be a positive integer" >&2; exit 2; }
done
[[ "$QUIET" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "error: --quiet must be a number" >&2; exit 2; }
SIDES=()
for s in ${ONLY//,/ }; do
  case "$s" in ext4|lake|lake-nopt|bindfs|fuse-overlayfs) SIDES+=("$s") ;; *) echo "error: --only: unknown side '$s'" >&2; exit 2 ;; esac
done
TREE_SRC=()
case "$TREE" in
  big) [[ -n "$TARBALL" ]] || TARBALL="$ROOT/images/bench/lakezone-src.tar" ;;
  cargo) [[ -n "$TARBALL" ]] || TARBALL="$ROOT/images/bench/lakezone-src-cargo.tar"
         TREE_SRC=(--src "$(ls -d "$HOME"/.cargo/registry/src/* | head -n1)") ;;
  *) echo "error: --tree must be big or cargo" >&2; exit 2 ;;
esac
abs() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
LAKEFS=$(abs "$LAKEFS"); LAKECTL=$(abs "$LAKECTL"); TARBALL=$(abs "$TARBALL")
JSON_OUT=$(abs "$JSON_OUT"); MD_OUT=$(abs "$MD_OUT"); WORK=$(abs "$WORK"); MNT=$(abs "$MNT")

log() { printf 'bench-lakezone: %s\n' "$*" >&2; }
die() { printf 'bench-lakezone: error: %s\n' "$*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "run as root (loop device, mounts, drop_caches)"
for s in "${SIDES[@]}"; do
  if [[ $s == lake* ]]; then
    [[ -x "$LAKEFS" ]] || die "no lakefs binary at $LAKEFS (cargo build --release -p lake-tools)"
    [[ -x "$LAKECTL" ]] || die "no lakectl binary at $LAKECTL (cargo build --release -p lakectl)"
  fi
  if [[ $s == bindfs || $s == fuse-overlayfs ]]; then
    command -v "$s" >/dev/null || die "$s not found (apt-get install bindfs fuse-overlayfs, or ci/setup.sh; or leave it out of --only)"
  fi
done
for c in losetup mkfs.ext4 git tar dd "$PY"; do command -v "$c" >/dev/null || die "$c not found"; done

# --- setup ---------------------------------------------------------------------
mkdir -p "$(dirname "$JSON_OUT")" "$(dirname "$MD_OUT")"
if [[ ! -s "$TARBALL" ]]; then
  log "making the source tree tarball $TARBALL (once)"
  mkdir -p "$(dirname "$TARBALL")"
  "$PY" "$HELPER" make-tree "$TARBALL" "${TREE_SRC[@]}" >"$TARBALL.json" || die "make-tree failed"
fi
TREE_JSON=$(cat "$TARBALL.json" 2>/dev/null || echo '{}')
TREE_ENTRIES=$(tar -tf "$TARBALL" | wc -l)
NOFILE=$(ulimit -Hn)
# The driver holds a descriptor per inode the kernel knows (until it forgets
# them: the drop_caches before the read does that); the untarred tree needs one each.
if [[ " ${SIDES[*]} " == *" lake"* && $NOFILE != unlimited ]] && ((TREE_ENTRIES + 500 > NOFILE)); then
  log "WARNING: the tree has $TREE_ENTRIES entries but the open-file hard limit here is $NOFILE"
  log "WARNING: (not raisable without CAP_SYS_RESOURCE): lakefs may fail with EMFILE (try --tree cargo)"
fi

LOOP="" EXT4="$WORK/ext4" MOUNT_PID="" MOUNT_DIR="" PEER_PID="" PEER_MNT=""
cleanup() {
  set +e
  stop_lake >/dev/null 2>&1
  stop_peer >/dev/null 2>&1
  if mountpoint -q "$EXT4" 2>/dev/null; then umount "$EXT4" || umount -l "$EXT4"; fi
  [[ -n "$LOOP" ]] && losetup -d "$LOOP"
  rmdir "$MNT"/* "$MNT" 2>/dev/null
  if [[ $KEEP == 0 ]]; then rm -rf "$WORK"; else log "kept $WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK"
mkdir -p "$WORK" "$EXT4" "$MNT"
truncate -s "${IMG_GIB}G" "$WORK/ext4.img"
# Inode tables and journal initialised now, not lazily while we measure.
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$WORK/ext4.img"
LOOP=$(losetup --find --show "$WORK/ext4.img")
mount "$LOOP" "$EXT4"
FS_DESC="ext4 on $LOOP (a ${IMG_GIB} GiB sparse file on $(findmnt -n -o FSTYPE -T "$WORK" | head -n1)), default mount options"
log "$FS_DESC"
log "random source: $SEQ_MIB MiB"
head -c "$((SEQ_MIB * 1048576))" /dev/urandom >"$WORK/rand.bin"

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A SIDE_INFO=()

record() { # SIDE RUN STEP STATUS VALUE [NOTE]
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >>"$RESULTS"
  if [[ $4 == ok ]]; then log "$1 run $2: $3 = $5${6:+ ($6)}"; else log "$1 run $2: $3 FAILED: ${6:-}"; fi
}
now() { date +%s.%N; }
dt() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
# Times "$@"; prints the seconds. Fails like the command; its stderr goes to
# $WORK/step.err (errmsg: a summary for the report).
timed() { local t0 rc=0; t0=$(now); "$@" 2>"$WORK/step.err" || rc=$?; local t1; t1=$(now); dt "$t0" "$t1"; return $rc; }
errmsg() { echo "$1 ($(grep -c . "$WORK/step.err" 2>/dev/null) stderr lines, first: $(head -n1 "$WORK/step.err" 2>/dev/null | tr '\t' ' ' | head -c 200))"; }

start_lake() { # LAKE MNT [-o OPTS]
  local lake=$1 mnt=$2; shift 2
  "$LAKECTL" --lake "$lake" init >/dev/null || return 1
  mkdir -p "$mnt"
  # As lakefs.service (LimitNOFILE=1048576): the driver holds a descriptor per known inode.
  (ulimit -Hn 1048576 && ulimit -Sn 1048576
   exec "$LAKEFS" mount --foreground --name home "$@" "$lake" "$mnt") >"$WORK/lakefs.$(basename "$lake").log" 2>&1 &
  MOUNT_PID=$! MOUNT_DIR=$mnt
  "$PY" "$HELPER" wait-info "$mnt" --timeout 60 --pid "$MOUNT_PID" >"$WORK/info.json" || {
    tail -n 20 "$WORK/lakefs.$(basename "$lake").log" >&2; return 1; }
}
daemon_cpu() { # PID -> user+sys seconds; nothing if it is gone
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || true
}
reap() { # PID SECONDS MESSAGE: waits for a daemon to exit; SIGKILL (and MESSAGE) after SECONDS
  local i
  for i in $(seq "$(($2 * 10))"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then
    log "$3: killing it"; kill -KILL "$1"
  fi
  wait "$1" 2>/dev/null || true
}
stop_lake() {
  [[ -n "$MOUNT_PID" ]] || return 0
  local t0; t0=$(now)
  kill -TERM "$MOUNT_PID" 2>/dev/null || true
  # The daemon makes its final commit and unmounts on SIGTERM.
  reap "$MOUNT_PID" 60 "lakefs $MOUNT_PID did not exit within 60 s of SIGTERM"
  if findmnt -n --mountpoint "$MOUNT_DIR" -o FSTYPE 2>/dev/null | grep -q '^fuse'; then
    log "$MOUNT_DIR still mounted after the daemon exited: unmounting"; umount -l "$MOUNT_DIR"
  fi
  STOP_S=$(dt "$t0" "$(now)")
  MOUNT_PID="" MOUNT_DIR=""
}

# The peers (bindfs, fuse-overlayfs): a fresh backing directory on the ext4 per run.
peer_backing() { # SIDE RUN
  case "$1" in bindfs) echo "$EXT4/bindfs-src-$2" ;; fuse-overlayfs) echo "$EXT4/ovl-$2" ;; esac
}
start_peer() { # SIDE RUN: mounts it on $MNT/SIDE-RUN (PEER_MNT)
  local side=$1 run=$2 src mnt="$MNT/$1-$2" cmd=() i
  src=$(peer_backing "$side" "$run")
  case "$side" in
    bindfs) mkdir -p "$src"; cmd=(bindfs -f "$src" "$mnt") ;;
    fuse-overlayfs) mkdir -p "$src/lower" "$src/upper" "$src/work"
      cmd=(fuse-overlayfs -f -o "lowerdir=$src/lower,upperdir=$src/upper,workdir=$src/work" "$mnt") ;;
  esac
  mkdir -p "$mnt"
  # In the foreground (-f only; otherwise default options) so there is a PID to
  # wait for after the unmount; the same open-file limit as the lakefs daemon.
  (ulimit -Hn 1048576 && ulimit -Sn 1048576
   exec "${cmd[@]}") >"$WORK/$side-$run.log" 2>&1 &
  PEER_PID=$! PEER_MNT=$mnt
  for i in $(seq 300); do
    findmnt -n --mountpoint "$mnt" -o FSTYPE 2>/dev/null | grep -q '^fuse' && return 0
    kill -0 "$PEER_PID" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$WORK/$side-$run.log" >&2
  return 1
}
stop_peer() { # the daemon exits once its mount is gone
  [[ -n "$PEER_PID" ]] || return 0
  local t0; t0=$(now)
  if findmnt -n --mountpoint "$PEER_MNT" >/dev/null 2>&1; then
    fusermount3 -u "$PEER_MNT" 2>/dev/null || umount "$PEER_MNT" 2>/dev/null || {
      log "$PEER_MNT busy: lazy unmount"; umount -l "$PEER_MNT" || true; }
  fi
  reap "$PEER_PID" 30 "$PEER_MNT: daemon $PEER_PID did not exit within 30 s of the unmount"
  STOP_S=$(dt "$t0" "$(now)")
  PEER_PID="" PEER_MNT=""
}

write_then_syncfs() { dd if="$WORK/rand.bin" of="$1" bs=1M count="$SEQ_MIB" status=none && sync -f "$EXT4"; }
gstatus() { git -C "$1" -c core.fsmonitor=false -c core.untrackedCache=false status --porcelain; }
gstatus_quiet() { gstatus "$1" >/dev/null; }
git_status() { # DIR: "MEDIAN DIRTY": warm median of 3 (after one untimed run), entries git status lists
  local d=$1 out t ts=() dirty
  out=$(gstatus "$d") || return 1
  dirty=$(printf '%s' "$out" | grep -c . || true)
  for _ in 1 2 3; do
    t=$(timed gstatus_quiet "$d") || return 1
    ts+=("$t")
  done
  echo "$(printf '%s\n' "${ts[@]}" | sort -g | sed -n 2p) $dirty"
}

run_side() { # SIDE RUN
  local side=$1 run=$2 base lake="" mnt="" peer="" t out
  case "$side" in
    ext4) base="$EXT4/plain-$run" ; mkdir -p "$base" ;;
    lake|lake-nopt)
      lake="$EXT4/lake-$side-$run" mnt="$MNT/$side-$run"
      local opts=()
      [[ $side == lake-nopt ]] && opts=(-o passthrough=off)
      if ! start_lake "$lake" "$mnt" "${opts[@]}"; then
        record "$side" "$run" mount fail "" "lakefs mount failed (log: $WORK/lakefs.$(basename "$lake").log)"
        stop_lake; return 0
      fi
      [[ -n "${SIDE_INFO[$side]:-}" ]] || SIDE_INFO[$side]=$(tr -d '\n' <"$WORK/info.json")
      base="$mnt" ;;
    bindfs|fuse-overlayfs)
      peer=$(peer_backing "$side" "$run") mnt="$MNT/$side-$run"
      if ! start_peer "$side" "$run"; then
        record "$side" "$run" mount fail "" "$side mount failed (log: $WORK/$side-$run.log)"
        stop_peer; rm -rf "$peer"; return 0
      fi
      base="$mnt" ;;
  esac
  local d="$base/user"
  mkdir -p "$d"
  sync

  # untar
  cat "$TARBALL" >/dev/null
  if t=$(timed tar -xf "$TARBALL" -C "$d"); then record "$side" "$run" untar ok "$t"; else record "$side" "$run" untar fail "" "$(errmsg "tar exited non-zero")"; fi
  local t_end; t_end=$(date +%s.%N)
  if [[ -n "$lake" ]]; then
    if out=$("$PY" "$HELPER" catchup "$lake" --since "$t_end" --quiet "$QUIET" --timeout 600 --mnt "$mnt"); then
      record "$side" "$run" catchup ok "$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["catchup_s"])' "$out")" "$out"
    else
      record "$side" "$run" catchup fail "" "catchup helper failed"
    fi
    local n; n=$("$PY" "$HELPER" commits "$lake" --lakectl "$LAKECTL")
    if [[ -n "$n" ]]; then record "$side" "$run" commits-untar ok "$n"; else record "$side" "$run" commits-untar fail "" "lakectl log failed"; fi
  fi

  # git status (warm)
  local gs dirty
  if gs=$(git_status "$d/src"); then
    dirty=${gs#* } gs=${gs%% *}
    record "$side" "$run" git-status ok "$gs" "$([[ $dirty -gt 0 ]] && echo "NOT CLEAN: $dirty entries" || echo clean)"
  else
    record "$side" "$run" git-status fail "" "git status failed"
  fi

  # 1 GiB sequential write, then read after dropping caches
  cat "$WORK/rand.bin" >/dev/null
  if t=$(timed dd if="$WORK/rand.bin" of="$d/seq.bin" bs=1M count="$SEQ_MIB" conv=fsync status=none); then
    record "$side" "$run" seq-write ok "$t"
  else
    record "$side" "$run" seq-write fail "" "$(errmsg "dd write failed")"
  fi
  # The same write without fsync, then syncfs of the ext4 underneath (where the
  # lake's working tree and the peers' backing dirs are too): the data path
  # alone. FUSE writes back a writeback-cached file on its close, so its data
  # is on the ext4 by then. The committer records the file after its close;
  # commit-1g is how long that takes.
  cat "$WORK/rand.bin" >/dev/null
  if t=$(timed write_then_syncfs "$d/seq2.bin"); then
    record "$side" "$run" seq-write-nofsync ok "$t"
  else
    record "$side" "$run" seq-write-nofsync fail "" "$(errmsg "dd write failed")"
  fi
  t_end=$(date +%s.%N)
  if [[ -n "$lake" ]]; then
    if out=$("$PY" "$HELPER" catchup "$lake" --since "$t_end" --quiet "$QUIET" --timeout 600); then
      record "$side" "$run" commit-1g ok "$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["catchup_s"])' "$out")" "$out"
    fi
  fi
  sync
  echo 3 >/proc/sys/vm/drop_caches
  if t=$(timed dd if="$d/seq.bin" of=/dev/null bs=1M status=none); then
    record "$side" "$run" seq-read ok "$t"
  else
    record "$side" "$run" seq-read fail "" "$(errmsg "dd read failed")"
  fi
  if [[ "$(stat -c %s "$d/seq.bin" 2>/dev/null)" != "$((SEQ_MIB * 1048576))" ]]; then
    record "$side" "$run" seq-size fail "" "seq.bin has the wrong size"
  fi

  # small files
  if out=$("$PY" "$HELPER" smallfiles "$d/small" --count "$SMALL" --size 1024); then
    local ph
    for ph in create stat delete; do
      record "$side" "$run" "small-$ph" ok "$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]+"_s"])' "$out" "$ph")"
    done
  else
    record "$side" "$run" small-create fail "" "smallfiles failed"
  fi

  # A daemon killed from outside takes its mount along, and the steps after
  # that ran on the bare mount point: flag the run, drop what they left there.
  if [[ -n "$mnt" ]] && ! findmnt -n --mountpoint "$mnt" >/dev/null 2>&1; then
    record "$side" "$run" mount fail "" "the mount was gone before the end of the run (daemon killed?): this run's numbers are not valid"
    rm -rf "$mnt/user"
  fi
  if [[ -n "$lake" ]]; then
    local cpu; cpu=$(daemon_cpu "$MOUNT_PID")
    stop_lake
    [[ -n "$cpu" ]] && record "$side" "$run" daemon-cpu ok "$cpu"
    record "$side" "$run" unmount ok "$STOP_S"
    n=$("$PY" "$HELPER" commits "$lake" --lakectl "$LAKECTL")
    [[ -n "$n" ]] && record "$side" "$run" commits-total ok "$n"
    rm -rf "$lake"; rmdir "$mnt"
  elif [[ -n "$peer" ]]; then
    stop_peer
    record "$side" "$run" unmount ok "$STOP_S"
    # The backing dir, not the mount point (it may still be lazily mounted).
    rm -rf "$peer"; rmdir "$mnt" 2>/dev/null || true
  else
    rm -rf "$base"
  fi
  sync
}

for run in $(seq "$RUNS"); do
  for side in "${SIDES[@]}"; do
    log "== $side, run $run/$RUNS"
    run_side "$side" "$run"
  done
done

# --- report --------------------------------------------------------------------
META="$WORK/meta.json"
{
  printf '{"date": "%s", "runs": %s, ' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$RUNS"
  printf '"machine": {"kernel": "%s", "nproc": %s, "mem_gib": %s, "cpu": "%s", "loadavg_start": "%s", "loadavg_end": "%s"}, ' \
    "$(uname -r)" "$(nproc)" "$(awk '/MemTotal/{printf "%.1f", $2/1048576}' /proc/meminfo)" \
    "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1 | tr -d '"\\')" "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '"fs": "%s", "tree": %s, "tree_name": "%s", "tree_entries": %s, "nofile_hard": "%s", "seq_mib": %s, "small_files": %s, "quiet_s": %s, ' \
    "$FS_DESC" "$TREE_JSON" "$TREE" "$TREE_ENTRIES" "$NOFILE" "$SEQ_MIB" "$SMALL" "$QUIET"
  printf '"versions": {"lakefs": "%s", "git": "%s"' \
    "$("$LAKEFS" --version 2>/dev/null | head -n1 | tr -d '"\\')" "$(git --version | tr -d '"')"
  for s in "${SIDES[@]}"; do
    # fuse-overlayfs --version starts with fusermount3's version: take its own line.
    case "$s" in
      bindfs) printf ', "bindfs": "%s"' "$(bindfs --version 2>/dev/null | head -n1 | tr -d '"\\')" ;;
      fuse-overlayfs) printf ', "fuse-overlayfs": "%s"' \
        "$(fuse-overlayfs --version 2>/dev/null | { grep -m1 '^fuse-overlayfs' || true; } | tr -d '"\\')" ;;
    esac
  done
  printf '}, '
  printf '"sides": {'
  sep=""
  for s in "${SIDES[@]}"; do
    case "$s" in
      ext4) desc="a plain directory on the ext4" ;;
      lake) desc="lakefs mount --name home (default options: FUSE passthrough where the kernel has it); lake on the same ext4; .lake/info: ${SIDE_INFO[lake]:-n/a}" ;;
      lake-nopt) desc="lakefs mount --name home -o passthrough=off; lake on the same ext4; .lake/info: ${SIDE_INFO[lake-nopt]:-n/a}" ;;
      bindfs) desc="bindfs SRC MNT (plain options: single-threaded, no passthrough), SRC a fresh empty directory on the same ext4" ;;
      fuse-overlayfs) desc="fuse-overlayfs -o lowerdir=L,upperdir=U,workdir=W MNT (default options), L empty, U and W fresh directories on the same ext4" ;;
    esac
    printf '%s"%s": %s' "$sep" "$s" "$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$desc")"
    sep=", "
  done
  printf '}, "notes": ['
  printf '"every run starts from a fresh directory / lake and mount; the workloads run in user/ below it", '
  printf '"warm page cache (tarball and random source read once before use); seq-read after sync + drop_caches", '
  printf '"git status: one untimed run (refreshes the index after the untar), then the median of 3", '
  printf '"seq-write is dd conv=fsync: on the lake, fsync returns once the file version is committed (hashed, stored); seq-write-nofsync is dd without fsync + syncfs of the ext4 underneath (data path only; the lake commits it afterwards: commit-1g)", '
  printf '"catch-up: from the end of the untar until the ref home/main stayed unchanged for %ss (the quiet time is not included)"' "$QUIET"
  printf ']}\n'
} >"$META"
"$PY" "$HELPER" report --results "$RESULTS" --meta "$META" --json "$JSON_OUT" --md "$MD_OUT"
log "report: $JSON_OUT, $MD_OUT"
