#!/usr/bin/env python3
"""The POSIX-zone end-to-end scenario (run through ci/e2e-posix.sh; see its --help).

Boots a scratch copy of a Lake OS image several times in QEMU (one
ci/qemu-boot.sh run per boot, the disk kept in between) with a second disk,
LAKETEST, that carries the guest side (ci/e2e/step.sh, a test .deb) and the
state across boots. The guest reports facts as console lines `LAKE-E2E {json}`;
this script judges them. Python 3 standard library only.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

PROG = "e2e-posix"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CREDENTIAL = "lake.test.scenario=1"
BROKEN_UNIT = "lake-broken.service"
TAG_RE = re.compile(r"(LAKE-E2E|LAKE-BOOT-HEALTH|LAKE-BOOT-CHECK) (\{.*)$")
ENTRY_RE = re.compile(r"^lake-(\d+)(?:\+(\d+)(?:-(\d+))?)?\.conf$")


class Failure(Exception):
    def __init__(self, step, message, log=None):
        super().__init__(message)
        self.step, self.message, self.log = step, message, log


def say(msg):
    sys.stderr.write(f"{PROG}: {msg}\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- set-up --

def build_deb(work, stage):
    """lake-hello 1.0 (all): /usr/bin/lake-hello and /usr/share/lake-hello/data."""
    root = os.path.join(work, "lake-hello")
    os.makedirs(os.path.join(root, "DEBIAN"))
    os.makedirs(os.path.join(root, "usr/bin"))
    os.makedirs(os.path.join(root, "usr/share/lake-hello"))
    with open(os.path.join(root, "DEBIAN/control"), "w") as f:
        f.write("Package: lake-hello\nVersion: 1.0\nArchitecture: all\n"
                "Maintainer: Lake OS tests <tests@lake.invalid>\nSection: misc\nPriority: optional\n"
                "Description: Lake OS end-to-end test package\n"
                " Installed and rolled back by ci/e2e-posix.sh.\n")
    with open(os.path.join(root, "usr/bin/lake-hello"), "w") as f:
        f.write("#!/bin/sh\necho \"hello from lake-hello 1.0: $(cat /usr/share/lake-hello/data)\"\n")
    os.chmod(os.path.join(root, "usr/bin/lake-hello"), 0o755)
    with open(os.path.join(root, "usr/share/lake-hello/data"), "w") as f:
        f.write("lake-hello test data\n")
    deb = os.path.join(stage, "lake-hello_1.0_all.deb")
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", root, deb], "build the test .deb")
    return deb


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise Failure("setup", f"{what} failed ({' '.join(cmd)}, exit {p.returncode}):\n{p.stdout.strip()}")
    return p.stdout


def prepare(args):
    work = args.workdir
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    disk = os.path.join(work, "disk.raw")
    t0 = time.monotonic()
    run(["cp", "--sparse=always", args.image, disk], f"copy {args.image}")
    stage = os.path.join(work, "laketest")
    os.makedirs(os.path.join(stage, "state"))
    os.makedirs(os.path.join(stage, "logs"))
    shutil.copy(os.path.join(HERE, "e2e", "step.sh"), os.path.join(stage, "step.sh"))
    with open(os.path.join(stage, "state", "phase"), "w") as f:
        f.write("1\n")
    with open(os.path.join(stage, "state", "tries"), "w") as f:
        f.write(f"{args.tries}\n")
    build_deb(work, stage)
    test_img = os.path.join(work, "laketest.img")
    # mke2fs -d fills the file system from a directory: no loop device, no mount.
    run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "LAKETEST", "-d", stage, test_img, "64M"],
        "make the LAKETEST disk")
    return disk, test_img, time.monotonic() - t0


# ----------------------------------------------------------------- boots --

def parse_console(log):
    """Tagged JSON lines of a console log: {"e2e": [...], "health": [...], "check": [...], "bad": [...]}."""
    out = {"e2e": [], "health": [], "check": [], "bad": []}
    key = {"LAKE-E2E": "e2e", "LAKE-BOOT-HEALTH": "health", "LAKE-BOOT-CHECK": "check"}
    try:
        with open(log, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        m = TAG_RE.search(line)
        if not m:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(m.group(2))
        except ValueError:
            out["bad"].append(line[:300])
            continue
        out[key[m.group(1)]].append(obj)
    return out


class Boot:
    def __init__(self, n, name, result, console, seconds):
        self.n, self.name, self.result, self.console, self.seconds = n, name, result, console, seconds
        self.log = result.get("log")

    def e2e(self, what, **match):
        return [o for o in self.console["e2e"]
                if o.get("what") == what and all(o.get(k) == v for k, v in match.items())]

    def state(self, label):
        s = self.e2e("state", label=label)
        if not s:
            raise Failure(self.name, f"the guest sent no state report '{label}'", self.log)
        return s[-1]

    def cmd(self, name, ok=True):
        c = self.e2e("cmd", name=name)
        if not c:
            raise Failure(self.name, f"the guest did not report running '{name}'", self.log)
        c = c[-1]
        if ok and c.get("rc") != 0:
            raise Failure(self.name, f"`{' '.join(c.get('argv') or [name])}` exited {c.get('rc')} in the guest:\n"
                          f"{(c.get('stderr') or '').strip()[-1500:]}", self.log)
        return c

    def health(self):
        return self.console["health"][-1] if self.console["health"] else None


def boot(args, disk, test_img, n, name, expect):
    log = os.path.join(args.workdir, f"boot-{n}.log")
    cmd = ["bash", os.path.join(HERE, "qemu-boot.sh"), "--json", "--no-net", "--log", log,
           "--timeout", str(args.boot_timeout), "--credential", CREDENTIAL]
    for e in expect:
        cmd.append(f"--expect-{e}")
    cmd += [disk, test_img]
    say(f"boot {n} ({name}): QEMU, expecting a {' or '.join(expect)}; console: {log}")
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seconds = time.monotonic() - t0
    result = {}
    for line in reversed(p.stdout.splitlines()):
        try:
            result = json.loads(line)
            break
        except ValueError:
            continue
    result.setdefault("log", log)
    console = parse_console(log)
    b = Boot(n, name, result, console, seconds)
    errors = [o["error"] for o in console["e2e"] if "error" in o]
    if errors:
        raise Failure(name, "the guest's test step reported: " + "; ".join(map(str, errors)), log)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-25:])
        raise Failure(name, f"the QEMU run failed (qemu-boot.sh exit {p.returncode}): "
                      f"{'; '.join(result.get('failures') or [])}\n{tail}", log)
    if console["bad"]:
        say(f"boot {n}: unparseable tagged console lines: {console['bad'][:3]}")
    say(f"boot {n} ({name}): {seconds:.1f} s, guest {result.get('guest_end')}")
    return b


def expect(cond, step, message, log=None):
    if not cond:
        raise Failure(step, message, log)


def gen_numbers(cmd):
    """Generation numbers from `lakectl --json generation list` output."""
    try:
        data = json.loads(cmd.get("stdout") or "")
    except ValueError:
        return None
    if isinstance(data, dict):
        data = data.get("generations", data.get("list"))
    if not isinstance(data, list):
        return None
    nums = []
    for g in data:
        if isinstance(g, dict):
            v = g.get("number", g.get("generation"))
            if isinstance(v, int):
                nums.append(v)
    return sorted(nums)


def entries_of(state):
    """{generation: (tries_left, tries_done)} of the lake-*.conf entries on the ESP
    (None, None for an uncounted entry)."""
    out = {}
    for e in state.get("entries") or []:
        m = ENTRY_RE.match(e)
        if m:
            left = int(m.group(2)) if m.group(2) is not None else None
            done = int(m.group(3)) if m.group(3) is not None else (0 if left is not None else None)
            out[int(m.group(1))] = (left, done)
    return out


def check_common(b, st):
    """Every boot: the ESP on /efi, /home from the lake's state/home."""
    expect(st.get("efi_fstype") == "vfat", b.name,
           f"/efi is not the ESP (fstype {st.get('efi_fstype')!r}, esp-device {st.get('esp_device')!r})", b.log)
    expect("/state/home" in (st.get("home_source") or ""), b.name,
           f"/home is not bind-mounted from the lake's state/home (source {st.get('home_source')!r})", b.log)


