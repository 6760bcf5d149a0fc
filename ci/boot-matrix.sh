#!/usr/bin/env bash
# ci/boot-matrix.sh — the installed disk on the buses of real hardware.
#
# Usage: ci/boot-matrix.sh [--bus LIST] [--timeout S] [--json] [--secure-boot] [IMAGE]
#   IMAGE          the disk to boot (default images/minimal.raw, which
#                  lake-installer lays out with the same code as an install onto
#                  a disk: GPT, ESP, lake partition)
#   --bus LIST     comma-separated buses (default nvme,ahci,usb; virtio is what
#                  every other CI boot uses): ci/qemu-boot.sh --disk-bus
#   --timeout S    limit per boot (default 600)
#   --secure-boot  boot with Secure Boot enforced (Microsoft's keys enrolled)
#   --json         one JSON line per bus, then a summary line
#
# Each boot uses --snapshot (the image is not written) and must pass
# ci/qemu-boot.sh's default check: multi-user, the overlay root over the lake,
# generation 1, no failed unit, /home on lakefs. The initramfs finds the lake
# by its label (/dev/disk/by-label/lake or by-partlabel/lake), so nothing in
# the image names a bus; a bus whose driver the initramfs lacks stops in its
# emergency shell.
# Run by `ci/test.sh --full`. Exit status: 0 all passed, 1 a boot failed,
# 2 usage error or missing image.
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
buses=nvme,ahci,usb timeout=600 json=0 sb=() image=images/minimal.raw
while (($#)); do
    case "$1" in
        --bus) buses=${2:?--bus needs a list}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --json) json=1; shift ;;
        --secure-boot) sb=(--secure-boot); shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "ci/boot-matrix.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) image=$1; shift ;;
    esac
done
cd "$(dirname "$0")/.."
[[ -f $image ]] || { echo "ci/boot-matrix.sh: no image $image (build it: ci/boot.sh)" >&2; exit 2; }
IFS=, read -r -a list <<<"$buses"
logdir=${image%.raw}.matrix
mkdir -p -- "$logdir"
failed=() passed=()
for bus in "${list[@]}"; do
    case "$bus" in virtio|nvme|ahci|usb) ;; *) echo "ci/boot-matrix.sh: unknown bus '$bus' (virtio, nvme, ahci, usb)" >&2; exit 2 ;; esac
    echo "== $image on $bus" >&2
    if out=$(bash ci/qemu-boot.sh --json "${sb[@]}" --snapshot --disk-bus "$bus" --timeout "$timeout" \
            --log "$logdir/$bus.log" "$image"); then
        passed+=("$bus")
    else
        failed+=("$bus")
    fi
    if ((json)); then
        python3 -c 'import json,sys; d=json.loads(sys.argv[2] or "{}"); d["bus"]=sys.argv[1]; print(json.dumps(d))' "$bus" "$(tail -1 <<<"$out")"
    else
        python3 -c 'import json,sys
d=json.loads(sys.argv[2] or "{}")
print("%-6s %s  multi-user after %s s  (log %s)" % (sys.argv[1], d.get("result","fail"), d.get("marker_s","-"), sys.argv[3]))' \
            "$bus" "$(tail -1 <<<"$out")" "$logdir/$bus.log"
    fi
done
if ((json)); then
    python3 -c 'import json,sys; print(json.dumps({"summary": True, "passed": sys.argv[1].split(), "failed": sys.argv[2].split()}))' \
        "${passed[*]:-}" "${failed[*]:-}"
fi
((${#failed[@]} == 0)) || { echo "ci/boot-matrix.sh: FAIL on: ${failed[*]} (logs in $logdir/)" >&2; exit 1; }
