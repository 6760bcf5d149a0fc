#!/usr/bin/env bash
# Side-by-side ingest benchmark: lake vs ostree, restic, borg and cp.
# Run ci/bench-ingest.sh --help for usage. Helper: ci/bench_report.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
HELPER="$HERE/bench_report.py"

usage() {
  cat <<'EOF'
Usage: ci/bench-ingest.sh [options]

Side-by-side ingest benchmark of lake (lakectl) against ostree, restic, borg
and plain cp, on two trees, each ingested as version 1 and then as a slightly
changed version 2 into the same repository (incremental):
  rootfs  a Debian rootfs (device nodes, fifos and sockets removed, since
          ostree cannot store them); v2 changes ~1% of the files
          (rewrite, append, delete, add)
  large   --large-gb GiB in 8 reproducible files (55% pseudo-random, 25%
          log-like text, 20% sparse "pages"); v2 overwrites 3 small regions
          in the middle of each file and appends 1 MiB to one file

Options:
  --rootfs DIR     Debian rootfs to use (copied; DIR is not modified).
                   Default: ci/debian-rootfs.sh --extract WORK/trees/rootfs
  --large-gb N     size of the large-file tree in GiB (default 2, may be 0.5)
  --work DIR       work dir for trees and repos, all on one filesystem
                   (default /var/tmp/lake-bench); removed at the end
  --lakectl PATH   lakectl binary (default target/release/lakectl under the
                   repo root); if missing, lake rows are skipped
  --json OUT       JSON report (default images/bench/ingest.json under the
                   repo root)
  --only LIST      comma list of lake,ostree,restic,borg,cp (default: all)
  --trees LIST     comma list of rootfs,large (default: both)
  --borg-zstd      also run borg with --compression zstd,3 (row borg-zstd3)
  --keep           keep the work dir (trees, repos, logs)
  -h, --help       this text

Method: wall time of each ingest, user+sys CPU from /usr/bin/time; caches are
not dropped (warm page cache: each tree is read once before each round), and
`sync` runs untimed between ingests. Stored size = du -sb of the repo after
each version. lake also runs pinned to one core (taskset -c 0) on the large
tree (row lake-1core; target >= 1500 MB/s). restic uses repository version 2
(compression "auto"); borg uses its default lz4. Tool caches (restic, borg)
live under WORK/home and are reported separately, not in "stored".

Exit status: 0 unless a tool failed (its stderr is shown) or bad usage.
EOF
}

ROOTFS=""
LARGE_GB=2
WORK=/var/tmp/lake-bench
LAKECTL="$ROOT/target/release/lakectl"
JSON_OUT="$ROOT/images/bench/ingest.json"
ONLY="lake,ostree,restic,borg,cp"
TREES="rootfs,large"
BORG_ZSTD=0
KEEP=0

need_arg() { [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rootfs)   need_arg "$@"; ROOTFS="$2"; shift 2 ;;
    --large-gb) need_arg "$@"; LARGE_GB="$2"; shift 2 ;;
    --work)     need_arg "$@"; WORK="$2"; shift 2 ;;
    --lakectl)  need_arg "$@"; LAKECTL="$2"; shift 2 ;;
    --json)     need_arg "$@"; JSON_OUT="$2"; shift 2 ;;
    --only)     need_arg "$@"; ONLY="$2"; shift 2 ;;
    --trees)    need_arg "$@"; TREES="$2"; shift 2 ;;
    --borg-zstd) BORG_ZSTD=1; shift ;;
    --keep)     KEEP=1; shift ;;
    -h|--help)  usage; exit 0 ;;
    *) echo "error: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! [[ "$LARGE_GB" =~ ^[0-9]+([.][0-9]+)?$ ]] || \
   ! awk -v g="$LARGE_GB" 'BEGIN{exit !(g > 0)}'; then
  echo "error: --large-gb must be a positive number, got '$LARGE_GB'" >&2; exit 2
