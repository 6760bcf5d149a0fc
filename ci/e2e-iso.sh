#!/usr/bin/env bash
# ci/e2e-iso.sh — the install medium end to end in QEMU/OVMF (docs/install-media.md).
#
# Usage: ci/e2e-iso.sh [--profile FILE] [--workdir DIR] [--boot-timeout S] [--no-boot] [-h|--help]
#   --profile FILE    image profile (default profiles/minimal.toml; it must be
#                     the profile images/build/ was built with)
#   --workdir DIR     scratch ISOs, disks, console logs (default images/e2e-iso;
#                     emptied first, kept afterwards)
#   --boot-timeout S  limit per QEMU run (default 600)
#   --no-boot         builds and checksums only
#
# Needs images/build/ from the mkosi builds (ci/boot.sh makes it) and the
# workspace built (target/release). Every build uses --skip-mkosi and
# SOURCE_DATE_EPOCH (default: the last git commit's time).
#   1. build --iso twice (images/<name>.iso and DIR/<name>-again.iso): both
#      sha256 sums are printed and must be equal (reproducible build)
#   2. build the unattended variant (--iso-unattended-target /dev/vda)
#   3. a one-package change: a copy of the rootfs with one .deb added (cpio
#      from the mkosi package cache, else `less` purged), built again against
#      the first build's object list: new vs reused objects and the rebuild time
# The QEMU runs boot with Secure Boot enforced (ci/qemu-boot.sh --secure-boot:
# Microsoft's keys enrolled), so the medium (USB and CD) and the installed disk
# must carry the signed chain; each console must show the kernel's "Secure boot
# enabled".
#   4. QEMU: the unattended ISO as USB storage, a second USB stick labelled
#      LAKECONFIG with an install configuration (lake-install.toml: host name
#      lake-ci, timezone Europe/Berlin, a user `ada` in sudo with a password
#      made for this run and an SSH key of DIR/id_ed25519), and a blank 4 GiB
#      virtio disk: the guest must print `LAKE-INSTALL {"result":"ok",...}`
#      naming that configuration, and power off
#   5. QEMU: that disk alone boots to the multi-user marker (LAKE-BOOT-CHECK,
#      ci/qemu-boot.sh's default check, with secure_boot == true, at
#      generation 2: the settings' own commit). When the profile installs
#      openssh-server (profiles/server.toml, what ci/test.sh builds), the
#      guest's sshd is reached through QEMU user networking on a free port of
#      127.0.0.1 and `ada` logs in with the key and runs `id`, `hostnamectl`,
#      `timedatectl` and `lakectl status` (in her lakefs home): each output
#      is checked (DIR/ssh.out); then `ada` logs in with the password on the
#      serial console (ci/qemu-boot.sh --serial-login)
#   6. QEMU: the ISO as a CD (plus a blank disk) boots the live system to its
#      installer: the `LAKE-LIVE {...}` line lists the disks with the CD marked
#      as boot medium and the blank disk as a possible target, and the
#      installer on the serial console asks `Install onto which disk? [/dev/vda]`;
#      then a person's answers are typed on that console (a real terminal:
#      ci/qemu-boot.sh --dialog DIR/cd-dialog.json): Enter for /dev/vda, a bad
#      host name and a zone that does not exist (each refused with its
#      reason, then asked again), good ones, the defaults, a user `grace`
#      and her password twice (it must never show on the console); the settings must be shown back
#      before `Type 'yes' to install:`, and `yes` must end in the installer's
#      `Done.` (the disk is a --snapshot: nothing is kept)
# Before each QEMU run it waits (up to 10 min) for the 1-minute load average
# to drop below LAKE_MAX_LOAD (default 3): the CPU is shared with other jobs.
# Prints a summary (ISO size, checksums, build/rebuild/install times, object
# reuse) and writes it as JSON to DIR/summary.json. On success the scratch
# ISOs and disks are removed (logs stay); on failure everything stays.
# Exit status: 0 pass, 1 fail, 2 usage or missing prerequisites.
set -euo pipefail
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
profile=profiles/minimal.toml workdir="" boot_timeout=600 boot=1
while (($#)); do
    case "$1" in
        --profile) profile=${2:?--profile needs a file}; shift 2 ;;
        --workdir) workdir=${2:?--workdir needs a directory}; shift 2 ;;
        --boot-timeout) boot_timeout=${2:?--boot-timeout needs seconds}; shift 2 ;;
        --no-boot) boot=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ci/e2e-iso.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "ci/e2e-iso.sh: run as root (mkosi outputs, dpkg --root, QEMU)" >&2; exit 2; }
