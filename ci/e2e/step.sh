#!/bin/bash
# ci/e2e/step.sh — the guest side of ci/e2e-posix.sh (copied onto the LAKETEST
# disk; run by /usr/local/sbin/lake-test-scenario at every boot of the test).
#
# It reads the phase from $LAKE_E2E_DIR/state/phase, does that phase's actions,
# writes the next phase, and reports facts (not verdicts: the host judges) as
# console lines `LAKE-E2E {json}`:
#   {"boot":N,"phase":P,"what":"state","label":L,...}  what the system looks like
#   {"boot":N,"phase":P,"what":"cmd","name":NAME,"rc":RC,"stdout":S,"stderr":E}
#   {"boot":N,"phase":P,"what":"end","next":PHASE,"poweroff":BOOL}
# Phases:
#   1         gen 1: write /home/alice/notes.txt, apt-get install the test .deb
#             (the hooks commit before and after and deploy gen 2)
#   2         roll back to before the last apt run
#   3         roll forward to gen 2 without a reboot (--now); commit and deploy
#             a generation whose lake-broken.service fails; add a boot entry
#             (one try) for a generation that does not exist (fails in the
#             initramfs)
#   fallback  every boot until systemd-boot gave up on the broken generation:
#             report; on the broken one do nothing (lake-boot-health reboots)
#   done      report only
# Requests a power-off (touch /run/lake-test/poweroff) except on broken tries.
set -u
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive

D=${LAKE_E2E_DIR:?}
BOOT=${LAKE_E2E_BOOT:?}
TTY=${LAKE_E2E_TTY:-/dev/ttyS0}
PHASE=$(cat "$D/state/phase" 2>/dev/null || echo 1)
TRIES=$(cat "$D/state/tries" 2>/dev/null || echo 3)
NOTES=/home/alice/notes.txt
DEB=$D/lake-hello_1.0_all.deb

js() { # JSON string literal of $1
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\t'/\\t}
    s=${s//$'\r'/}
    s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037\177')
    printf '"%s"' "$s"
}
jarr() { # JSON array of strings from the arguments
    local out="[" sep="" x
    for x in "$@"; do out+="$sep$(js "$x")"; sep=","; done
    printf '%s]' "$out"
}
emit() { # emit WHAT JSON-MEMBERS...: one console line (and the step log)
    local what=$1 body
    shift
    body="{\"boot\":$BOOT,\"phase\":$(js "$PHASE"),\"what\":$(js "$what")"
    for m in "$@"; do body+=",$m"; done
    body+="}"
    echo "LAKE-E2E $body"
    [[ -c $TTY ]] && timeout 10 bash -c 'printf "\r\n%s\r\n" "$1" >"$2"' _ "LAKE-E2E $body" "$TTY"
}

# run NAME CMD...: run a command, log it, report rc/stdout/stderr; $OUT holds stdout.
OUT=""
run() {
    local name=$1 rc
    shift
    echo "== $name: $*"
    OUT=$("$@" 2>/run/lake-test/stderr)
    rc=$?
    printf '%s\n' "$OUT"
    cat /run/lake-test/stderr
    echo "== $name: exit $rc"
    emit cmd "\"name\":$(js "$name")" "\"argv\":$(jarr "$@")" "\"rc\":$rc" \
        "\"stdout\":$(js "${OUT:0:12000}")" "\"stderr\":$(js "$(tail -c 3000 /run/lake-test/stderr)")"
    return $rc
}

efi_var() { # the UTF-16LE string of an efivarfs file (after 4 bytes of attributes)
    [[ -r $1 ]] && cat -- "$1" | tail -c +5 | iconv -f UTF-16LE -t UTF-8 | tr -d '\000'
}

state() { # state LABEL: the facts the host checks
    local gen entries=() failed=() f unit home_src efi_fs esp_dev counted="" selected="" sum="" hello=false hello_out="" pkg=""
    gen=$(cat /run/lakefs/booted-generation 2>/dev/null)
    [[ $gen =~ ^[0-9]+$ ]] || gen=null
    for f in /efi/loader/entries/*.conf; do [[ -e $f ]] && entries+=("${f##*/}"); done
    while read -r unit _; do
        unit=${unit#●}
        [[ -n $unit ]] && failed+=("$unit")
    done < <(systemctl --failed --plain --no-legend --no-pager 2>/dev/null)
    home_src=$(findmnt -n -o SOURCE /home 2>/dev/null | head -n1)
    efi_fs=$(findmnt -n -o FSTYPE /efi 2>/dev/null | head -n1)
    esp_dev=$(cat /run/lakefs/esp-device 2>/dev/null)
    f=/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
    [[ -e $f ]] && counted=$(efi_var "$f")
    selected=$(efi_var /sys/firmware/efi/efivars/LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f)
    [[ -f $NOTES ]] && sum=$(sha256sum <"$NOTES" | cut -d' ' -f1)
    if [[ -x /usr/bin/lake-hello ]]; then
        hello=true
        hello_out=$(/usr/bin/lake-hello 2>&1)
    fi
    pkg=$(dpkg-query -W -f '${Status} ${Version}' lake-hello 2>/dev/null)
    emit state "\"label\":$(js "$1")" "\"booted_generation\":$gen" "\"entries\":$(jarr "${entries[@]}")" \
        "\"failed_units\":$(jarr "${failed[@]}")" "\"home_source\":$(js "$home_src")" \
        "\"efi_fstype\":$(js "$efi_fs")" "\"esp_device\":$(js "$esp_dev")" "\"counted_entry\":$(js "$counted")" "\"selected_entry\":$(js "$selected")" \
        "\"notes_sha256\":$(js "$sum")" "\"lake_hello\":$hello" "\"lake_hello_output\":$(js "$hello_out")" \
        "\"lake_hello_package\":$(js "$pkg")" "\"broken_unit\":$([[ -e /etc/systemd/system/lake-broken.service ]] && echo true || echo false)" \
        "\"uptime_s\":$(cut -d' ' -f1 /proc/uptime)"
}

finish() { # finish NEXT-PHASE POWEROFF(0|1)
    echo "$1" >"$D/state/phase"
    sync
    emit end "\"next\":$(js "$1")" "\"poweroff\":$([[ $2 == 1 ]] && echo true || echo false)"
    [[ $2 == 1 ]] && touch /run/lake-test/poweroff
    exit 0
}

generations() { run generations lakectl --json generation list; }

echo "=== boot $BOOT, phase $PHASE, $(date -u +%FT%TZ)"
case "$PHASE" in
1)
    state before
    mkdir -p /home/alice
    printf 'Notes of alice, written in generation 1 at boot %s (%s).\n' "$BOOT" "$(date -u +%FT%TZ)" >"$NOTES"
    run apt-install apt-get install -y --no-install-recommends "$DEB"
    generations
    run log lakectl --json --zone posix log
    state after
    finish 2 1
    ;;
