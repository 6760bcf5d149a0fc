#!/usr/bin/env bash
# ci/qemu-boot.sh — boot a disk image under QEMU/OVMF and judge the boot from
# the serial console (the boot harness of CI and the benchmarks).
#
# Usage: ci/qemu-boot.sh [OPTIONS] IMAGE...
#        ci/qemu-boot.sh [OPTIONS] --cdrom ISO|--usb IMG [IMAGE...]
#
# The first IMAGE is attached as a disk (raw; *.qcow2 as qcow2; on virtio
# unless --disk-bus says otherwise) and booted by OVMF (/usr/share/OVMF/OVMF_CODE_4M.fd, read-only pflash, plus a
# fresh copy of OVMF_VARS_4M.fd per run) on `-machine q35,accel=tcg` (KVM is
# not usable on the build hosts), with -nographic (serial console on stdio),
# -no-reboot, a virtio NIC (user networking) and a virtio RNG. Further IMAGEs
# are further disks on the same bus (serial numbers disk0, disk1, ...). Disk images are
# written to unless --snapshot is given.
#
# The run passes ONLY when the guest prints a console line
#   LAKE-BOOT-CHECK {"multi_user":"active","root_fstype":"overlay",
#                    "lake_generation":1,"failed_units":[],"uptime_s":...}
# (one line) with multi_user == "active", root_fstype == "overlay",
# failed_units == [] and lake_generation == the expected generation
# (a number, a numeric string, or an object with a "generation"/"default"
# key), and with the LAKE zone up: home_lakefs == true (/home is the lakefs
# FUSE mount), home_passthrough == true (FUSE passthrough active) and home_logged == true (the guest wrote a file to /home and `lakectl log`
# shows its version; see mkosi.extra/usr/local/sbin/lake-boot-check). With --marker REGEX it passes on the first console line matching REGEX
# instead. With --expect-reboot / --expect-poweroff it passes when the guest
# ends that way (its kernel's "reboot: Restarting system" / "reboot: Power
# down", then QEMU exits: -no-reboot), e.g. a boot whose health check reboots
# it; LAKE-BOOT-CHECK lines are then only recorded, and a --marker must have
# been seen before the end. QEMU is killed as soon as the verdict is known;
# it fails at once on a LAKE-BOOT-CHECK line that fails a check (not with
# --expect-*), a kernel panic, systemd emergency mode, or QEMU exiting early,
# and after the timeout. A kernel Oops that panics the guest before its init
# runs (a TCG fault: a vCPU running code another vCPU patches; no code of
# ours has run, no disk was written) boots the guest once more, and the
# report says so (ci/qemu_console.py).
#
# On success it prints the time from QEMU start to the first console output,
# to the kernel's "Linux version" line and to the LAKE-BOOT-CHECK line (the
# multi-user marker), and the guest's own uptime_s; with --json one JSON line
# instead (first_output_s, kernel_s, kernel_start_est_s, init_s, marker_s,
# guest_uptime_s, total_s, check, failures, log, ...). On failure it prints
# the last 120 console lines, the full log path and the failed checks
# (stderr; with --json also a JSON line with "result":"fail" on stdout).
#
# Options:
#   --timeout SECONDS      time limit from QEMU start to the verdict (default 600)
#   --memory MiB           guest memory (default 2048)
#   --cpus N               guest CPUs, -smp (default 2)
#   --log FILE             console log (cleaned of escape sequences); default: a
#                          new ${TMPDIR:-/tmp}/lake-qemu-boot.XXXXXX.log, kept
#   --json                 print the result as one line of JSON on stdout
#   --expect-generation N  generation the guest must report (default 1)
#   --marker REGEX         pass on a console line matching REGEX (Python re,
#                          searched in each cleaned line) instead of the check
#   --expect-reboot        pass when the guest reboots (see above)
#   --expect-poweroff      pass when the guest powers off; both options given:
#                          either end passes (the JSON's guest_end says which)
#   --credential NAME=VALUE  pass a systemd system credential by SMBIOS type 11
#                          (io.systemd.credential:NAME=VALUE; systemd >= 252
#                          imports it into /run/credentials/@system/NAME);
#                          repeatable
#   --append-check         ask the guest for the boot check and power-off from
#                          the VMM side: SMBIOS type 11 strings with system
#                          credentials lake.test.check=1 and
#                          lake.test.poweroff=1 (systemd >= 252 imports them
#                          into /run/credentials/@system) and the kernel command
#                          line extra "lake.test.check lake.test.poweroff"
#                          (honoured by systemd-stub >= 254 / systemd-boot
#                          >= 256 only; bookworm's systemd-boot 252 ignores it)
#   --cdrom ISO            attach ISO as a CD-ROM (q35 AHCI)
#   --usb IMG              attach IMG as USB storage (qemu-xhci + usb-storage);
#                          may be repeated
#   --disk-bus BUS         the bus of the IMAGE disks, as on real hardware:
#                          virtio (virtio-blk-pci, the default), nvme (an NVMe
#                          controller each), ahci (SATA disks on the q35 chipset's
#                          AHCI controller) or usb (USB mass storage on xHCI,
#                          fixed disks)
#   --boot disk|cdrom|usb  what OVMF boots first (default: cdrom if --cdrom is
#                          given, else usb if --usb is given, else the first
#                          IMAGE); the other devices follow in the boot order
#   --secure-boot          Secure Boot enforced: OVMF_CODE_4M.ms.fd with a copy
#                          of OVMF_VARS_4M.ms.fd (Microsoft's keys enrolled),
#                          -machine q35,smm=on and secure pflash (TCG only: KVM
#                          here has no SMM); the boot check must then report
#                          secure_boot == true (the guest's SecureBoot variable)
#   --snapshot             do not write to the images (QEMU -snapshot)
#   --no-net               no network card
#   --hostfwd HOST:GUEST   forward TCP port HOST on the host's 127.0.0.1 to
#                          port GUEST of the guest (QEMU user networking's
#                          hostfwd; e.g. 2222:22 for its sshd); repeatable
#   --then CMD             after the pass (the boot check or --marker), with the guest still
#                          running, run CMD on the host (bash -c; e.g. ssh
#                          through a --hostfwd port); a non-zero exit fails
#                          the run (output kept in LOG.then)
#   --serial-login USER    then log in as USER on the serial console with
#                          --serial-password (prompts login:, Password:, a
#                          shell), and check `id -un` says USER; the JSON's
#                          serial_login lists the user's groups
#   --serial-password PW   the password for --serial-login
#   --dialog FILE          then a conversation on the serial console (e.g. an
#                          installer's questions): FILE is a JSON list of
#                          {"send": TEXT, "expect": REGEX, "fail": REGEX,
#                          "what": LABEL, "timeout": S} steps (ci/qemu_console.py)
#   --then-timeout SECS    limit for each of --then, --serial-login, --dialog (default 300)
#   --wait-poweroff SECS   after a pass, let the guest power off by itself for
#                          up to SECS before QEMU is killed (default 0)
#   --screendump FILE      a graphical guest (a desktop profile): boot with a
#                          virtio-vga display (no window: -display none) and a
#                          QMP socket; after the boot check passes, take a QMP
#                          screendump every 5 s (the console still logged)
#                          until the screen has at least --min-colours
#                          distinct colours (the display manager's login is up;
#                          a text console has a handful), and save the next
#                          one as PNG in FILE; not within
#                          --screendump-timeout fails the run. The JSON's
#                          "screendump" says file, size, colours, wait_s
#   --screendump-timeout SECS  (default 300)
#   --min-colours N        (default 64)
#   --qemu-arg ARG         extra QEMU argument (repeatable)
#   -v, --verbose          echo the console to stderr as it arrives
#   --dry-run              print the QEMU command line and exit
#   -h, --help             show this help
#
# Environment: QEMU (default qemu-system-x86_64), OVMF_CODE, OVMF_VARS
# (defaults /usr/share/OVMF/OVMF_CODE_4M.fd and OVMF_VARS_4M.fd; with
# --secure-boot OVMF_CODE_4M.ms.fd and OVMF_VARS_4M.ms.fd).
# Needs: qemu-system-x86, ovmf, python3.
#
# Exit status: 0 pass; 1 check failed, timeout, or QEMU exited early;
# 2 usage error or missing prerequisites; 128+N when killed by signal N.
set -euo pipefail

