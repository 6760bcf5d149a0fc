#!/usr/bin/env bash
# Boot-time and image-size benchmark: the Lake OS image (images/minimal.raw)
# against a plain ext4 image with the same kernel, initrd and root file system.
# Run ci/bench-boot.sh --help for usage. Helper: ci/bench_boot.py.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-python3}"
HELPER="$HERE/bench_boot.py"
HARNESS="$HERE/qemu-boot.sh"
prog=bench-boot

usage() {
  cat <<'EOF'
Usage: ci/bench-boot.sh [--runs N] [--json OUT] [--image RAW] [--build-dir DIR]
                        [--keep] [--timeout S] [-h|--help]

Boot-time and size benchmark of the Lake OS image against a plain ext4 image
holding the same root file system, kernel and initrd.

1. Builds DIR(OUT)/plain.raw (images/bench/ by default), as large as the lake image (sparse):
   GPT (sgdisk) with partition 1 'ESP' (EF00, the same sectors as the lake
   image's ESP) and partition 2 'root' (8304, Linux root x86-64) filling the
   rest. The ESP is a FAT32 file made with mtools and dd'ed in: systemd-boot
   as /EFI/BOOT/BOOTX64.EFI, loader/loader.conf with the lake image's menu
   timeout, and loader/entries/plain-1.conf booting images/build/vmlinuz and
   images/build/initrd.cpio.zst (checked to be byte-identical to the ones on
   the lake image's ESP) with the lake entry's options, `lake.gen=1` replaced
   by `root=PARTUUID=<partition 2>`. The root partition is made with
   `mke2fs -t ext4 -L root -d images/build/rootfs -E offset=...`.
   lake-initramfs steps aside when root= is given; systemd in the initrd
   mounts that root.
2. Boots the images in turn (run n: lake then plain for odd n, plain then lake
   for even n) N times each
   with ci/qemu-boot.sh --json --snapshot --marker 'LAKE-BOOT-CHECK' and the
   harness's default QEMU settings (q35/TCG, OVMF, 2048 MiB, 2 vCPUs), so
   both see identical settings and neither image is written. Per run:
   QEMU start -> kernel ("Linux version"), QEMU start -> LAKE-BOOT-CHECK line,
   the guest's uptime_s at that line, and the CPU used by other host
   processes during the run. (On the plain image the check line reports
   root_fstype ext4 and a lakectl error: expected, only its time counts.)
3. Prints a table and writes JSON: per-run numbers, medians per image, the
   ratios lake/plain of time-to-marker and guest uptime (target <= 1.10),
   and apparent and allocated (du -B1) sizes of both images (target: lake
   allocated <= plain allocated), with the host load average at the start.

Options:
  --runs N       boots per image (default 2)
  --json OUT     JSON report (default images/bench/boot.json)
  --image RAW    the lake image (default images/minimal.raw; e.g. images/desktop.raw)
  --build-dir DIR  the mkosi outputs it was built from (default images/build)
  --keep         keep DIR(OUT)/plain.raw (removed by default)
  --timeout S    per-boot time limit passed to ci/qemu-boot.sh (default 600)
  -h, --help     this text

Console logs go to DIR(OUT)/boot-logs/{lake,plain}-N.log (replaced each run).
Inputs: images/minimal.raw, images/build/{rootfs/,vmlinuz,initrd.cpio.zst}
(override with LAKE_IMAGE=, BUILD_DIR=). Needs root (mke2fs -d must read the
whole rootfs), sgdisk (gdisk), mtools, e2fsprogs, qemu-system-x86, ovmf,
python3, /usr/lib/systemd/boot/efi/systemd-bootx64.efi (systemd-boot-efi).
Exit status: 0 all boots passed (targets missed are reported, not fatal);
1 a boot or the image build failed; 2 usage error or missing prerequisite.
EOF
}

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 2; }
fail() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 1; }
log() { printf '==> %s\n' "$*" >&2; }