def scenario(args, disk, test_img, report):
    boots = report["boots"]

    def record(b, **extra):
        st = [o for o in b.console["e2e"] if o.get("what") == "state"]
        boots.append({"n": b.n, "name": b.name, "seconds": round(b.seconds, 1),
                      "guest_end": b.result.get("guest_end"),
                      "generation": st[0].get("booted_generation") if st else None,
                      "log": b.log, **extra})

    # Boot 1: generation 1; write a file in /home; apt-get install (hooks).
    b = boot(args, disk, test_img, 1, "install", ["poweroff"])
    record(b)
    st = b.state("before")
    check_common(b, st)
    expect(st.get("booted_generation") == 1, b.name, f"booted generation {st.get('booted_generation')}, expected 1", b.log)
    b.cmd("apt-install")
    after = b.state("after")
    expect(after.get("lake_hello") is True, b.name, "lake-hello is not installed after apt-get install", b.log)
    notes = after.get("notes_sha256")
    expect(bool(notes), b.name, "/home/alice/notes.txt was not written", b.log)
    gens = gen_numbers(b.cmd("generations"))
    expect(gens is not None and 2 in gens, b.name,
           f"no generation 2 after the apt run (lakectl generation list: {b.cmd('generations', ok=False).get('stdout')!r})", b.log)
    ent = entries_of(after)
    expect(2 in ent and ent[2][0] is not None, b.name,
           f"no boot-counted entry lake-2+N.conf on the ESP (entries: {after.get('entries')})", b.log)
    b.cmd("log")

    # Boot 2: the new generation; roll back to before the apt run.
    b = boot(args, disk, test_img, 2, "rollback", ["poweroff"])
    record(b)
    st = b.state("before")
    check_common(b, st)
    expect(st.get("booted_generation") == 2, b.name, f"booted generation {st.get('booted_generation')}, expected 2 (entries {st.get('entries')})", b.log)
    expect(st.get("lake_hello") is True, b.name, "lake-hello is missing in generation 2", b.log)
    expect(st.get("notes_sha256") == notes, b.name, "/home/alice/notes.txt changed", b.log)
    b.cmd("rollback")
    gens = gen_numbers(b.cmd("generations"))
    expect(gens is not None and 3 in gens, b.name, f"no generation 3 after the rollback (generations: {gens})", b.log)

    # Boot 3: rolled back; roll forward live; deploy a broken generation.
    b = boot(args, disk, test_img, 3, "rollforward+broken", ["poweroff"])
    st = b.state("before")
    check_common(b, st)
    expect(st.get("booted_generation") == 3, b.name, f"booted generation {st.get('booted_generation')}, expected 3 (entries {st.get('entries')})", b.log)
    expect(st.get("lake_hello") is False, b.name, "lake-hello is still there after the rollback", b.log)
    expect(st.get("notes_sha256") == notes, b.name, "/home/alice/notes.txt changed by the rollback", b.log)
    blessed = entries_of(st).get(2)
    expect(blessed == (None, None), b.name,
           f"generation 2's entry was not marked good after its healthy boot (entries {st.get('entries')})", b.log)
    b.cmd("rollforward")
    expect(b.state("after-rollforward").get("lake_hello") is True, b.name,
           "lake-hello is not back right after `rollback --to gen:2 --now`", b.log)
    b.cmd("commit-broken")
    b.cmd("deploy-broken")
    gens = gen_numbers(b.cmd("generations"))
    after = b.state("after")
    ent = entries_of(after)
    expect(gens is not None and len(gens) >= 2, b.name, f"generation list unreadable: {gens}", b.log)
    broken, fallback = gens[-1], gens[-2]
    expect(broken in ent and ent[broken][0] is not None, b.name,
           f"the broken generation {broken} has no boot-counted entry (entries {after.get('entries')})", b.log)
    tries = ent[broken][0]
    ph = b.e2e("phantom")
    phantom = ph[-1].get("generation") if ph else None
    expect(isinstance(phantom, int) and phantom in ent and ent[phantom][0] == 1, b.name,
           f"no one-try entry for a missing generation was written (phantom {ph}; entries {after.get('entries')})", b.log)
    record(b, broken_generation=broken, expected_fallback=fallback, tries=tries, missing_generation=phantom)
    say(f"broken generation {broken} (entry with {tries} tries), entry lake-{phantom}+1.conf for a missing "
        f"generation; expected fallback: generation {fallback}")

    # Boots 4..: systemd-boot tries the missing generation once (lake-initramfs
    # fails and reboots) and the broken one `tries` times (lake-boot-health
    # reboots each time), then falls back by itself.
    attempts = initramfs_fails = 0
    for n in range(4, 4 + tries + 3):
        b = boot(args, disk, test_img, n, f"fallback boot {n - 3}", ["reboot", "poweroff"])
        if not b.e2e("state"):
            # No user space: the initramfs must have failed on the missing generation.
            text = open(b.log, encoding="utf-8", errors="replace").read()
            initramfs_fails += 1
            record(b, initramfs_failure=initramfs_fails)
            expect(f"lake-initramfs: ERROR: generation {phantom} does not exist" in text
                   and f"boot-counted try of lake-{phantom}+0-1.conf: rebooting" in text
                   and b.result.get("guest_end") == "reboot", b.name,
                   f"the boot neither reached user space nor failed in the initramfs on generation {phantom} "
                   f"with a reboot (guest {b.result.get('guest_end')})", b.log)
            expect(initramfs_fails == 1, b.name, f"generation {phantom}'s one-try entry was booted {initramfs_fails} times", b.log)
            continue
        st = b.state("boot")
        gen = st.get("booted_generation")
        h = b.health()
        if gen == broken:
            attempts += 1
            record(b, broken_try=attempts)
            expect(b.result.get("guest_end") == "reboot", b.name,
                   f"the broken generation {broken} was not rebooted (guest {b.result.get('guest_end')}; "
                   f"LAKE-BOOT-HEALTH {json.dumps(h)})", b.log)
            expect(h is not None and BROKEN_UNIT in (h.get("failed_units") or []) and h.get("counted") is True
                   and h.get("action") == "reboot", b.name,
                   f"lake-boot-health did not report the failed {BROKEN_UNIT} on a counted boot: {json.dumps(h)}", b.log)
            expect(attempts <= tries, b.name, f"the broken generation booted {attempts} times, more than its {tries} tries", b.log)
            continue
        record(b)
        expect(gen == fallback, b.name,
               f"booted generation {gen}; expected the broken {broken} or the fallback {fallback} (entries {st.get('entries')})", b.log)
        expect(attempts == tries, b.name, f"fell back after {attempts} tries of generation {broken}, expected {tries}", b.log)
        expect(initramfs_fails == 1, b.name, f"generation {phantom} (missing) was tried {initramfs_fails} times, expected once", b.log)
        expect(b.result.get("guest_end") == "poweroff", b.name, f"guest {b.result.get('guest_end')} on the good generation", b.log)
        check_common(b, st)
        expect(not st.get("failed_units"), b.name, f"failed units on the fallback generation: {st.get('failed_units')}", b.log)
        expect(st.get("lake_hello") is True, b.name, "lake-hello is missing on the fallback generation", b.log)
        expect(st.get("notes_sha256") == notes, b.name, "/home/alice/notes.txt changed", b.log)
        ent = entries_of(st)
        expect(ent.get(broken) == (0, tries) and ent.get(phantom) == (0, 1), b.name,
               f"the failed entries are not marked bad (want lake-{broken}+0-{tries}.conf and lake-{phantom}+0-1.conf; "
               f"entries {st.get('entries')})", b.log)
        report["fallback"] = {"broken_generation": broken, "tries": attempts, "missing_generation": phantom,
                              "initramfs_failures": initramfs_fails, "booted_generation": gen,
                              "entries": st.get("entries")}
        return
    raise Failure("fallback", f"systemd-boot did not fall back from generations {phantom} and {broken} within {tries + 3} boots")