log() { printf '== %s\n' "$*" >&2; }
die() { printf 'ci/e2e-iso.sh: FAIL: %s\n' "$*" >&2; exit 1; }
inst=target/release/lake-installer
[[ -x $inst ]] || { echo "ci/e2e-iso.sh: $inst missing: cargo build --release --workspace" >&2; exit 2; }
for f in images/build/rootfs images/build/vmlinuz images/build/initrd.cpio.zst; do
    [[ -e $f ]] || { echo "ci/e2e-iso.sh: $f missing: run ci/boot.sh (or ci/build-images.sh) first" >&2; exit 2; }
done
command -v xorriso >/dev/null || { echo "ci/e2e-iso.sh: xorriso missing (ci/setup.sh installs it)" >&2; exit 2; }
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$profile" | head -1)
[[ -n $name ]] || { echo "ci/e2e-iso.sh: no name in $profile" >&2; exit 2; }
workdir=${workdir:-images/e2e-iso}
rm -rf -- "$workdir"
mkdir -p "$workdir"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
json_get() { # FILE KEY... -> the value (JSON for objects, lists and null)
    python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if v is None or isinstance(v, (dict, list, bool)) else v)' "$@"
}

build() { # OUT JSON [ARGS...]
    local out=$1 json=$2; shift 2
    "$inst" build --profile "$profile" --skip-mkosi --iso --quiet --json --out "$out" "$@" >"$json" \
        || die "lake-installer build --iso $* failed"
}

# 1. Two builds, same inputs.
iso=images/$name.iso again=$workdir/$name-again.iso
rm -f "$iso.objects"
t0=$(now); build "$iso" "$workdir/build1.json"; t1=$(now); build "$again" "$workdir/build2.json"; t2=$(now)
sum1=$(sha256sum "$iso" | cut -d' ' -f1) sum2=$(sha256sum "$again" | cut -d' ' -f1)
log "reproducible build (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH):"
printf '   %s  %s\n   %s  %s\n' "$sum1" "$iso" "$sum2" "$again" >&2
[[ $sum1 == "$sum2" ]] || die "two ISO builds from the same inputs differ ($sum1 vs $sum2)"
iso_bytes=$(stat -c %s "$iso")
build_s=$(secs "$t0" "$t1")

# 2. The unattended variant.
auto=$workdir/$name-install-vda.iso
build "$auto" "$workdir/build-auto.json" --iso-unattended-target /dev/vda

# 3. A one-package change.
log "one-package change on a copy of the rootfs"
chg=$workdir/changed
mkdir -p "$chg/images/build"
cp -a images/build/rootfs "$chg/images/build/rootfs"
ln images/build/vmlinuz "$chg/images/build/vmlinuz" 2>/dev/null || cp images/build/vmlinuz "$chg/images/build/vmlinuz"
ln images/build/initrd.cpio.zst "$chg/images/build/initrd.cpio.zst" 2>/dev/null || cp images/build/initrd.cpio.zst "$chg/images/build/initrd.cpio.zst"
deb=$(ls -1 "${LAKE_CACHE:-/var/cache/lakeos}"/mkosi/cache/apt/archives/cpio_*_amd64.deb 2>/dev/null | head -1 || true)
if [[ -n $deb ]] && ! dpkg --root="$chg/images/build/rootfs" -s cpio >/dev/null 2>&1; then
    change="installed $(basename "$deb")"
    dpkg --root="$chg/images/build/rootfs" --force-unsafe-io -i "$deb" >"$workdir/dpkg.log" 2>&1 || die "dpkg -i $deb (see $workdir/dpkg.log)"
