#!/usr/bin/env bash
# ci/boot.sh — the main job: build the default image and boot it in QEMU.
#
# Usage: ci/boot.sh [--profile FILE] [--skip-mkosi] [--json] [-h|--help]
#   --profile FILE  image profile (default profiles/minimal.toml; docs/profiles.md)
#   --skip-mkosi    reuse images/build/ from the last mkosi run
#   --json          one JSON line from the boot harness at the end
#
# Steps: ci/setup.sh (Debian packages), cargo build --release --workspace,
# `lake-installer build --profile ...` (mkosi root file system + initramfs, then
# the install into images/<name>.raw), and ci/qemu-boot.sh, which boots the image
# under OVMF (TCG) with Secure Boot enforced (Microsoft's keys enrolled; the ESP
# holds shim -> Debian-signed systemd-boot -> Debian-signed kernel) and passes
# only when the guest reports multi-user.target, an overlay root over the lake,
# generation 1, no failed unit, /home on lakefs with FUSE passthrough, and
# secure_boot == true. Then the negative test: a copy of the image whose
# systemd-boot (/EFI/BOOT/grubx64.efi) has its signature stripped
# (sbsigntool's sbattach --remove, repeated until sbverify lists none: a
# binary may carry several) must be refused by shim under Secure Boot
# ("Security Violation" on the console, no kernel). Then the failure path with
# Secure Boot off: the same image booted (kernel and initrd directly,
# --snapshot) with lake.gen=7, a generation that does not exist, must stop in
# the initramfs with a message that names the problem (and go to the emergency shell).
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
profile=profiles/minimal.toml skip=() json=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --profile) profile=${2:?--profile needs a file}; shift 2 ;;
        --skip-mkosi) skip=(--skip-mkosi); shift ;;
        --json) json=(--json); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ci/boot.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/boot.sh: run as root (mkosi, device nodes, root-owned files)" >&2; exit 1; }
export PATH="$HOME/.cargo/bin:$PATH"
bash ci/setup.sh
cargo build --release --workspace
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$profile" | head -1)
target/release/lake-installer build --profile "$profile" "${skip[@]}" --quiet
bash ci/qemu-boot.sh "${json[@]}" --secure-boot --log "images/$name.boot.log" "images/$name.raw"
echo "== Secure Boot negative test: systemd-boot with its signature stripped must be refused" >&2
neg=images/$name.unsigned-loader.raw
cp --sparse=always "images/$name.raw" "$neg"
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp" "$neg"' EXIT
# The ESP is partition 1, at 1 MiB (lake-installer's layout).
mcopy -n -i "$neg@@1M" ::/EFI/BOOT/grubx64.efi "$tmp/grubx64.efi"
for _ in 1 2 3 4 5 6 7 8; do
    sbverify --list "$tmp/grubx64.efi" 2>/dev/null | grep -q '^signature ' || break
    sbattach --remove "$tmp/grubx64.efi" >/dev/null
done
! sbverify --list "$tmp/grubx64.efi" 2>/dev/null | grep -q '^signature ' \
    || { echo "ci/boot.sh: could not strip the signatures of systemd-boot ($tmp/grubx64.efi)" >&2; exit 1; }
mcopy -o -n -i "$neg@@1M" "$tmp/grubx64.efi" ::/EFI/BOOT/grubx64.efi
bash ci/qemu-boot.sh --secure-boot --no-net --snapshot --timeout 300 --log "images/$name.boot-unsigned.log" \
    --marker 'Security Violation' "$neg"
! grep -aq 'Linux version' "images/$name.boot-unsigned.log" || { echo "ci/boot.sh: a kernel started from the unsigned loader" >&2; exit 1; }
rm -f -- "$neg"
echo "== failure path: lake.gen=7 (no such generation)" >&2
bash ci/qemu-boot.sh --snapshot --timeout 600 --log "images/$name.boot-gen7.log" \
    --marker 'lake-initramfs: ERROR: generation 7 does not exist' \
    --qemu-arg -kernel --qemu-arg images/build/vmlinuz --qemu-arg -initrd --qemu-arg images/build/initrd.cpio.zst \
    --qemu-arg -append --qemu-arg "lake.gen=7 console=ttyS0,115200" "images/$name.raw"
