#!/usr/bin/env bash
# ci/boot-desktop.sh — the desktop profile boots to its graphical login.
#
# Usage: ci/boot-desktop.sh [--skip-mkosi] [--skip-build] [--out PNG] [--timeout S]
#                           [--json] [-h|--help]
#   --skip-mkosi   reuse images/build/ from the last mkosi run (it must be the
#                  desktop's)
#   --skip-build   boot the existing images/desktop.raw
#   --out PNG      where the screenshot goes (default docs/images/desktop-login.png)
#   --timeout S    limit of the boot (default 900: TCG and a display manager)
#   --json         one JSON line from ci/qemu-boot.sh at the end
#
# Builds images/desktop.raw from profiles/desktop.toml (LightDM + Xfce,
# NetworkManager) with `lake-installer build` (the workspace binaries in
# target/release must be built), then boots it with
# `ci/qemu-boot.sh --screendump PNG --snapshot`: the usual boot check (multi-user,
# the lake, /home on lakefs, no failed unit), then QMP screendumps until the
# screen has at least 64 distinct colours (LightDM's greeter; a text console
# has a handful), saved as PNG. Run by `ci/test.sh --full`, not by the default
# CI (the desktop build adds a few hundred MB of packages and minutes).
# Needs root. Exit status: 0 pass, 1 build or boot failed, 2 usage error.
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
skip=() build=1 out=docs/images/desktop-login.png timeout=900 json=()
while (($#)); do
    case "$1" in
        --skip-mkosi) skip=(--skip-mkosi); shift ;;
        --skip-build) build=0; shift ;;
        --out) out=${2:?--out needs a file}; shift 2 ;;
        --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
        --json) json=(--json); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ci/boot-desktop.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/boot-desktop.sh: run as root (mkosi, loop devices)" >&2; exit 1; }
if ((build)); then
    [[ -x target/release/lake-installer ]] || { echo "ci/boot-desktop.sh: build the workspace first (cargo build --release --workspace)" >&2; exit 1; }
    target/release/lake-installer build --profile profiles/desktop.toml "${skip[@]}" --quiet
fi
[[ -f images/desktop.raw ]] || { echo "ci/boot-desktop.sh: no images/desktop.raw" >&2; exit 1; }
mkdir -p -- "$(dirname -- "$out")"
bash ci/qemu-boot.sh "${json[@]}" --snapshot --timeout "$timeout" --screendump "$out" \
    --log images/desktop.boot.log images/desktop.raw