else
    change="purged less"
    dpkg --root="$chg/images/build/rootfs" --purge less >"$workdir/dpkg.log" 2>&1 || die "dpkg --purge less (see $workdir/dpkg.log)"
fi
changed_iso=$workdir/$name-changed.iso
cp "$iso.objects" "$changed_iso.objects"
t3=$(now)
"$inst" build --profile "$profile" --repo "$chg" --skip-mkosi --iso --quiet --json --out "$changed_iso" >"$workdir/build-changed.json" \
    || die "the rebuild after the package change failed"
t4=$(now)
rebuild_s=$(secs "$t3" "$t4")
new=$(json_get "$workdir/build-changed.json" objects new) reused=$(json_get "$workdir/build-changed.json" objects reused)
total=$(json_get "$workdir/build-changed.json" objects total)
log "rebuild after the change ($change): $rebuild_s s; objects: $total, $new new, $reused reused"
rm -rf -- "$chg"

wait_load() {
    local max=${LAKE_MAX_LOAD:-3} i l
    for ((i = 0; i < 60; i++)); do
        l=$(cut -d' ' -f1 /proc/loadavg)
        awk -v l="$l" -v m="$max" 'BEGIN { exit !(l < m) }' && return 0
        ((i == 0)) && log "waiting for the load average ($l) to drop below $max"
        sleep 10
    done
    log "load still $l after 10 minutes; going ahead"
}

install_s=null usb_s=null disk_s=null cd_s=null
# The kernel says so when the firmware booted it with Secure Boot enforced.
secure() { grep -aq 'secureboot: Secure boot enabled' "$1" || die "no 'Secure boot enabled' on the console ($1)"; }
if ((boot)); then
    # 4. Unattended install from USB onto a blank disk.
    disk=$workdir/disk.raw
    truncate -s 4G "$disk"
    # The install configuration, on a stick of its own (docs/install-config.md).
    ssh-keygen -q -t ed25519 -N '' -C "lake-ci@$(hostname)" -f "$workdir/id_ed25519"
    password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
    hash=$(printf '%s\n' "$password" | "$inst" hash-password) || die "lake-installer hash-password failed"
    cat >"$workdir/lake-install.toml" <<TOML
hostname = "lake-ci"
timezone = "Europe/Berlin"
[user]
name = "ada"
full_name = "Ada CI"
password_hash = "$hash"
ssh_authorized_keys = ["$(cat "$workdir/id_ed25519.pub")"]
TOML
    "$inst" check-config "$workdir/lake-install.toml" --root images/build/rootfs >/dev/null \
        || die "the test's install configuration is refused by check-config ($workdir/lake-install.toml)"
    cfgimg=$workdir/lakeconfig.img
    truncate -s 8M "$cfgimg"
    mkfs.vfat -n LAKECONFIG "$cfgimg" >/dev/null
    mcopy -i "$cfgimg" "$workdir/lake-install.toml" ::/lake-install.toml
    wait_load
    log "QEMU: $auto + a LAKECONFIG stick as USB storage + blank virtio disk: unattended install, power off"
    bash ci/qemu-boot.sh --json --secure-boot --no-net --timeout "$boot_timeout" --log "$workdir/usb-install.log" \
        --usb "$auto" --usb "$cfgimg" --marker 'LAKE-INSTALL \{"result":"ok"' --expect-poweroff "$disk" >"$workdir/usb-install.json" \
        || die "unattended install from USB (console: $workdir/usb-install.log)"
    secure "$workdir/usb-install.log"
    line=$(grep -a -m1 -o 'LAKE-INSTALL {.*}' "$workdir/usb-install.log")
    python3 - "$line" <<'EOF' || die "the install did not use the LAKECONFIG stick's configuration: $line"