runs=2
json_out="$ROOT/images/bench/boot.json"
keep=0
timeout=600
while (($#)); do
  opt=$1
  if [[ $opt == --*=* ]]; then set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; opt=$1; fi
  case "$opt" in
    -h|--help) usage; exit 0 ;;
    --runs) (($# >= 2)) || die "--runs needs a value"; runs=$2; shift ;;
    --json) (($# >= 2)) || die "--json needs a value"; json_out=$2; shift ;;
    --image) (($# >= 2)) || die "--image needs a value"; LAKE_IMAGE=$2; shift ;;
    --build-dir) (($# >= 2)) || die "--build-dir needs a value"; BUILD_DIR=$2; shift ;;
    --keep) keep=1 ;;
    --timeout) (($# >= 2)) || die "--timeout needs a value"; timeout=$2; shift ;;
    *) die "unknown argument: $opt (see --help)" ;;
  esac
  shift
done
[[ $runs =~ ^[0-9]+$ ]] && ((runs >= 1)) || die "--runs must be a positive integer"
[[ $timeout =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--timeout must be a number of seconds"

lake_img=${LAKE_IMAGE:-$ROOT/images/minimal.raw}
build=${BUILD_DIR:-$ROOT/images/build}
rootfs=$build/rootfs
kernel=$build/vmlinuz
initrd=$build/initrd.cpio.zst
sdboot=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
# Beside the report, so benchmarks of two profiles do not share a plain image.
bench_dir=$(dirname "$json_out")
plain_img=$bench_dir/plain.raw
logs_dir="$(dirname "$json_out")/boot-logs"

((EUID == 0)) || die "run as root (mke2fs -d must read every file of the rootfs with its owner)"
for t in sgdisk mformat mmd mcopy mtype mke2fs dumpe2fs dd truncate du "$PY"; do
  command -v "$t" >/dev/null 2>&1 || die "$t not found (apt-get install gdisk mtools e2fsprogs python3)"
done
[[ -x $HARNESS ]] || die "$HARNESS missing"
[[ -f $HELPER ]] || die "$HELPER missing"
[[ -f $lake_img ]] || die "no lake image $lake_img (lake-installer build --profile profiles/minimal.toml)"
[[ -d $rootfs && -f $kernel && -f $initrd ]] || die "missing $rootfs/, $kernel or $initrd (ci/build-images.sh)"
[[ -f $sdboot ]] || die "$sdboot not found (apt-get install systemd-boot-efi)"

mkdir -p "$bench_dir" "$(dirname "$json_out")" "$logs_dir"
work=$(mktemp -d "$bench_dir/.bench-boot.XXXXXX")
cleanup() {
  rm -rf -- "$work"
  if ((!keep)); then rm -f -- "$plain_img"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r load1 load5 load15 _ </proc/loadavg
loadavg_start="$load1 $load5 $load15"
ncpu=$(nproc)
# %CPU of ps is the average over each process's lifetime; good enough to name the culprits.
top_cpu=$(ps -eo pcpu=,pid=,comm= --sort=-pcpu 2>/dev/null | awk '$3 != "ps" && n < 5 {printf "%s%s(%s) %s%%", (n++ ? ", " : ""), $3, $2, $1}')
printf 'note: load average at start: %s (%s CPUs); busiest processes (%%CPU over their lifetime): %s\n' "$loadavg_start" "$ncpu" "$top_cpu" >&2

# ---- the lake image: geometry, loader.conf, entry --------------------------
# sgdisk -i N FILE: "First sector: 2048 (at 1024.0 KiB)", "Last sector: ...".
sector_size=$(sgdisk -p "$lake_img" | sed -n 's/^Sector size (logical): \([0-9]*\) bytes.*/\1/p')
[[ $sector_size =~ ^[0-9]+$ ]] || fail "cannot read the sector size of $lake_img"
part_field() { sgdisk -i "$2" "$1" | sed -n "s/^$3: *\([0-9A-Fa-f-]*\).*/\1/p"; }
esp_first=$(part_field "$lake_img" 1 'First sector')
esp_last=$(part_field "$lake_img" 1 'Last sector')
[[ $esp_first =~ ^[0-9]+$ && $esp_last =~ ^[0-9]+$ ]] || fail "cannot read partition 1 of $lake_img"
esp_off=$((esp_first * sector_size))
esp_bytes=$(((esp_last - esp_first + 1) * sector_size))
lake_root_first=$(part_field "$lake_img" 2 'First sector')
lake_root_last=$(part_field "$lake_img" 2 'Last sector')
[[ $lake_root_first =~ ^[0-9]+$ && $lake_root_last =~ ^[0-9]+$ ]] || fail "cannot read partition 2 of $lake_img"
# A dirty journal on the lake partition (its last boot was not shut down
# cleanly) is replayed by e2fsck in every --snapshot boot: worth knowing.
lake_needs_recovery=unknown
if feats=$(dumpe2fs -h "$lake_img?offset=$((lake_root_first * sector_size))" 2>/dev/null | sed -n 's/^Filesystem features: *//p') && [[ -n $feats ]]; then
  if [[ " $feats " == *" needs_recovery "* ]]; then lake_needs_recovery=true; else lake_needs_recovery=false; fi
fi
disk_bytes=$(stat -c %s "$lake_img")
lake_esp="$lake_img@@$esp_off"

loader_conf=$(mtype -i "$lake_esp" ::/loader/loader.conf) || fail "cannot read loader/loader.conf from the lake image's ESP"
lake_entry=$(mtype -i "$lake_esp" ::/loader/entries/lake-1.conf) || fail "cannot read loader/entries/lake-1.conf from the lake image's ESP"
loader_timeout=$(printf '%s\n' "$loader_conf" | tr -d '\r' | awk '$1 == "timeout" {print $2; exit}')
lake_options=$(printf '%s\n' "$lake_entry" | tr -d '\r' | sed -n 's/^options[[:space:]]\{1,\}//p' | head -n1)
lake_linux=$(printf '%s\n' "$lake_entry" | tr -d '\r' | awk '$1 == "linux" {print $2; exit}')
lake_initrd=$(printf '%s\n' "$lake_entry" | tr -d '\r' | awk '$1 == "initrd" {print $2; exit}')
[[ -n $lake_options ]] || fail "no options line in the lake entry: $lake_entry"
[[ " $lake_options " == *" lake.gen=1 "* ]] || fail "the lake entry's options have no lake.gen=1: $lake_options"

# The same kernel and initrd: compare the lake ESP's copies with images/build/.
sha_esp() { mcopy -n -i "$lake_esp" "::$1" "$work/cmp" && sha256sum "$work/cmp" | cut -d' ' -f1; rm -f "$work/cmp"; }
same_kernel=false; same_initrd=false
[[ -n $lake_linux && $(sha_esp "$lake_linux") == $(sha256sum "$kernel" | cut -d' ' -f1) ]] && same_kernel=true
[[ -n $lake_initrd && $(sha_esp "$lake_initrd") == $(sha256sum "$initrd" | cut -d' ' -f1) ]] && same_initrd=true
[[ $same_kernel == true ]] || printf '%s: WARNING: the lake image boots %s, which differs from %s\n' "$prog" "$lake_linux" "$kernel" >&2
[[ $same_initrd == true ]] || printf '%s: WARNING: the lake image boots %s, which differs from %s\n' "$prog" "$lake_initrd" "$initrd" >&2

# ---- the plain image -------------------------------------------------------
t_build=$(date +%s.%N)
log "building $plain_img ($disk_bytes bytes, sparse; ESP sectors $esp_first-$esp_last)"
rm -f -- "$plain_img"
truncate -s "$disk_bytes" "$plain_img"
sgdisk \
  -n "1:$esp_first:$esp_last" -t 1:ef00 -c 1:ESP \
  -n 2:0:0 -t 2:8304 -c 2:root \
  "$plain_img" >/dev/null || fail "sgdisk failed on $plain_img"
root_first=$(part_field "$plain_img" 2 'First sector')
root_last=$(part_field "$plain_img" 2 'Last sector')
partuuid=$(part_field "$plain_img" 2 'Partition unique GUID' | tr 'A-F' 'a-f')
[[ $root_first =~ ^[0-9]+$ && $root_last =~ ^[0-9]+$ && -n $partuuid ]] || fail "cannot read partition 2 of $plain_img"
root_off=$((root_first * sector_size))
root_kib=$(((root_last - root_first + 1) * sector_size / 1024))

plain_options=$(printf '%s\n' "$lake_options" | awk -v r="root=PARTUUID=$partuuid" '{for (i = 1; i <= NF; i++) if ($i == "lake.gen=1") $i = r; print}')

esp="$work/esp.img"
truncate -s "$esp_bytes" "$esp"
mformat -i "$esp" -F -v ESP :: || fail "mformat failed"
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/plain
mcopy -i "$esp" "$sdboot" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/plain/vmlinuz
mcopy -i "$esp" "$initrd" ::/plain/initrd
printf 'default plain-*\ntimeout %s\neditor no\n' "${loader_timeout:-0}" >"$work/loader.conf"
printf 'title Plain ext4 (boot benchmark)\nversion 1\nsort-key plain\nlinux /plain/vmlinuz\ninitrd /plain/initrd\noptions %s\n' \
  "$plain_options" >"$work/plain-1.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/plain-1.conf" ::/loader/entries/plain-1.conf
# conv=sparse: the ESP's zero blocks stay holes, as in the lake image.
dd if="$esp" of="$plain_img" bs=1M seek="$esp_off" oflag=seek_bytes conv=notrunc,sparse status=none \
  || fail "dd of the ESP into $plain_img failed"
rm -f -- "$esp"

log "mke2fs -t ext4 -L root -d $rootfs (offset $root_off, ${root_kib}k)"
mke2fs -q -F -t ext4 -L root -d "$rootfs" -E "offset=$root_off,nodiscard" "$plain_img" "${root_kib}k" </dev/null \
  || fail "mke2fs failed"
t_build_end=$(date +%s.%N)
build_s=$(awk -v a="$t_build" -v b="$t_build_end" 'BEGIN {printf "%.1f", b - a}')
log "plain image ready in ${build_s}s: root=PARTUUID=$partuuid"

# ---- boots and report --------------------------------------------------------
info=(
  loadavg_start="$loadavg_start" top_cpu_start="$top_cpu"
  lake.path="$lake_img" lake.loader_timeout="$loader_timeout" lake.entry_options="$lake_options"
  lake.linux="$lake_linux" lake.initrd="$lake_initrd" lake.esp_sectors="[$esp_first,$esp_last]"
  lake.root_sectors="[$lake_root_first,$lake_root_last]" lake.journal_needs_recovery="$lake_needs_recovery"
  sector_size="$sector_size"
  plain.path="$plain_img" plain.loader_timeout="$loader_timeout" plain.entry_options="$plain_options"
  plain.partuuid="$partuuid" plain.esp_sectors="[$esp_first,$esp_last]"
  plain.root_sectors="[$root_first,$root_last]" plain.root_offset_bytes="$root_off"
  plain.root_size_kib="$root_kib" plain.kernel="$kernel" plain.initrd="$initrd"
  plain.same_kernel_as_lake="$same_kernel" plain.same_initrd_as_lake="$same_initrd"
  plain.build_s="$build_s"
)
"$PY" "$HELPER" --harness "$HARNESS" --runs "$runs" --timeout "$timeout" \
  --out "$json_out" --logs "$logs_dir" "${info[@]/#/--info=}" \
  --lake "$lake_img" --plain "$plain_img"