prog="qemu-boot"
usage() { sed -n '2,/^set -euo pipefail$/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
die_usage() { printf '%s: error: %s (see --help)\n' "$prog" "$*" >&2; exit 2; }
die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

timeout=600
memory=2048
cpus=2
log=
json=0
generation=1
marker=
append_check=0
cdrom=
usbs=()
disk_bus=virtio
boot=
snapshot=0
secure_boot=0
net=1
wait_poweroff=0
verbose=0
dry_run=0
extra=()
images=()
expect_end=()
credentials=()
screendump=
screendump_timeout=300
min_colours=64
hostfwds=()
then_cmd=
then_timeout=300
serial_user=
serial_password=
dialog=

need_arg() { (($# >= 2)) || die_usage "$1 needs a value"; }
is_num() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
is_int() { [[ $1 =~ ^[0-9]+$ ]] && (($1 > 0)); }

while (($#)); do
    opt=$1
    # Accept --opt=value as well as --opt value.
    if [[ $opt == --*=* ]]; then
        set -- "${opt%%=*}" "${opt#*=}" "${@:2}"
        opt=$1
    fi
    case "$opt" in
        -h|--help) usage; exit 0 ;;
        --timeout) need_arg "$@"; timeout=$2; shift ;;
        --memory) need_arg "$@"; memory=$2; shift ;;
        --cpus) need_arg "$@"; cpus=$2; shift ;;
        --log) need_arg "$@"; log=$2; shift ;;
        --json) json=1 ;;
        --expect-generation) need_arg "$@"; generation=$2; shift ;;
        --marker) need_arg "$@"; marker=$2; shift ;;
        --append-check) append_check=1 ;;
        --expect-reboot) expect_end+=(reboot) ;;
        --expect-poweroff) expect_end+=(poweroff) ;;
        --credential) need_arg "$@"; credentials+=("$2"); shift ;;
        --cdrom) need_arg "$@"; cdrom=$2; shift ;;
        --usb) need_arg "$@"; usbs+=("$2"); shift ;;
        --disk-bus) need_arg "$@"; disk_bus=$2; shift ;;
        --boot) need_arg "$@"; boot=$2; shift ;;
        --snapshot) snapshot=1 ;;
        --secure-boot) secure_boot=1 ;;
        --no-net) net=0 ;;
        --hostfwd) need_arg "$@"; hostfwds+=("$2"); shift ;;
        --then) need_arg "$@"; then_cmd=$2; shift ;;
        --then-timeout) need_arg "$@"; then_timeout=$2; shift ;;
        --serial-login) need_arg "$@"; serial_user=$2; shift ;;
        --serial-password) need_arg "$@"; serial_password=$2; shift ;;
        --dialog) need_arg "$@"; dialog=$2; shift ;;
        --wait-poweroff) need_arg "$@"; wait_poweroff=$2; shift ;;
        --screendump) need_arg "$@"; screendump=$2; shift ;;
        --screendump-timeout) need_arg "$@"; screendump_timeout=$2; shift ;;
        --min-colours) need_arg "$@"; min_colours=$2; shift ;;
        --qemu-arg) need_arg "$@"; extra+=("$2"); shift ;;
        -v|--verbose) verbose=1 ;;
        --dry-run) dry_run=1 ;;
        --) shift; images+=("$@"); break ;;
        -*) die_usage "unknown option: $opt" ;;
        *) images+=("$opt") ;;
    esac
    shift