import json, sys
v = json.loads(sys.argv[1][len("LAKE-INSTALL "):])
assert "lake-install.toml" in (v.get("config") or ""), v.get("config")
EOF
    install_s=$(python3 -c 'import json,sys; print(round(json.loads(sys.argv[1][13:])["seconds"],1))' "$line")
    usb_s=$(json_get "$workdir/usb-install.json" total_s)
    log "installed in $install_s s (whole run $usb_s s): $line"
    # 5. The disk alone.
    login=()
    if grep -q '"openssh-server"' "$profile"; then
        port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        ssh=(ssh -i "$workdir/id_ed25519" -p "$port" -o BatchMode=yes -o ConnectTimeout=20
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR ada@127.0.0.1)
        # sshd may still be starting when multi-user is reported: retry the connection.
        printf -v then 'for i in $(seq 30); do %s true && break; sleep 5; done; %s %q' \
            "${ssh[*]@Q}" "${ssh[*]@Q}" 'id; echo ==; hostnamectl; echo ==; timedatectl; echo ==; lakectl status'
        login=(--hostfwd "$port:22" --then "$then >${workdir@Q}/ssh.out"
               --serial-login ada --serial-password "$password")
        log "QEMU: the installed disk to multi-user (generation 2), then ssh ada@127.0.0.1:$port and a serial-console login"
    else
        login=(--no-net)
        log "QEMU: the installed disk to multi-user (generation 2); no openssh-server in $profile: no SSH login"
    fi
    wait_load
    bash ci/qemu-boot.sh --json --secure-boot "${login[@]}" --expect-generation 2 --timeout "$boot_timeout" \
        --log "$workdir/disk-boot.log" "$disk" >"$workdir/disk-boot.json" \
        || die "the installed disk does not boot to multi-user with the login (console: $workdir/disk-boot.log; ssh: $workdir/ssh.out)"
    secure "$workdir/disk-boot.log"
    disk_s=$(json_get "$workdir/disk-boot.json" marker_s)
    if [[ -f $workdir/ssh.out ]]; then
        python3 - "$workdir/ssh.out" "$workdir/disk-boot.json" <<'EOF' || die "the SSH session's output is wrong ($workdir/ssh.out)"
import json, re, sys
parts = open(sys.argv[1]).read().split("==\n")
assert len(parts) == 4, f"expected the output of 4 commands, got {len(parts)}"
ident, host, clock, status = parts
assert re.search(r"uid=\d+\(ada\)", ident) and "(sudo)" in ident, ident
assert re.search(r"Static hostname: lake-ci\b", host), host
assert re.search(r"Time zone: Europe/Berlin\b", clock), clock
assert "/home" in status and "passthrough" in status.lower(), status
serial = json.load(open(sys.argv[2]))["serial_login"]
assert serial["user"] == "ada" and "sudo" in serial["groups"], serial
print("ssh: " + ident.strip().splitlines()[0])
print("serial console: ada (groups " + ",".join(serial["groups"]) + ")")
EOF
    fi
    # 6. The ISO as a CD, to the installer.
    wait_load
    log "QEMU: $iso as a CD-ROM to the live installer"
    truncate -s 4G "$workdir/cd-disk.raw"
    python3 - "$workdir/cd-dialog.json" "$password" <<'EOF'
import json, re, sys
pw = sys.argv[2] + "\r"
steps = [
    ("\r", r"Host name\? \[lake\]", "the host name question"),
    ("bad_host!\r", r"is not a valid host name", "the refusal of bad_host!"),
    ("", r"Host name\? \[lake\]", "the host name question again"),
    ("lake-cd\r", r"Timezone\? \[Etc/UTC\]", "the timezone question"),
    ("Mars/Olympus\r", r"is not a zone under /usr/share/zoneinfo", "the refusal of Mars/Olympus"),
    ("", r"Timezone\?", "the timezone question again"),
    ("Europe/Paris\r", r"Locale\? \[C\.UTF-8\]", "the locale question"),
    ("\r", r"Keyboard layout\? \[us\]", "the keyboard question"),
    ("\r", r"First user's name", "the user question"),
    ("grace\r", r"SSH public key", "the SSH key question"),
    ("\r", r"Password for grace: *$", "the password prompt"),
    (pw, r"Again: *$", "the second password prompt"),
    (pw, r"hostname +lake-cd", "the settings shown back"),
    ("", r"timezone +Europe/Paris", "the timezone shown back"),
    ("", r"user +grace \(group sudo; password set, 0 SSH key", "the user shown back"),
    ("", r"Type 'yes' to install:", "the confirmation question"),
]
# The password must never show on the console (echo goes off before its prompt).
fail = r"lake-installer: error|" + re.escape(sys.argv[2])
d = [{"send": t, "expect": e, "what": w, "fail": fail} for t, e, w in steps]
d.append({"send": "yes\r", "expect": r"Done\. Remove the install medium", "what": "the end of the install",
          "fail": fail, "timeout": 420})