2)
    state before
    run rollback lakectl --zone posix rollback --to before:last-apt-upgrade --yes
    generations
    state after
    finish 3 1
    ;;
3)
    state before
    run rollforward lakectl --zone posix rollback --to gen:2 --now --yes
    state after-rollforward
    # A generation that cannot boot cleanly: a unit that always fails. Oneshot,
    # so it has failed before multi-user.target is reached.
    cat >/etc/systemd/system/lake-broken.service <<'UNIT'
[Unit]
Description=Deliberately broken unit (Lake OS end-to-end test)

[Service]
Type=oneshot
ExecStart=/bin/false

[Install]
WantedBy=multi-user.target
UNIT
    ln -sfn ../lake-broken.service /etc/systemd/system/multi-user.target.wants/lake-broken.service
    run commit-broken lakectl --zone posix commit -m broken
    # The running generation stays good: the unit only lives in the commit.
    rm -f /etc/systemd/system/lake-broken.service /etc/systemd/system/multi-user.target.wants/lake-broken.service
    run deploy-broken lakectl generation deploy --tries "$TRIES"
    # And one that fails in the initramfs: a boot entry (one try) for a
    # generation the lake does not have, as after a lost checkout. It sorts
    # first, so it is tried before the broken one.
    newest=0
    for f in /efi/loader/entries/lake-*.conf; do
        n=${f##*/lake-}; n=${n%%[+.]*}
        [[ $n =~ ^[0-9]+$ ]] && ((n > newest)) && newest=$n
    done
    phantom=$((newest + 1))
    src=$(ls /efi/loader/entries/lake-"$newest"[+.]*conf 2>/dev/null | head -n1)
    if [[ -n $src ]] && sed -e "s/^version .*/version $phantom/" -e "s/lake\.gen=$newest/lake.gen=$phantom/" "$src" \
            >"/efi/loader/entries/lake-$phantom+1.conf"; then
        emit phantom "\"generation\":$phantom" "\"entry\":$(js "lake-$phantom+1.conf")"
    else
        emit phantom "\"generation\":null" "\"error\":$(js "no entry of generation $newest to copy")"
    fi
    generations
    state after
    finish fallback 1
    ;;
fallback)
    state boot
    if [[ -e /etc/systemd/system/lake-broken.service ]]; then
        f=/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
        if [[ -e $f ]]; then
            # lake-boot-health (ordered after this unit) reboots this boot.
            finish fallback 0
        fi
        # Not counted: nothing would reboot it; end the run (the host fails it).
        finish fallback 1
    fi
    generations
    finish done 1
    ;;
*)
    state boot
    finish "$PHASE" 1
    ;;
esac
