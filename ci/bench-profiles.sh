#!/usr/bin/env bash
# ci/bench-profiles.sh — the numbers of each image profile: sizes, build times
# (clean and after a one-package change), boot time against plain ext4, ISO.
#
# Usage: ci/bench-profiles.sh [--profiles LIST] [--runs N] [--package DEB]
#                             [--out DIR] [--json] [-h|--help]
#   --profiles LIST  comma-separated profile names under profiles/
#                    (default minimal,server,desktop)
#   --runs N         boots per image and side for ci/bench-boot.sh (default 3)
#   --package DEB    the package the one-package change adds (default cpio)
#   --out DIR        reports and logs (default images/bench-profiles)
#   --json           print the summary as JSON on stdout (also DIR/summary.json)
#
# Per profile, in this order (each step uses the outputs of the one before):
#   1. clean build: images/build/ removed, then `lake-installer build
#      --profile P` (both mkosi builds and the install into images/<name>.raw).
#      Debian packages come from mkosi's package cache (/var/cache/lakeos) once
#      downloaded: the time is the build's, not the network's
#   2. the ISO of that build (--skip-mkosi --iso): its size and time
#   3. ci/bench-boot.sh --runs N on images/<name>.raw against the same rootfs,
#      kernel and initrd on plain ext4 (the two images' order alternates from
#      run to run): medians and the ratio of time to multi-user
#   4. a one-package change: a copy of the profile with DEB added to
#      packages.extra, built again the way a maintainer would (`lake-installer
#      build --iso`, mkosi included) against step 2's object list: the time,
#      and how many of the lake's objects are new
# Sizes: the rootfs (du), the raw image's allocated bytes (it is sparse), the ISO.
# Takes about 15 minutes per profile on 2 cores (the desktop longer); needs the
# workspace built (cargo build --release --workspace), root, and a quiet host:
# the load average is printed at each step.
# Leaves images/build/ and images/<name>.raw of the last profile's clean build.
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
profiles=minimal,server,desktop runs=3 package=cpio out=images/bench-profiles json=0
while (($#)); do
    case "$1" in
        --profiles) profiles=${2:?--profiles needs a list}; shift 2 ;;
        --runs) runs=${2:?--runs needs a number}; shift 2 ;;
        --package) package=${2:?--package needs a Debian package name}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --json) json=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ci/bench-profiles.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/bench-profiles.sh: run as root (mkosi, loop devices, QEMU)" >&2; exit 2; }
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "ci/bench-profiles.sh: --runs must be a positive integer" >&2; exit 2; }
[[ $package =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || { echo "ci/bench-profiles.sh: --package: not a Debian package name: $package" >&2; exit 2; }
inst=target/release/lake-installer
[[ -x $inst ]] || { echo "ci/bench-profiles.sh: $inst missing: cargo build --release --workspace" >&2; exit 2; }
IFS=, read -r -a names <<<"$profiles"
for n in "${names[@]}"; do
    [[ -f profiles/$n.toml ]] || { echo "ci/bench-profiles.sh: no profile profiles/$n.toml" >&2; exit 2; }
done
mkdir -p "$out"
log() { printf '== [%s, load %s] %s\n' "$(date +%H:%M:%S)" "$(cut -d' ' -f1 /proc/loadavg)" "$*" >&2; }
die() { printf 'ci/bench-profiles.sh: FAIL: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}

for n in "${names[@]}"; do
    p=profiles/$n.toml
    d=$out/$n
    rm -rf -- "$d"
    mkdir -p "$d"
    log "$n: clean build"
    rm -rf -- images/build
    t0=$(now)
    "$inst" build --profile "$p" --quiet >"$d/build.log" 2>&1 || die "$n: clean build (see $d/build.log)"
    t1=$(now)
    rootfs_bytes=$(du -sb images/build/rootfs | cut -f1)
    raw_alloc=$(du -B1 "images/$n.raw" | cut -f1)
    log "$n: ISO"
    "$inst" build --profile "$p" --skip-mkosi --iso --quiet --json --out "$d/$n.iso" >"$d/iso.json" \
        || die "$n: ISO build (see $d/iso.json)"
    t2=$(now)
    iso_bytes=$(stat -c %s "$d/$n.iso")
    log "$n: boot benchmark, $runs runs per image"
    bash ci/bench-boot.sh --runs "$runs" --image "images/$n.raw" --json "$d/boot.json" >"$d/boot.txt" 2>&1 \
        || die "$n: ci/bench-boot.sh (see $d/boot.txt)"
    log "$n: one-package change (+$package), mkosi included"
    python3 - "$p" "$d/changed.toml" "$package" <<'EOF' || die "$n: cannot add $package to $p"
import re, sys
src, dst, pkg = sys.argv[1:]
text = open(src).read()
m = re.search(r'^extra\s*=\s*\[(.*?)\]', text, re.M | re.S)
if m is None:
    sys.exit(f"{src}: no packages.extra list")
items = m.group(1).strip().rstrip(",").rstrip()  # a multi-line list may end in a comma
if f'"{pkg}"' in items:
    sys.exit(f"{src} already installs {pkg}: pick another with --package")
new = f'extra = [{items + ", " if items else ""}"{pkg}"]'
open(dst, "w").write(text[:m.start()] + new + text[m.end():])
EOF
    cp "$d/$n.iso.objects" "$d/changed.iso.objects"
    t3=$(now)
    "$inst" build --profile "$d/changed.toml" --iso --quiet --json --out "$d/changed.iso" >"$d/changed.json" \
        || die "$n: build after the one-package change (see $d/changed.json)"
    t4=$(now)
    python3 - "$d" "$n" "$(secs "$t0" "$t1")" "$(secs "$t1" "$t2")" "$(secs "$t3" "$t4")" \
        "$rootfs_bytes" "$raw_alloc" "$iso_bytes" "$package" <<'EOF'
import json, sys
d, name, build_s, iso_s, change_s, rootfs, raw, iso, pkg = sys.argv[1:]
boot = json.load(open(f"{d}/boot.json"))
changed = json.load(open(f"{d}/changed.json"))
med = boot["medians"]
r = {
    "profile": name, "build_clean_s": float(build_s), "iso_build_s": float(iso_s),
    "rootfs_bytes": int(rootfs), "raw_allocated_bytes": int(raw), "iso_bytes": int(iso),
    "boot_runs": sum(1 for run in boot["runs"] if run.get("image") == "lake"),
    "boot_marker_s": {"lake": med["lake"].get("marker_s"), "plain_ext4": med["plain"].get("marker_s")},
    "boot_ratio_lake_over_ext4": boot["ratios_lake_over_plain"].get("marker_s"),
    "change": {"package": pkg, "build_s": float(change_s), "objects": changed.get("objects")},
}
json.dump(r, open(f"{d}/result.json", "w"), indent=1)
EOF
    rm -f -- "$d/$n.iso" "$d/$n.iso.objects" "$d/changed.iso" "$d/changed.iso.objects"
done
python3 - "$out" "$json" "${names[@]}" <<'EOF'
import json, sys
out, as_json, names = sys.argv[1], sys.argv[2] == "1", sys.argv[3:]
rows = [json.load(open(f"{out}/{n}/result.json")) for n in names]
json.dump(rows, open(f"{out}/summary.json", "w"), indent=1)
if as_json:
    print(json.dumps(rows))
    sys.exit()
mib = lambda b: f"{b / 2**20:.0f} MiB"
print(f"{'profile':<9} {'rootfs':>9} {'raw (alloc)':>12} {'ISO':>9} {'clean build':>12} {'+1 package':>11} {'new objects':>12} {'boot lake':>10} {'boot ext4':>10} {'ratio':>6}")
for r in rows:
    o = r["change"]["objects"] or {}
    b = r["boot_marker_s"]
    f = lambda v: "n/a" if v is None else f"{v:.1f} s"
    print(f"{r['profile']:<9} {mib(r['rootfs_bytes']):>9} {mib(r['raw_allocated_bytes']):>12} {mib(r['iso_bytes']):>9} "
          f"{r['build_clean_s']:>10.0f} s {r['change']['build_s']:>9.0f} s {str(o.get('new')) + '/' + str(o.get('total')):>12} "
          f"{f(b['lake']):>10} {f(b['plain_ext4']):>10} {r['boot_ratio_lake_over_ext4'] or float('nan'):>6.2f}")
print(f"(boot: medians of {rows[0]['boot_runs']} runs per image, order alternating; summary: {out}/summary.json)")
EOF