fi
for t in ${ONLY//,/ }; do
  case "$t" in lake|ostree|restic|borg|cp) ;; *) echo "error: --only: unknown tool '$t'" >&2; exit 2 ;; esac
done
for t in ${TREES//,/ }; do
  case "$t" in rootfs|large) ;; *) echo "error: --trees: unknown tree '$t'" >&2; exit 2 ;; esac
done
if [[ -n "$ROOTFS" && ! -d "$ROOTFS" ]]; then echo "error: --rootfs $ROOTFS is not a directory" >&2; exit 2; fi
case "$LAKECTL" in /*) ;; *) LAKECTL="$ROOT/$LAKECTL" ;; esac
case "$JSON_OUT" in /*) ;; *) JSON_OUT="$PWD/$JSON_OUT" ;; esac
case "$WORK" in /*) ;; *) WORK="$PWD/$WORK" ;; esac
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
command -v "$PY" >/dev/null || { echo "error: $PY not found" >&2; exit 2; }

want() { [[ ",$ONLY," == *",$1,"* ]]; }
want_tree() { [[ ",$TREES," == *",$1,"* ]]; }
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- work dir --------------------------------------------------------------
MARK="$WORK/.lake-bench"
if [[ -e "$WORK" && ! -e "$MARK" && -n "$(ls -A "$WORK" 2>/dev/null)" ]]; then
  echo "error: --work $WORK exists, is not empty and was not made by this script" >&2
  exit 2
fi
mkdir -p "$WORK"
touch "$MARK"
rm -rf "${WORK:?}/trees" "${WORK:?}/repos" "${WORK:?}/logs" "${WORK:?}/home" "${WORK:?}/results.tsv"
mkdir -p "$WORK/trees" "$WORK/repos" "$WORK/logs" "$WORK/home"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
cleanup() {
  if [[ $KEEP == 1 ]]; then
    log "work dir kept: $WORK"
  else
    rm -rf "${WORK:?}/trees" "${WORK:?}/repos" "${WORK:?}/logs" "${WORK:?}/home" \
           "${WORK:?}/results.tsv" "${WORK:?}/trees.json" "${WORK:?}/meta.json" "$MARK"
    rmdir "$WORK" 2>/dev/null || true
  fi
}
trap cleanup EXIT

export RESTIC_PASSWORD=bench
export BORG_PASSPHRASE=""
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

# ---- tools -------------------------------------------------------------------
NOTES=()
TOOLS=()
SKIPPED=()
if want lake; then
  if [[ -x "$LAKECTL" ]]; then
    TOOLS+=(lake)
  else
    msg="lake: lakectl not found at $LAKECTL -- build it with cargo build --release (lake rows skipped)"
    log "$msg"; SKIPPED+=("$msg")
  fi
fi
declare -A PKG=([ostree]=ostree [restic]=restic [borg]=borgbackup [cp]=coreutils)
for t in ostree restic borg cp; do
  want "$t" || continue
  if command -v "$t" >/dev/null; then
    TOOLS+=("$t")
    if [[ $t == borg && $BORG_ZSTD == 1 ]]; then TOOLS+=(borg-zstd3); fi
  else
    msg="$t: not installed (apt-get install ${PKG[$t]}); rows skipped"
    log "$msg"; SKIPPED+=("$msg")
  fi
done
[[ ${#TOOLS[@]} -gt 0 ]] || { echo "error: no tool to run" >&2; exit 2; }
log "tools: ${TOOLS[*]}"

FAILED=0
# Runs one ingest: run_ingest TOOL TREE VER CMD...
# Appends a line to results.tsv: tool tree ver status wall user sys rss stored aux note
run_ingest() {
  local tool="$1" tree="$2" ver="$3"; shift 3
  local tag="$tool.$tree.$ver" lg="$WORK/logs"
  sync
  local t0 t1 rc=0
  t0=$(date +%s%N)
  /usr/bin/time -f '%e %U %S %M' -o "$lg/$tag.time" "$@" >"$lg/$tag.out" 2>"$lg/$tag.err" || rc=$?
  t1=$(date +%s%N)
  if [[ $rc != 0 ]]; then
    FAILED=1
    echo "" >&2
    echo "!!! $tool failed on $tree $ver (exit $rc): $*" >&2
    echo "!!! stderr (last 40 lines):" >&2
    tail -n 40 "$lg/$tag.err" >&2 || true
    printf '%s\t%s\t%s\tfailed\t\t\t\t\t\t\texit %s\n' "$tool" "$tree" "$ver" "$rc" >>"$RESULTS"
    return 1
  fi
  local wall user sys rss
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  read -r _ user sys rss < <(tail -n 1 "$lg/$tag.time")
  sync
  local repo stored aux="" note=""
  repo="$(repo_of "$tool" "$tree")"
  if [[ $tool == cp ]]; then
    stored=$(du -sbc "$repo".v* | tail -n 1 | cut -f1)
  else
    stored=$(du -sb "$repo" | cut -f1)
  fi
  case "$tool" in
    restic) aux=$(du -sb "$RESTIC_CACHE_DIR" 2>/dev/null | cut -f1 || true) ;;
    borg*)  aux=$(du -sb "$BORG_BASE_DIR" 2>/dev/null | cut -f1 || true) ;;
    lake*)  note="commit $(grep -v '^[[:space:]]*$' "$lg/$tag.out" | tail -n 1 | cut -c1-80)" ;;
  esac
  printf '%s\t%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$tool" "$tree" "$ver" "$wall" "$user" "$sys" "$rss" "$stored" "$aux" "$note" >>"$RESULTS"
  log "$(printf '%-10s %-6s %s  %8.2f s  stored %s' "$tool" "$tree" "$ver" "$wall" "$(numfmt --to=iec "$stored")")"
}

repo_of() { echo "$WORK/repos/$1-$2"; }

# Per tool x tree caches for restic and borg, inside the work dir (not in "stored").
set_tool_env() {
  export RESTIC_CACHE_DIR="$WORK/home/restic-$2"
  export BORG_BASE_DIR="$WORK/home/$1-$2"
}

# Tool-specific init (untimed) and ingest (timed).
init_repo() {
  local tool="$1" tree="$2" repo; repo="$(repo_of "$tool" "$tree")"
  local lg="$WORK/logs/$tool.$tree.init"
  set_tool_env "$tool" "$tree"
  local rc=0
  case "$tool" in
    lake|lake-1core) "$LAKECTL" --lake "$repo" init >"$lg.out" 2>"$lg.err" || rc=$? ;;
    ostree) ostree --repo="$repo" init --mode=bare >"$lg.out" 2>"$lg.err" || rc=$? ;;
    restic) restic -r "$repo" init --repository-version 2 >"$lg.out" 2>"$lg.err" || rc=$? ;;
    borg|borg-zstd3) borg init --encryption=none "$repo" >"$lg.out" 2>"$lg.err" || rc=$? ;;
    cp) : ;;
  esac
  if [[ $rc != 0 ]]; then
    FAILED=1
    echo "!!! $tool init failed for $tree (exit $rc); stderr:" >&2
    tail -n 40 "$lg.err" >&2 || true
    return 1
  fi
}

ingest() {
  local tool="$1" tree="$2" ver="$3" src="$4" repo; repo="$(repo_of "$tool" "$tree")"
  set_tool_env "$tool" "$tree"
  case "$tool" in
    lake)       run_ingest "$tool" "$tree" "$ver" "$LAKECTL" --lake "$repo" commit "$src" -m "$ver" ;;
    lake-1core) run_ingest "$tool" "$tree" "$ver" taskset -c 0 "$LAKECTL" --lake "$repo" commit "$src" -m "$ver" ;;
    ostree)     run_ingest "$tool" "$tree" "$ver" ostree --repo="$repo" commit --branch=main --tree=dir="$src" ;;
    restic)     run_ingest "$tool" "$tree" "$ver" restic -r "$repo" backup "$src" ;;
    borg)       run_ingest "$tool" "$tree" "$ver" borg create "$repo::$ver" "$src" ;;
    borg-zstd3) run_ingest "$tool" "$tree" "$ver" borg create --compression zstd,3 "$repo::$ver" "$src" ;;
    cp)         run_ingest "$tool" "$tree" "$ver" cp -a "$src" "$repo.$ver" ;;
  esac
}

warm() { find "$1" -type f -exec cat {} + >/dev/null 2>&1 || true; }

# ---- meta ---------------------------------------------------------------------
tool_version() {
  case "$1" in
    lake) "$LAKECTL" --version 2>/dev/null | head -n 1 || echo unknown ;;
    ostree) ostree --version | awk -F"'" '/Version/{print $2; exit}' ;;
    restic) restic version | head -n 1 ;;
    borg) borg --version ;;
    cp) cp --version | head -n 1 ;;
  esac
}
NOTES+=("warm page cache: caches are not dropped; each tree is read once before each round, sync (untimed) before and after every ingest")
NOTES+=("restic: repository version 2 (compression auto); cache in work dir, size in aux_cache_bytes, not in stored")
NOTES+=("borg: --encryption=none, default compression lz4; files cache/chunks cache under BORG_BASE_DIR, not in stored")
NOTES+=("ostree: --mode=bare (uncompressed, whole-file dedup only), commits with default fsync")
NOTES+=("cp: cp -a to a fresh directory per version, no incremental; stored = both copies")
NOTES+=("v2 is made by changing the v1 tree in place, so restic/borg see the same path and use their parent snapshot / files cache")
if [[ $BORG_ZSTD == 1 ]]; then NOTES+=("borg-zstd3: borg create --compression zstd,3"); fi
for s in "${SKIPPED[@]}"; do NOTES+=("skipped: $s"); done

# ---- trees ---------------------------------------------------------------------
TREES_JSON="$WORK/trees.json"
echo '{}' >"$TREES_JSON"
tree_set() { # tree_set TREE KEY JSON
  "$PY" - "$TREES_JSON" "$1" "$2" "$3" <<'EOF'
import json, sys
p, tree, key, val = sys.argv[1:5]
d = json.load(open(p))
d.setdefault(tree, {})[key] = json.loads(val)
json.dump(d, open(p, "w"))
EOF
}

prepare_rootfs() {
  local dst="$WORK/trees/rootfs"
  if [[ -n "$ROOTFS" ]]; then
    log "copying rootfs $ROOTFS -> $dst (untimed)"
    cp -a "$ROOTFS" "$dst"
  elif [[ -x "$HERE/debian-rootfs.sh" ]]; then
    log "extracting rootfs with ci/debian-rootfs.sh --extract $dst"
    "$HERE/debian-rootfs.sh" --extract "$dst" >&2
  else
    echo "error: no --rootfs given and ci/debian-rootfs.sh not found; pass --rootfs DIR" \
         "(e.g. from: debootstrap --variant=minbase bookworm DIR) or --trees large" >&2
    exit 2
  fi
  local s; s=$("$PY" "$HELPER" strip-special "$dst")
  tree_set rootfs strip_special "$s"
  local n; n=$(echo "$s" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["removed"])')
  if [[ $n != 0 ]]; then
    log "rootfs: removed $n device nodes/fifos/sockets (ostree cannot store them)"
    NOTES+=("rootfs: removed $n device nodes/fifos/sockets before the benchmark (ostree cannot store them)")
  fi
  tree_set rootfs source "\"${ROOTFS:-ci/debian-rootfs.sh}\""
}

prepare_large() {
  local dst="$WORK/trees/large"
  log "generating large tree: $LARGE_GB GiB in 8 files (untimed)"
  local s; s=$("$PY" "$HELPER" gen-large "$dst" --gb "$LARGE_GB" --files 8 --seed 1)
  tree_set large generated "$s"
}

mutate() {
  local tree="$1" dir="$WORK/trees/$1" s
  if [[ $tree == rootfs ]]; then
    s=$("$PY" "$HELPER" mutate-tree "$dir" --frac 0.01 --seed 3)
  else
    s=$("$PY" "$HELPER" mutate-large "$dir" --seed 2)
  fi
  tree_set "$tree" mutation "$s"
}

# ---- run ---------------------------------------------------------------------------
START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_START%% *}" 'BEGIN{exit !(l > 0.5)}'; then
  log "warning: load average is $LOAD_START before the run; other processes may skew the numbers"
  NOTES+=("load average before the run was $LOAD_START: other processes were running, numbers may be skewed")
fi
for tree in rootfs large; do
  want_tree "$tree" || continue
  "prepare_$tree"
  src="$WORK/trees/$tree"
  # run list for this tree (lake-1core only for the large tree)
  RUN=()
  for t in "${TOOLS[@]}"; do
    RUN+=("$t")
    if [[ $t == lake && $tree == large ]]; then RUN+=(lake-1core); fi
  done
  declare -A OK=()
  for t in "${RUN[@]}"; do
    if init_repo "$t" "$tree"; then OK[$t]=1; else
      printf '%s\t%s\tv1\tfailed\t\t\t\t\t\t\tinit failed\n' "$t" "$tree" >>"$RESULTS"
    fi
  done
  for ver in v1 v2; do
    if [[ $ver == v2 ]]; then
      log "making $tree v2 (in place)"
      mutate "$tree"
    fi
    tree_set "$tree" "$ver" "$("$PY" "$HELPER" stat "$src")"
    log "warming page cache for $tree $ver"
    warm "$src"
    for t in "${RUN[@]}"; do
      [[ -n "${OK[$t]:-}" ]] || continue
      ingest "$t" "$tree" "$ver" "$src" || unset "OK[$t]"
    done
  done
  unset OK
  if [[ $KEEP != 1 ]]; then rm -rf "${WORK:?}/repos"/*-"$tree" "${WORK:?}/repos"/*-"$tree".v* "$src"; fi
done
END=$(date +%s)

# ---- report ----------------------------------------------------------------------
# The in-memory ceiling of one core (FastCDC + BLAKE3, zstd) on this machine,
# so the single-core ingest rate can be read against what the CPU allows.
CEILING_BIN="$(dirname "$LAKECTL")/examples/ingest_ceiling"
CEILING=null
if [[ ! -x $CEILING_BIN ]] && command -v cargo >/dev/null; then
  (cd "$HERE/.." && cargo build --release --example ingest_ceiling >/dev/null 2>&1) || true
fi
if [[ -x $CEILING_BIN ]]; then
  CEILING=$(taskset -c 0 "$CEILING_BIN" --json 2>/dev/null || echo null)
fi
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
  printf '"large_gb": %s, ' "$LARGE_GB"
  printf '"cache": "warm page cache", '
  printf '"single_core_target_mb_s": 1500, '
  printf '"one_core_ceiling": %s, ' "$CEILING"
  printf '"total_run_s": %s, ' "$((END - START))"
  printf '"loadavg_start": "%s", "loadavg_end": "%s", ' "$LOAD_START" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '"tool_versions": {'
  sep=""
  for t in "${TOOLS[@]}"; do
    [[ $t == borg-zstd3 ]] && continue
    printf '%s"%s": "%s"' "$sep" "$t" "$(tool_version "$t" | sed 's/"/\\"/g')"; sep=", "
  done
  printf '}, "notes": ['
  sep=""
  for n in "${NOTES[@]}"; do printf '%s"%s"' "$sep" "$(printf '%s' "$n" | sed 's/\\/\\\\/g; s/"/\\"/g')"; sep=", "; done
  printf ']}\n'
} >"$META"

"$PY" "$HELPER" report --results "$RESULTS" --trees "$TREES_JSON" --meta "$META" --json "$JSON_OUT"

if [[ $FAILED != 0 ]]; then
  echo "" >&2
  echo "error: at least one tool failed (see the stderr above)" >&2
  exit 1
fi