done

if ! is_num "$timeout" || [[ $timeout =~ ^0*([.]0*)?$ ]]; then
    die_usage "--timeout must be a positive number of seconds"
fi
is_int "$memory" || die_usage "--memory must be a positive integer (MiB)"
is_int "$cpus" || die_usage "--cpus must be a positive integer"
is_num "$screendump_timeout" || die_usage "--screendump-timeout must be a number of seconds"
is_int "$min_colours" || die_usage "--min-colours must be a positive integer"
if [[ -n $screendump ]]; then
    [[ -z $marker && ${#expect_end[@]} == 0 ]] || die_usage "--screendump goes with the boot check, not --marker/--expect-*"
    [[ -d $(dirname -- "$screendump") ]] || die_usage "--screendump: no directory $(dirname -- "$screendump")"
fi
if [[ -n $then_cmd || -n $serial_user || -n $dialog ]]; then
    ((${#expect_end[@]} == 0)) || die_usage "--then, --serial-login and --dialog need a running guest, not --expect-*"
fi
[[ -z $dialog || -r $dialog ]] || die_usage "--dialog: cannot read $dialog"
is_num "$then_timeout" || die_usage "--then-timeout must be a number of seconds"
for f in "${hostfwds[@]}"; do
    [[ $f =~ ^[0-9]+:[0-9]+$ ]] || die_usage "--hostfwd needs HOSTPORT:GUESTPORT, got: $f"
done
((net || ${#hostfwds[@]} == 0)) || die_usage "--hostfwd needs the network card (not --no-net)"
is_num "$wait_poweroff" || die_usage "--wait-poweroff must be a number of seconds"
[[ -n $generation ]] || die_usage "--expect-generation needs a value"
if [[ -n $marker ]]; then
    python3 -c 'import re,sys; re.compile(sys.argv[1])' "$marker" 2>/dev/null \
        || die_usage "--marker is not a valid regular expression: $marker"
fi
((${#images[@]} || ${#usbs[@]})) || [[ -n $cdrom ]] || die_usage "no IMAGE given"
if [[ -z $boot ]]; then
    if [[ -n $cdrom ]]; then boot=cdrom
    elif ((${#usbs[@]})); then boot=usb
    else boot=disk
    fi
fi
case "$boot" in
    disk) ((${#images[@]})) || die_usage "--boot disk needs an IMAGE" ;;
    cdrom) [[ -n $cdrom ]] || die_usage "--boot cdrom needs --cdrom" ;;
    usb) ((${#usbs[@]})) || die_usage "--boot usb needs --usb" ;;
    *) die_usage "--boot must be disk, cdrom or usb" ;;
esac
case "$disk_bus" in
    virtio|nvme|ahci|usb) ;;
    *) die_usage "--disk-bus must be virtio, nvme, ahci or usb" ;;
esac

qemu=${QEMU:-qemu-system-x86_64}
ms=""
((secure_boot)) && ms=.ms    # the builds with Microsoft's keys enrolled
ovmf_code=${OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M$ms.fd}
ovmf_vars=${OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M$ms.fd}
command -v "$qemu" >/dev/null 2>&1 || die "$qemu not found (apt-get install qemu-system-x86)"
command -v python3 >/dev/null 2>&1 || die "python3 not found"
[[ -r $ovmf_code ]] || die "OVMF firmware $ovmf_code not found (apt-get install ovmf)"
if [[ $disk_bus == ahci ]]; then
    ports=${#images[@]}
    [[ -n $cdrom ]] && ports=$((ports + 1))
    ((ports <= 6)) || die_usage "--disk-bus ahci: q35's AHCI controller has six ports (disks and the CD-ROM)"
fi
[[ -r $ovmf_vars ]] || die "OVMF variable store $ovmf_vars not found (apt-get install ovmf)"
for f in "${images[@]}" "${usbs[@]}" ${cdrom:+"$cdrom"}; do
    [[ -f $f || -b $f ]] || die "no such image: $f"
    [[ -r $f ]] || die "image not readable: $f"
done

# QEMU option values: a comma inside a value is written as ",,".
qv() { printf '%s' "${1//,/,,}"; }
fmt_of() { case "$1" in *.qcow2) echo qcow2 ;; *) echo raw ;; esac; }

workdir=$(mktemp -d "${TMPDIR:-/tmp}/lake-qemu-boot.XXXXXX")
trap 'rm -rf -- "$workdir"' EXIT
cp -- "$ovmf_vars" "$workdir/OVMF_VARS.fd"

# Boot order: the chosen boot device first, then disks, CD, USB.
next_index=1
idx=
# A direct kernel boot (--qemu-arg -kernel ...) takes boot index 0 itself.
direct_kernel=0
for a in "${extra[@]}"; do [[ $a == -kernel ]] && direct_kernel=1; done
((direct_kernel)) && next_index=1
bootindex() { # sets idx; $1 = kind of device (disk, cdrom, usb), $2 = its number
    if [[ $1 == "$boot" && $2 == 0 ]] && ((!direct_kernel)); then idx=0
    else idx=$next_index; next_index=$((next_index + 1))
    fi
}

machine=q35,accel=tcg
# Secure Boot: the variable store is only protected (and so enforced) with SMM.
((secure_boot)) && machine=q35,smm=on,accel=tcg
cmd=(
    "$qemu"
    -machine "$machine"
    -m "$memory"
    -smp "$cpus"
    -nographic
    -no-reboot
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$(qv "$ovmf_code")"
    -drive "if=pflash,format=raw,unit=1,file=$(qv "$workdir/OVMF_VARS.fd")"
    -device virtio-rng-pci
)
((secure_boot)) && cmd+=(-global driver=cfi.pflash01,property=secure,value=on)
if ((net)); then
    nic=user,model=virtio-net-pci
    for f in "${hostfwds[@]}"; do nic+=",hostfwd=tcp:127.0.0.1:${f%%:*}-:${f#*:}"; done
    cmd+=(-nic "$nic")
else
    cmd+=(-nic none)
fi
# One xHCI controller carries every USB device (--usb sticks, --disk-bus usb).
xhci=0
need_xhci() { ((xhci)) || cmd+=(-device "qemu-xhci,id=xhci"); xhci=1; }
for i in "${!images[@]}"; do
    img=${images[$i]}
    cmd+=(-drive "if=none,id=disk$i,format=$(fmt_of "$img"),file=$(qv "$img")")
    bootindex disk "$i"
    case "$disk_bus" in
        virtio) cmd+=(-device "virtio-blk-pci,drive=disk$i,serial=disk$i,bootindex=$idx") ;;
        nvme) cmd+=(-device "nvme,drive=disk$i,serial=disk$i,bootindex=$idx") ;;
        # q35's ICH9 AHCI controller has six ports (ide.0 .. ide.5); disks
        # take them before a --cdrom does.
        ahci) cmd+=(-device "ide-hd,drive=disk$i,bus=ide.$i,serial=disk$i,bootindex=$idx") ;;
        usb) need_xhci; cmd+=(-device "usb-storage,bus=xhci.0,drive=disk$i,serial=disk$i,removable=off,bootindex=$idx") ;;
    esac
done
if [[ -n $cdrom ]]; then
    cmd+=(-drive "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=$(qv "$cdrom")")
    bootindex cdrom 0
    cd_bus=
    [[ $disk_bus == ahci ]] && cd_bus=",bus=ide.${#images[@]}"
    cmd+=(-device "ide-cd,drive=cd0$cd_bus,bootindex=$idx")
fi
if ((${#usbs[@]})); then
    need_xhci
    for i in "${!usbs[@]}"; do
        img=${usbs[$i]}
        cmd+=(-drive "if=none,id=usb$i,format=$(fmt_of "$img"),file=$(qv "$img")")
        bootindex usb "$i"
        cmd+=(-device "usb-storage,bus=xhci.0,drive=usb$i,removable=on,bootindex=$idx")
    done
fi
if ((append_check)); then
    cmd+=(
        -smbios "type=11,value=io.systemd.credential:lake.test.check=1"
        -smbios "type=11,value=io.systemd.credential:lake.test.poweroff=1"
        -smbios "type=11,value=io.systemd.stub.kernel-cmdline-extra=lake.test.check lake.test.poweroff"
        -smbios "type=11,value=io.systemd.boot.kernel-cmdline-extra=lake.test.check lake.test.poweroff"
    )
fi
for c in "${credentials[@]}"; do
    [[ $c =~ ^[A-Za-z0-9_.@-]+= ]] || die_usage "--credential needs NAME=VALUE, got: $c"
    cmd+=(-smbios "type=11,value=io.systemd.credential:$(qv "$c")")
done
((snapshot)) && cmd+=(-snapshot)
if [[ -n $screendump ]]; then
    # -nographic already means -display none; the card replaces the default VGA.
    cmd+=(-vga none -device virtio-vga -qmp "unix:$(qv "$workdir/qmp.sock"),server=on,wait=off")
fi
cmd+=("${extra[@]}")

if ((dry_run)); then
    printf '%q ' "${cmd[@]}"; printf '\n'
    exit 0
fi

if [[ -z $log ]]; then
    log=$(mktemp "${TMPDIR:-/tmp}/lake-qemu-boot.XXXXXX.log")
fi
helper=(python3 "$here/qemu_console.py" --timeout "$timeout" --log "$log"
        --expect-generation "$generation" --wait-poweroff "$wait_poweroff"
        --workdir "$workdir" --fresh-copy "$ovmf_vars" "$workdir/OVMF_VARS.fd")
((json)) && helper+=(--json)
((verbose)) && helper+=(--verbose)
((secure_boot)) && helper+=(--expect-secure-boot)
[[ -n $marker ]] && helper+=(--marker "$marker")
for e in "${expect_end[@]}"; do helper+=(--expect-end "$e"); done
[[ -n $then_cmd ]] && helper+=(--then "$then_cmd")
[[ -n $serial_user ]] && helper+=(--serial-login "$serial_user" --serial-password "$serial_password")
[[ -n $dialog ]] && helper+=(--dialog "$dialog")
helper+=(--then-timeout "$then_timeout")
[[ -n $screendump ]] && helper+=(--qmp "$workdir/qmp.sock" --screendump "$screendump"
    --screendump-timeout "$screendump_timeout" --min-colours "$min_colours")

# The helper owns QEMU from here: it runs it in its own process group (with
# a parent-death signal), kills it on every exit path, and removes $workdir.
trap - EXIT
exec "${helper[@]}" -- "${cmd[@]}"