def step_log(test_img, n):
    """The guest's step log of boot n, read from the LAKETEST image with debugfs."""
    try:
        p = subprocess.run(["debugfs", "-R", f"cat /logs/boot-{n}.log", test_img],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
        return p.stdout
    except OSError:
        return ""


def main(argv):
    ap = argparse.ArgumentParser(prog="e2e-posix")
    ap.add_argument("--image", default=os.path.join(REPO, "images", "minimal.raw"))
    ap.add_argument("--workdir", default=os.path.join(REPO, "images", "e2e-posix"))
    ap.add_argument("--boot-timeout", type=int, default=600)
    ap.add_argument("--tries", type=int, default=3, choices=range(1, 10), metavar="N")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    args.workdir = os.path.abspath(args.workdir)
    for tool in ("mke2fs", "dpkg-deb", "debugfs", "qemu-system-x86_64"):
        if shutil.which(tool) is None:
            say(f"error: {tool} not found (ci/setup.sh installs it)")
            return 2
    if not os.path.isfile(args.image):
        say(f"error: no image {args.image} (build it: target/release/lake-installer build --profile profiles/minimal.toml)")
        return 2
    report = {"result": None, "image": args.image, "workdir": args.workdir, "boots": []}
    t0 = time.monotonic()
    test_img = None
    try:
        disk, test_img, prep = prepare(args)
        report["prepare_s"] = round(prep, 1)
        scenario(args, disk, test_img, report)
        report["result"] = "pass"
    except Failure as f:
        report["result"] = "fail"
        report["failed_step"] = f.step
        report["failure"] = f.message
        report["log"] = f.log
    report["total_s"] = round(time.monotonic() - t0, 1)
    if test_img:
        # The guest's own step logs, for reading after the run.
        dest = os.path.join(args.workdir, "guest-logs")
        os.makedirs(dest, exist_ok=True)
        subprocess.run(["debugfs", "-R", f"rdump /logs {dest}", test_img],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        report["guest_logs"] = os.path.join(dest, "logs")

    # Per-boot timings, then the verdict.
    out = sys.stderr
    out.write(f"{PROG}: boot timings (QEMU start to exit):\n")
    for b in report["boots"]:
        extra = ""
        if b.get("broken_try"):
            extra = f", broken try {b['broken_try']}"
        if b.get("initramfs_failure"):
            extra = ", failed in the initramfs"
        out.write(f"  boot {b['n']:>2}  {b['name']:<20} {b['seconds']:7.1f} s  gen {b['generation']}, "
                  f"guest {b['guest_end']}{extra}\n")
    if report["result"] == "pass":
        fb = report.get("fallback", {})
        out.write(f"{PROG}: PASS in {report['total_s']} s: install, rollback, roll-forward; a missing generation "
                  f"({fb.get('missing_generation')}) failed in the initramfs and rebooted, the broken generation "
                  f"{fb.get('broken_generation')} was tried {fb.get('tries')} times, then systemd-boot fell back to "
                  f"generation {fb.get('booted_generation')}\n")
    else:
        out.write(f"{PROG}: FAIL at step '{report['failed_step']}': {report['failure']}\n")
        if report.get("log"):
            out.write(f"{PROG}: console log: {report['log']}\n")
            m = re.search(r"boot-(\d+)\.log$", report["log"])
            if m and test_img:
                text = step_log(test_img, int(m.group(1)))
                if text:
                    out.write(f"{PROG}: ---- guest step log (logs/boot-{m.group(1)}.log on LAKETEST) ----\n")
                    out.write("\n".join(text.splitlines()[-60:]) + "\n")
                    out.write(f"{PROG}: ---- end ----\n")
        out.write(f"{PROG}: scratch disks and logs kept in {args.workdir}\n")
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    return 0 if report["result"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
