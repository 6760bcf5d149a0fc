#!/usr/bin/env bash
# ci/e2e-posix.sh — end-to-end test of the POSIX zone's life cycle in QEMU:
# package hooks, generations, rollback, roll-forward, boot counting, fallback.
#
# Usage: ci/e2e-posix.sh [--image FILE] [--workdir DIR] [--boot-timeout S] [--tries N] [--json] [-h|--help]
#   --image FILE      Lake OS disk image (default images/minimal.raw, from ci/boot.sh
#                     or `lake-installer build --profile profiles/minimal.toml`)
#   --workdir DIR     scratch disks, console logs, guest logs (default images/e2e-posix;
#                     emptied first, kept afterwards)
#   --boot-timeout S  limit per QEMU run (default 600)
#   --tries N         boot tries of the broken generation (default 3, as every deploy;
#                     1 saves two boots when iterating)
#   --json            one JSON summary line on stdout (boots, timings, verdict)
#
# The image is copied (cp --sparse=always) to DIR/disk.raw and booted once per
# step by ci/qemu-boot.sh (OVMF, TCG, -no-reboot: a guest reboot ends the run),
# with a second disk DIR/laketest.img: ext4 labelled LAKETEST (mke2fs -d, no
# loop devices) holding ci/e2e/step.sh, the test package lake-hello 1.0 (built
# here with dpkg-deb) and the state across boots. The SMBIOS credential
# lake.test.scenario=1 makes the image's lake-test-scenario.service run the
# step (without it that unit does nothing). The guest reports facts as console
# lines `LAKE-E2E {json}`; ci/e2e_posix.py judges them:
#   boot 1  gen 1: /home/alice/notes.txt written; apt-get install lake-hello
#           (apt hooks: pre/post commits, gen 2 deployed as lake-2+3.conf)
#   boot 2  gen 2 has lake-hello; rollback --to before:last-apt-upgrade
#   boot 3  gen 3 lacks lake-hello, notes unchanged, gen 2's entry blessed;
#           rollback --to gen:2 --now brings lake-hello back live; a commit with
#           a failing unit is deployed (lakectl generation deploy), and a
#           one-try entry for a generation the lake lacks is put beside it
#   boot 4  that entry: lake-initramfs fails on the counted try and reboots
#   boot 5+ the broken generation is tried (lake-boot-health reboots each
#           counted try) until systemd-boot falls back to the previous
#           generation, which must boot clean, with lake-hello and the notes,
#           and the failed entries renamed lake-N+0-3.conf / lake-M+0-1.conf.
# On failure: the step, the reason, the console log and the guest's step log.
# Needs root, qemu-system-x86, ovmf, e2fsprogs (mke2fs, debugfs), dpkg-deb.
# Exit status: 0 pass, 1 fail, 2 usage or missing prerequisites.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;; esac
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/e2e-posix.sh: run as root (disk images, QEMU)" >&2; exit 2; }
exec python3 ci/e2e_posix.py "$@"