json.dump(d, open(sys.argv[1], "w"), indent=1)
EOF
    bash ci/qemu-boot.sh --json --secure-boot --no-net --snapshot --timeout "$boot_timeout" --log "$workdir/cd-live.log" \
        --cdrom "$iso" --marker 'Install onto which disk\? \[/dev/vda\]' --dialog "$workdir/cd-dialog.json" --then-timeout 540 \
        "$workdir/cd-disk.raw" >"$workdir/cd-live.json" \
        || die "the ISO does not boot as a CD to the installer, or the interactive install failed (console: $workdir/cd-live.log)"
    secure "$workdir/cd-live.log"
    cd_s=$(json_get "$workdir/cd-live.json" marker_s)
    live=$(grep -a -m1 -o 'LAKE-LIVE {.*}' "$workdir/cd-live.log")
    python3 - "$live" <<'EOF' || die "LAKE-LIVE: the CD is not marked as the boot medium: $live"
import json, sys
v = json.loads(sys.argv[1][len("LAKE-LIVE "):])
assert v["medium"].startswith("/dev/sr"), v["medium"]
assert any(d["boot_medium"] and d["name"].startswith("sr") and d["refused"] for d in v["disks"]), v["disks"]
assert any(d["name"] == "vda" and not d["boot_medium"] and d["refused"] is None for d in v["disks"]), v["disks"]
EOF
fi

python3 - "$workdir/summary.json" <<EOF
import json
s = {
    "iso": "$iso", "iso_bytes": $iso_bytes, "sha256": ["$sum1", "$sum2"], "reproducible": True,
    "source_date_epoch": $SOURCE_DATE_EPOCH, "build_s": $build_s,
    "rebuild": {"change": "$change", "seconds": $rebuild_s, "objects_total": $total, "objects_new": $new, "objects_reused": $reused},
    "install_s": $install_s, "usb_install_run_s": $usb_s, "disk_boot_marker_s": $disk_s, "cd_live_marker_s": $cd_s,
}
json.dump(s, open("$workdir/summary.json", "w"), indent=1)
print("ISO %s: %.1f MiB; sha256 %s (twice)" % (s["iso"], s["iso_bytes"] / 2**20, s["sha256"][0]))
print("build %.1f s; rebuild after a one-package change (%s) %.1f s: %d objects, %d new, %d reused"
      % (s["build_s"], s["rebuild"]["change"], s["rebuild"]["seconds"], s["rebuild"]["objects_total"], s["rebuild"]["objects_new"], s["rebuild"]["objects_reused"]))
if s["install_s"] is not None:
    print("unattended install from USB: %s s (QEMU run %s s); installed disk to multi-user: %s s; CD to the installer: %s s"
          % (s["install_s"], s["usb_install_run_s"], s["disk_boot_marker_s"], s["cd_live_marker_s"]))
EOF
# The big scratch files (the logs and JSON stay): only images/<name>.iso is a product.
rm -f -- "$again" "$auto" "$changed_iso" "$changed_iso.objects" "$workdir/disk.raw" "$workdir/cd-disk.raw" "$workdir/lakeconfig.img" "$workdir/id_ed25519"
log "PASS (summary: $workdir/summary.json)"
