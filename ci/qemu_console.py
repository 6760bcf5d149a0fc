#!/usr/bin/env python3
"""Console watcher for ci/qemu-boot.sh (Python 3 standard library only).

Usage:
  qemu_console.py [options] -- QEMU-COMMAND...

Spawns QEMU (which must send the guest's serial console to stdout, e.g.
-nographic), reads its output as it arrives, timestamps it, strips terminal
escape sequences and carriage returns, tees the cleaned lines to a log file
and decides pass/fail:

  default   pass on the first line `LAKE-BOOT-CHECK {json}` whose JSON shows
            multi_user == "active", root_fstype == "overlay", failed_units == [],
            lake_generation == --expect-generation (number, numeric string,
            or an object with a "generation" or "default" key), and the LAKE
            zone: home_lakefs == true (/home is the lakefs FUSE mount, with
            home_passthrough == true: FUSE passthrough active) with
            home_logged == true (a file written to /home got a version in the
            lake); such a line
            that fails any check is an immediate failure.
  --marker  pass on the first console line matching the regular expression.
  --expect-end reboot|poweroff (repeatable)
            pass when QEMU exits (it runs with -no-reboot) after the guest's
            kernel said "reboot: Restarting system" (reboot) or "reboot: Power
            down" (poweroff) and that end is one of those expected; with
            --marker the marker must have been seen before. LAKE-BOOT-CHECK
            lines are only recorded (a guest that reboots because a unit
            failed is the point of such runs).

It fails early on a kernel panic or systemd emergency mode, fails when QEMU
exits before the verdict, and fails after --timeout seconds. One exception:
a kernel Oops that panics the guest before its init runs is the emulator's,
not the guest's (TCG's multi-threaded mode can let a vCPU run code another
vCPU is patching; seen as "Oops: int3" in sched_clock_cpu while static keys
are switched at boot). No code of ours has run by then, and nothing has been
written to the disks, so the boot is run again, with fresh --fresh-copy
files, up to --early-panic-retries times (default 1); the log keeps both
runs and the report names the retry. Whatever the
outcome, QEMU (run in its own process group, with PR_SET_PDEATHSIG so it dies
with us even on SIGKILL) is killed before exit, and --workdir is removed.

Options:
  --timeout S            seconds from QEMU start to the verdict (default 600)
  --log FILE             console log (required)
  --json                 print one JSON line with the result on stdout
  --expect-generation N  expected lake_generation (default 1)
  --marker REGEX         pass on a console line matching REGEX instead
  --expect-secure-boot   the check line must also say secure_boot == true
  --expect-end END       reboot or poweroff: pass on that end of the guest (see
                         above); repeatable (either end passes)
  --wait-poweroff S      after a pass, give the guest up to S seconds to power
                         off by itself before QEMU is killed (default 0)
  --tail N               console lines shown on failure (default 120)
  --verbose              also echo the cleaned console to stderr, live
  --workdir DIR          directory to delete on exit (OVMF vars copy etc.)
  --fresh-copy SRC DST   copy SRC to DST again before a retried boot (the
                         OVMF variable store); repeatable
  --early-panic-retries N  boots run again after an early Oops (default 1)
  --then CMD             after a pass, with the guest still running (its
                         console still read and logged), run CMD on the host
                         (bash -c; e.g. an ssh into the guest through a
                         forwarded port); a non-zero exit fails the run, and
                         its output (kept in LOG.then) is shown
  --then-timeout S       limit for CMD (default 300)
  --serial-login USER    after a pass (and --then), log in on the serial
                         console as USER: a fresh `login:` prompt, USER, the
                         `Password:` prompt, --serial-password, a shell
                         prompt, then `id -un` and `id -Gn` printed on a
                         marker line; fails on "Login incorrect", on another
                         user, or after --then-timeout. The JSON's
                         "serial_login" says user, groups and seconds
  --serial-password PW   the password typed for --serial-login
  --dialog FILE          after a pass (and the above), a conversation on the
                         serial console: FILE is a JSON list of steps
                         {"send": TEXT, "expect": REGEX, "fail": REGEX,
                         "what": LABEL, "timeout": S}; each sends TEXT (if
                         any; "\r" is Enter) and waits up to S (default 90)
                         for a console line, or an unfinished line such as a
                         prompt, matching REGEX; matching "fail" fails it.
                         All steps within --then-timeout

Exit status: 0 pass, 1 fail or timeout, 2 usage or QEMU could not start,
128+N when interrupted by signal N.
"""

import argparse
import collections
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time

PROG = "qemu-boot"
CHECK_TAG = "LAKE-BOOT-CHECK"

# Terminal escape sequences: CSI (colours, cursor moves), OSC (titles),
# charset selection, and the remaining two-byte ESC sequences.
ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"          # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|\x1b[()*+][0-9A-Za-z@<=>]"        # G0..G3 charset designation
    r"|\x1b[ -/]*[0-~]"                  # other ESC sequences (ESC c, ESC 7, ...)
    r"|\x9b[0-?]*[ -/]*[@-~]"            # 8-bit CSI
)
# Control characters other than TAB (and CR, which is handled separately).
CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

KERNEL_RE = re.compile(r"Linux version \d")
INIT_RE = re.compile(r"Run \S+ as init process|systemd\[1\]: |Welcome to |lake-initramfs")
OOPS_RE = re.compile(r"\bOops: ")
PRINTK_TS_RE = re.compile(r"^\[\s*(\d+\.\d+)\]")
FATAL_PATTERNS = [
    (re.compile(r"Kernel panic - not syncing"), "kernel panic"),
    (re.compile(r"You are in emergency mode"), "systemd emergency mode"),
    (re.compile(r"Cannot open access to console, the root account is locked"),
     "systemd emergency mode (root account locked)"),
    (re.compile(r"Entering emergency mode"), "systemd emergency mode"),
]
# How a guest's kernel announces the end of its run (pr_emerg: shown even with
# `quiet`). With -no-reboot QEMU exits right after either.
END_PATTERNS = [
    (re.compile(r"reboot: Restarting system"), "reboot"),
    (re.compile(r"reboot: Power down"), "poweroff"),
    (re.compile(r"reboot: System halted"), "halt"),
]
PROMPT_TIMEOUT = 90.0    # --serial-login: seconds for each prompt to appear
MAX_PARTIAL = 64 * 1024  # force a line break after this many bytes without one


# -- screendump (QMP) ----------------------------------------------------
def qmp_screendump(sock_path, filename, timeout=30.0):
    """Asks QEMU over its QMP socket for a PPM screendump into `filename`."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        f = s.makefile("rwb")

        def reply():
            # Skip the greeting and asynchronous events; return the answer.
            while True:
                line = f.readline()
                if not line:
                    raise OSError("QMP socket closed")
                msg = json.loads(line)
                if "return" in msg or "error" in msg:
                    return msg
        greeting = json.loads(f.readline() or b"{}")
        if "QMP" not in greeting:
            raise OSError(f"no QMP greeting on {sock_path}")
        for cmd in ({"execute": "qmp_capabilities"},
                    {"execute": "screendump", "arguments": {"filename": filename}}):
            f.write(json.dumps(cmd).encode() + b"\n")
            f.flush()
            msg = reply()
            if "error" in msg:
                raise OSError(f"QMP {cmd['execute']}: {msg['error'].get('desc', msg['error'])}")
    finally:
        s.close()


def read_ppm(path):
    """(width, height, RGB bytes) of a binary P6 PPM with maxval 255 (QEMU's)."""
    with open(path, "rb") as f:
        data = f.read()
    # Header: P6 <ws> width <ws> height <ws> maxval <one ws> pixels; QEMU writes
    # no comments.
    m = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    if not m or int(m.group(3)) != 255:
        raise ValueError(f"{path}: not a P6 PPM with maxval 255")
    w, h = int(m.group(1)), int(m.group(2))
    pixels = data[m.end():m.end() + 3 * w * h]
    if len(pixels) != 3 * w * h:
        raise ValueError(f"{path}: truncated PPM ({len(pixels)} of {3 * w * h} bytes)")
    return w, h, pixels


def distinct_colours(pixels):
    return len({pixels[i:i + 3] for i in range(0, len(pixels), 3)})


def write_png(path, w, h, pixels):
    """8-bit RGB PNG, no filtering (the stdlib has zlib; no imaging library needed)."""
    import struct
    import zlib

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    stride = 3 * w
    raw = b"".join(b"\x00" + pixels[y * stride:(y + 1) * stride] for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


class Interrupted(Exception):
    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def clean(text):
    """Strip escape sequences and control characters; split on CR.

    Returns the list of line fragments worth keeping (a CRLF line gives one
    fragment; a line redrawn with bare CRs gives one fragment per redraw)."""
    text = ANSI_RE.sub("", text)
    text = CTRL_RE.sub("", text)
    parts = [p.rstrip() for p in text.split("\r")]
    parts = [p for p in parts if p.strip()]
    return parts or [""]


def norm_generation(value):
    """Normalise a generation value for comparison; None if unusable."""
    if isinstance(value, dict):
        for key in ("generation", "default"):
            if key in value:
                return norm_generation(value[key])
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, str):
        s = value.strip()
        if re.fullmatch(r"[+-]?\d+", s):
            return str(int(s))
        return s or None
    return None


def evaluate_check(check, expected_generation, secure_boot=False):
    """Return the list of failed checks (empty when the boot check passes)."""
    failures = []
    if not isinstance(check, dict):
        return ["LAKE-BOOT-CHECK payload is not a JSON object"]
    mu = check.get("multi_user")
    if mu != "active":
        failures.append(f"multi_user is {json.dumps(mu)}, expected \"active\"")
    fs = check.get("root_fstype")
    if fs != "overlay":
        failures.append(f"root_fstype is {json.dumps(fs)}, expected \"overlay\""
                        f" (root_source {json.dumps(check.get('root_source'))})")
    if "failed_units" not in check:
        failures.append("failed_units missing")
    else:
        fu = check["failed_units"]
        if not isinstance(fu, list):
            failures.append(f"failed_units is not a list: {json.dumps(fu)}")
        elif fu:
            failures.append(f"failed_units not empty: {json.dumps(fu)}")
    if "lake_generation" not in check:
        failures.append("lake_generation missing")
    else:
        got = norm_generation(check["lake_generation"])
        want = norm_generation(expected_generation)
        if got is None or got != want:
            msg = (f"lake_generation is {json.dumps(check['lake_generation'])},"
                   f" expected {want}")
            if check.get("lake_error") not in (None, "", check["lake_generation"]):
                msg += f" (lake_error {json.dumps(check['lake_error'])})"
            failures.append(msg)
    # --secure-boot runs: the firmware enforced it (the guest's SecureBoot variable).
    if secure_boot and check.get("secure_boot") is not True:
        failures.append(f"secure_boot is {json.dumps(check.get('secure_boot'))}: the guest did not boot with Secure Boot on")
    # The lake is root's only (docs/security.md); null: no /lake on this boot.
    if check.get("lake_private") is False:
        failures.append("lake_private is false: /lake is readable by users other than root")
    # The LAKE zone (lakefs.service): /home is the FUSE view and records history.
    herr = check.get("home_error")
    why = f" (home_error {json.dumps(herr)})" if herr else ""
    if check.get("home_lakefs") is not True:
        failures.append(f"/home is not the lakefs mount: home_fstype {json.dumps(check.get('home_fstype'))},"
                        f" home_source {json.dumps(check.get('home_source'))}{why}")
    elif check.get("home_passthrough") is not True:
        failures.append(f"home_passthrough is {json.dumps(check.get('home_passthrough'))}: /home is served"
                        f" without FUSE passthrough (`lakectl status --json /home`){why}")
    elif check.get("home_logged") is not True:
        failures.append(f"home_logged is {json.dumps(check.get('home_logged'))}: a file written to /home"
                        f" has no version in `lakectl log`{why}")
    return failures


def parse_check(line):
    """Parse the JSON after LAKE-BOOT-CHECK on a cleaned line.

    Returns (found, obj, error): found is False when the line has no tag."""
    idx = line.find(CHECK_TAG)
    if idx < 0:
        return False, None, None
    rest = line[idx + len(CHECK_TAG):]
    brace = rest.find("{")
    if brace < 0 or rest[:brace].strip():
        return False, None, None   # e.g. a unit name or log text, not the payload
    try:
        obj, _end = json.JSONDecoder().raw_decode(rest[brace:])
    except ValueError as exc:
        return True, None, f"{exc}: {rest[brace:brace + 200]!r}"
    return True, obj, None


def set_pdeathsig():
    """In the child: die with SIGKILL when the parent (this script) dies."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # best effort; the process-group kill still applies
        pass


class Watcher:
    def __init__(self, args, qemu_cmd):
        self.args = args
        self.qemu_cmd = qemu_cmd
        self.proc = None
        self.stdin_w = None
        self.t0 = None
        self.tail = collections.deque(maxlen=max(1, args.tail))
        self.log = None
        self.partial = b""
        self.marker_re = re.compile(args.marker) if args.marker else None
        self.expect_end = list(dict.fromkeys(args.expect_end or []))
        self.end = None            # "reboot" | "poweroff" | "halt" once announced
        self.end_t = None
        # results
        self.first_output = None
        self.kernel = None
        self.kernel_start_est = None
        self.init = None
        self.marker = None
        self.marker_line = None
        self.check = None
        self.bad_check = None      # last unparseable LAKE-BOOT-CHECK payload
        self.verdict = None        # "pass" | "fail"
        self.failures = []
        self.qemu_status = None
        self.stderr_path = None
        self.killed = False        # True once we signalled QEMU ourselves
        self.oops = False          # a kernel Oops was printed
        self.early_panic = False   # ... and it panicked the kernel before init ran
        self.retries = []          # why earlier boots of this run were retried
        self.screendump = None     # the --screendump report (dict) once tried
        self.then = None           # the --then report (dict) once run
        self.serial_login = None   # the --serial-login report (dict) once tried
        self.dialog = None         # the --dialog report (dict) once tried
        self.captured = None       # console lines since the last expect(), when capturing

    # -- console ---------------------------------------------------------
    def now(self):
        return time.monotonic() - self.t0

    def emit(self, text, t):
        self.log.write(text + "\n")
        self.tail.append(text)
        if self.captured is not None:
            self.captured.append(text)
        if self.args.verbose:
            sys.stderr.write(f"[{t:8.3f}] {text}\n")

    def feed(self, data, t):
        if self.first_output is None and data:
            self.first_output = t
        buf = self.partial + data
        lines = buf.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_PARTIAL:
            lines.append(self.partial)
            self.partial = b""
        for raw in lines:
            for frag in clean(raw.decode("utf-8", "replace")):
                self.emit(frag, t)
                if self.verdict is None:
                    self.inspect(frag, t)
        self.log.flush()

    def flush_partial(self, t):
        if self.partial:
            data, self.partial = self.partial, b""
            for frag in clean(data.decode("utf-8", "replace")):
                if frag:
                    self.emit(frag, t)
                    if self.verdict is None:
                        self.inspect(frag, t)
            self.log.flush()

    def peek_partial(self):
        """A marker in output that has not ended its line after a quiet second:
        firmware dialogs (shim's "Security Violation" box) wait for a key."""
        if self.marker_re and self.partial and self.verdict is None:
            if any(self.marker_re.search(f) for f in clean(self.partial.decode("utf-8", "replace"))):
                self.flush_partial(self.now())

    def inspect(self, line, t):
        if self.kernel is None and KERNEL_RE.search(line):
            self.kernel = t
        if self.init is None and INIT_RE.search(line):
            self.init = t
        m = PRINTK_TS_RE.match(line)
        if m:
            est = t - float(m.group(1))
            if self.kernel_start_est is None or est < self.kernel_start_est:
                self.kernel_start_est = est
        for rx, what in END_PATTERNS:
            if self.end is None and rx.search(line):
                self.end, self.end_t = what, t
        found, obj, err = parse_check(line)
        if found:
            if err is not None:
                self.bad_check = err
            elif self.expect_end:
                self.check = obj   # informational: the end of the run decides
            elif self.marker_re is None:
                self.check = obj
                self.marker = t
                self.marker_line = line
                self.failures = evaluate_check(obj, self.args.expect_generation, self.args.expect_secure_boot)
                self.verdict = "fail" if self.failures else "pass"
                return
            elif self.check is None:
                self.check = obj   # informational in --marker mode
        if self.marker_re is not None and self.marker is None and self.marker_re.search(line):
            self.marker = t
            self.marker_line = line
            if not self.expect_end:
                self.verdict = "pass"
                return
        if OOPS_RE.search(line):
            self.oops = True
        for rx, what in FATAL_PATTERNS:
            if rx.search(line):
                self.early_panic = what == "kernel panic" and self.oops and self.init is None
                self.verdict = "fail"
                self.failures = [f"{what} on the console: {line.strip()[:200]}"]
                return

    # -- QEMU process ----------------------------------------------------
    def start(self):
        stderr_dir = self.args.workdir or os.path.dirname(os.path.abspath(self.args.log))
        self.stderr_path = os.path.join(stderr_dir, f".qemu-stderr.{os.getpid()}")
        stderr_f = open(self.stderr_path, "wb")
        stdin_r, self.stdin_w = os.pipe()   # the serial console's input (--serial-login); held open
        self.t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.qemu_cmd, stdin=stdin_r, stdout=subprocess.PIPE,
                stderr=stderr_f, start_new_session=True,
                preexec_fn=set_pdeathsig, bufsize=0)
        finally:
            os.close(stdin_r)
            stderr_f.close()

    def kill(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            self.killed = True
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group (QEMU itself if SIGTERM did not do it).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self.qemu_status is None:
            self.qemu_status = p.returncode
        if self.stdin_w is not None:
            try:
                os.close(self.stdin_w)
            except OSError:
                pass
            self.stdin_w = None

    def qemu_stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""
        # Drop QEMU's note about the SIGTERM we sent it ourselves.
        lines = [l for l in text.splitlines()
                 if not (self.killed and "terminating on signal" in l)]
        return "\n".join(lines).strip()

    def run(self):
        self.start()
        fd = self.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        deadline = self.args.timeout
        eof = False
        while self.verdict is None:
            remaining = deadline - self.now()
            if remaining <= 0:
                self.flush_partial(self.now())
                if self.verdict is None:
                    self.verdict = "fail"
                    self.failures = [self.timeout_reason()]
                break
            if not sel.select(min(remaining, 1.0)):
                self.peek_partial()
                continue
            data = os.read(fd, 65536)
            t = self.now()
            if not data:
                eof = True
                self.flush_partial(t)
                break
            self.feed(data, t)
        if eof and self.verdict is None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.qemu_status = self.proc.returncode
            self.failures = self.judge_end() if self.expect_end else [self.exit_reason()]
            self.verdict = "fail" if self.failures else "pass"
        self.total = self.now()
        if self.verdict == "pass" and self.args.screendump and not eof:
            self.take_screendump(sel, fd)
        if self.verdict == "pass" and self.args.then and not eof:
            self.run_then(sel, fd)
        if self.verdict == "pass" and self.args.serial_login and not eof:
            self.login_on_serial(sel, fd)
        if self.verdict == "pass" and self.args.dialog and not eof:
            self.run_dialog(sel, fd)
        if self.verdict == "pass" and self.args.wait_poweroff > 0 and not eof:
            # Let the guest shut down cleanly (disk state matters to a later
            # boot), logging what it prints meanwhile.
            end = self.now() + self.args.wait_poweroff
            while self.now() < end:
                if not sel.select(min(end - self.now(), 1.0)):
                    continue
                data = os.read(fd, 65536)
                if not data:
                    break
                self.feed(data, self.now())
            self.flush_partial(self.now())
            try:
                self.proc.wait(timeout=max(0.1, end - self.now()))
            except subprocess.TimeoutExpired:
                pass
        sel.close()

    def take_screendump(self, sel, fd):
        """After the boot check passed: screendumps every few seconds (the
        console still read and logged) until the screen has at least
        --min-colours distinct colours (the display manager has drawn its
        login screen; a text console or a blank screen has a handful), then
        saves it as PNG. Not reaching that in --screendump-timeout fails the run."""
        a = self.args
        ppm = os.path.join(a.workdir or os.path.dirname(os.path.abspath(a.screendump)), "screen.ppm")
        start = self.now()
        end = start + a.screendump_timeout
        rep = {"file": os.path.abspath(a.screendump), "min_colours": a.min_colours,
               "colours": None, "width": None, "height": None, "wait_s": None,
               "tries": 0, "error": None}
        self.screendump = rep
        next_try = self.now() + a.screendump_delay
        good_since = None
        while self.now() < end:
            if self.now() >= next_try:
                next_try = self.now() + 5.0
                rep["tries"] += 1
                try:
                    qmp_screendump(a.qmp, ppm)
                    w, h, px = read_ppm(ppm)
                    rep.update(width=w, height=h, colours=distinct_colours(px), error=None)
                except (OSError, ValueError) as exc:
                    rep["error"] = str(exc)
                    continue
                if rep["colours"] >= a.min_colours:
                    # Take the one after the first good one: the greeter may
                    # still be drawing its widgets.
                    if good_since is not None:
                        write_png(a.screendump, w, h, px)
                        rep["wait_s"] = round(self.now() - start, 3)
                        return
                    good_since = self.now()
            if not sel.select(1.0):
                self.peek_partial()
                continue
            data = os.read(fd, 65536)
            if not data:
                rep["error"] = "QEMU exited before the screen showed a login"
                break
            self.feed(data, self.now())
        self.verdict = "fail"
        self.failures = [f"screendump: the screen did not reach {a.min_colours} distinct colours "
                         f"in {a.screendump_timeout:g}s (last: {rep['colours']} colours"
                         + (f"; {rep['error']}" if rep["error"] else "") + ")"]

    def pump(self, sel, fd, wait=1.0):
        """Reads and logs what the console printed within `wait` seconds;
        False once QEMU has closed it."""
        if not sel.select(wait):
            return True
        data = os.read(fd, 65536)
        if not data:
            return False
        self.feed(data, self.now())
        return True

    def run_then(self, sel, fd):
        """--then: a host command against the running guest. The console is
        read meanwhile (a full pipe would stall the guest)."""
        a = self.args
        out_path = os.path.abspath(a.log) + ".then"
        rep = {"command": a.then, "status": None, "seconds": None, "output": out_path}
        self.then = rep
        start = self.now()
        with open(out_path, "wb") as out:
            p = subprocess.Popen(["bash", "-c", a.then], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            alive = True
            while p.poll() is None and self.now() - start < a.then_timeout:
                alive = self.pump(sel, fd, 0.5) and alive
                if not alive:
                    time.sleep(0.5)
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
                why = f"--then did not finish within {a.then_timeout:g}s"
            else:
                why = None if p.returncode == 0 else f"--then exited with status {p.returncode}"
        rep["status"] = p.returncode
        rep["seconds"] = round(self.now() - start, 3)
        if why:
            try:
                with open(out_path, "rb") as f:
                    tail = f.read().decode("utf-8", "replace").strip().splitlines()[-40:]
            except OSError:
                tail = []
            self.verdict = "fail"
            self.failures = [f"{why}: {a.then}"] + [f"  | {l}" for l in tail]

    def expect(self, sel, fd, rx, deadline):
        """Reads the console until `rx` matches a line printed since the last
        call or the unfinished line (a prompt); the match, or None at the
        deadline or when QEMU closes the console."""
        if self.captured is None:
            self.captured = []
        while True:
            while self.captured:
                m = rx.search(self.captured.pop(0))
                if m:
                    return m
            if self.partial:
                for frag in clean(self.partial.decode("utf-8", "replace")):
                    m = rx.search(frag)
                    if m:
                        # The prompt is consumed: log it as its own line.
                        self.flush_partial(self.now())
                        self.captured = []
                        return m
            if self.now() >= deadline or not self.pump(sel, fd, min(1.0, max(0.05, deadline - self.now()))):
                return None

    def send(self, text):
        os.write(self.stdin_w, text.encode())

    def converse(self, sel, fd, steps, deadline):
        """Types on the serial console and waits for the answer, step by
        step: each step is (text to send or "", regex to wait for, regex that
        fails the step or None, what is awaited, seconds or None). Returns
        (None, last match) or (error, None)."""
        start = self.now()
        last = None
        for i, (text, rx, bad, what, secs) in enumerate(steps, 1):
            if text:
                self.send(text)
            # Each prompt comes within seconds when all is well (a missing
            # /bin/login shows as no Password: prompt at all).
            t = self.now()
            step_end = min(deadline, t + (secs or PROMPT_TIMEOUT))
            both = re.compile(rx.pattern + ("|" + bad.pattern if bad else ""))
            m = self.expect(sel, fd, both, step_end)
            if m is None:
                return (f"step {i}: no {what} within {step_end - t:.0f}s"
                        f" ({self.now() - start:.0f}s into the conversation)", None)
            if bad and bad.search(m.group(0)):
                return (f"step {i}: {m.string.strip()[:200]!r} instead of {what}", None)
            last = rx.search(m.group(0))
        return (None, last)

    def run_dialog(self, sel, fd):
        """--dialog FILE: a JSON list of {"send", "expect", "fail", "what",
        "timeout"} steps typed and awaited on the serial console after the
        pass (an installer's questions)."""
        a = self.args
        start = self.now()
        rep = {"file": os.path.abspath(a.dialog), "steps": None, "seconds": None, "error": None}
        self.dialog = rep
        try:
            raw = json.load(open(a.dialog, encoding="utf-8"))
            steps = [(st.get("send", ""), re.compile(st["expect"]),
                      re.compile(st["fail"]) if st.get("fail") else None,
                      st.get("what") or f"console line matching {st['expect']!r}", st.get("timeout"))
                     for st in raw]
        except (OSError, ValueError, KeyError, TypeError, re.error) as exc:
            steps, rep["error"] = None, f"cannot read the dialog {a.dialog}: {exc}"
        if steps is not None:
            rep["steps"] = len(steps)
            rep["error"], _ = self.converse(sel, fd, steps, start + a.then_timeout)
        self.captured = None
        rep["seconds"] = round(self.now() - start, 3)
        if rep["error"]:
            self.verdict = "fail"
            self.failures = [f"dialog {a.dialog}: {rep['error']}"]

    def login_on_serial(self, sel, fd):
        """--serial-login: what a person at the serial console does. Types
        the user name at a fresh `login:` prompt, the password at
        `Password:`, then a command whose expanded output (not its echo)
        is the marker line."""
        a = self.args
        start = self.now()
        rep = {"user": a.serial_login, "groups": None, "seconds": None, "error": None}
        self.serial_login = rep
        bad = re.compile(r"Login incorrect|Authentication failure|Permission denied")
        # $((6*7)) is expanded by the shell only: the echoed command line never matches.
        check = 'echo LAKE-SERIAL-LOGIN "$(id -un)" "$(id -Gn | tr \' \' ,)" $((6*7))\r'
        steps = [("\r", re.compile(r"login:\s*$"), None, "login: prompt", None),
                 (a.serial_login + "\r", re.compile(r"Password:\s*$"), None, "Password: prompt", None),
                 (a.serial_password + "\r", re.compile(r"[$#] ?$"), bad, "shell prompt", None),
                 (check, re.compile(r"LAKE-SERIAL-LOGIN (\S+) (\S+) 42"), None, "output of the check command", None)]
        rep["error"], m = self.converse(sel, fd, steps, start + a.then_timeout)
        if m is not None:
            rep["groups"] = m.group(2).split(",")
            if m.group(1) != a.serial_login:
                rep["error"] = f"logged in as {m.group(1)}, not {a.serial_login}"
            else:
                self.send("exit\r")
        self.captured = None
        rep["seconds"] = round(self.now() - start, 3)
        if rep["error"]:
            self.verdict = "fail"
            self.failures = [f"serial-console login as {a.serial_login}: {rep['error']}"]

    def stage_summary(self):
        seen = []
        if self.first_output is not None:
            seen.append(f"first console output at {self.first_output:.1f}s")
        if self.kernel is not None:
            seen.append(f"kernel at {self.kernel:.1f}s")
        if self.init is not None:
            seen.append(f"init at {self.init:.1f}s")
        return ", ".join(seen) if seen else "no console output at all"

    def judge_end(self):
        """Failures of an --expect-end run whose QEMU has exited (none: pass)."""
        want = " or ".join(self.expect_end)
        if self.end is None:
            return [self.exit_reason() + f"; the guest did not announce a {want}"]
        if self.end not in self.expect_end:
            return [f"the guest ended with a {self.end} at {self.end_t:.1f}s, expected a {want}"
                    f" ({self.stage_summary()})"]
        if self.marker_re is not None and self.marker is None:
            return [f"the guest ended with a {self.end} at {self.end_t:.1f}s without a console line"
                    f" matching --marker {self.args.marker!r}"]
        return []

    def what(self):
        if self.expect_end:
            return " or ".join(self.expect_end) + " of the guest"
        if self.marker_re is not None:
            return f"a console line matching --marker {self.args.marker!r}"
        return f"{CHECK_TAG} line"

    def timeout_reason(self):
        r = f"timeout: no {self.what()} within {self.args.timeout:g}s ({self.stage_summary()})"
        if self.bad_check:
            r += f"; a {CHECK_TAG} line was seen but its JSON did not parse: {self.bad_check}"
        return r

    def exit_reason(self):
        st = self.qemu_status
        how = "still running" if st is None else (
            f"killed by signal {-st}" if st < 0 else f"exit status {st}")
        r = (f"QEMU exited ({how}) after {self.now():.1f}s before {self.what()}"
             f" ({self.stage_summary()})")
        if self.bad_check:
            r += f"; a {CHECK_TAG} line was seen but its JSON did not parse: {self.bad_check}"
        return r

    # -- reporting -------------------------------------------------------
    def result(self):
        r = lambda v: None if v is None else round(v, 3)
        mode = ("expect-end" if self.expect_end else
                "marker" if self.marker_re is not None else "lake-boot-check")
        res = {
            "result": self.verdict,
            "mode": mode,
            "first_output_s": r(self.first_output),
            "kernel_s": r(self.kernel),
            "kernel_start_est_s": r(self.kernel_start_est),
            "init_s": r(self.init),
            "marker_s": r(self.marker),
            "guest_uptime_s": None,
            "total_s": r(getattr(self, "total", None)),
            "timeout_s": self.args.timeout,
            "expected_generation": (norm_generation(self.args.expect_generation)
                                    if mode == "lake-boot-check" else None),
            "expected_end": self.expect_end or None,
            "guest_end": self.end,
            "end_s": r(self.end_t),
            "marker": self.args.marker,
            "marker_line": self.marker_line,
            "check": self.check,
            "failures": self.failures,
            "log": os.path.abspath(self.args.log),
            "retries": self.retries,
            "screendump": self.screendump,
            "then": self.then,
            "serial_login": self.serial_login,
            "dialog": self.dialog,
        }
        if isinstance(self.check, dict):
            up = self.check.get("uptime_s")
            if isinstance(up, (int, float)) and not isinstance(up, bool):
                res["guest_uptime_s"] = up
            elif isinstance(up, str):
                try:
                    res["guest_uptime_s"] = float(up)
                except ValueError:
                    pass
        return res

    def report(self):
        res = self.result()
        log = res["log"]
        fmt = lambda v, unit="s": "n/a" if v is None else f"{v:.2f} {unit}"
        if self.verdict == "pass":
            if not self.args.json:
                out = sys.stdout
                if res["mode"] == "expect-end":
                    out.write(f"{PROG}: PASS: the guest ended with a {self.end}"
                              f" (expected: {' or '.join(self.expect_end)})\n")
                elif res["mode"] == "marker":
                    out.write(f"{PROG}: PASS: marker {self.args.marker!r} matched: "
                              f"{self.marker_line.strip()[:200]}\n")
                else:
                    c = self.check
                    out.write(f"{PROG}: PASS: {CHECK_TAG} multi_user={c.get('multi_user')} "
                              f"root_fstype={c.get('root_fstype')} "
                              f"root_source={c.get('root_source')} "
                              f"lake_generation={json.dumps(c.get('lake_generation'))} "
                              f"failed_units={json.dumps(c.get('failed_units'))} "
                              f"home_fstype={c.get('home_fstype')} home_source={c.get('home_source')} "
                              f"home_commit={c.get('home_commit')} "
                              f"home_versions={c.get('home_versions')}\n")
                rows = [("first console output", res["first_output_s"], ""),
                        ("kernel (Linux version)", res["kernel_s"],
                         "" if res["kernel_start_est_s"] is None else
                         f"   (kernel start from printk times: {fmt(res['kernel_start_est_s'])})"),
                        ("marker line" if self.marker_re is not None else "multi-user marker",
                         res["marker_s"], "")]
                if res["mode"] == "expect-end":
                    if self.marker_re is None:
                        rows.pop()
                    rows.append((f"guest {self.end}", res["end_s"], ""))
                for label, value, note in rows:
                    out.write(f"  QEMU start -> {label:<22} {fmt(value)}{note}\n")
                if res["mode"] == "lake-boot-check":
                    out.write(f"  {'guest uptime_s':<36} {fmt(res['guest_uptime_s'])}\n")
                for why in self.retries:
                    out.write(f"  retried: {why}\n")
                if self.then:
                    out.write(f"  --then: exit {self.then['status']} after {self.then['seconds']}s"
                              f" (output: {self.then['output']})\n")
                if self.serial_login:
                    d = self.serial_login
                    out.write(f"  serial-console login: {d['user']} (groups {','.join(d['groups'] or [])})"
                              f" in {d['seconds']}s\n")
                if self.dialog:
                    out.write(f"  dialog: {self.dialog['steps']} steps in {self.dialog['seconds']}s\n")
                if self.screendump:
                    d = self.screendump
                    out.write(f"  screendump: {d['file']} ({d['width']}x{d['height']}, "
                              f"{d['colours']} colours, {d['wait_s']}s after the check)\n")
                out.write(f"  console log: {log}\n")
        else:
            err = sys.stderr
            n = len(self.tail)
            err.write(f"{PROG}: ---- last {n} console lines (full log: {log}) ----\n")
            for line in self.tail:
                err.write(line + "\n")
            err.write(f"{PROG}: ---- end of console ----\n")
            qerr = self.qemu_stderr()
            if qerr:
                err.write(f"{PROG}: QEMU stderr:\n{qerr}\n")
            for f in self.failures:
                err.write(f"{PROG}: FAIL: {f}\n")
            err.write(f"{PROG}: console log: {log}\n")
        if self.args.json:
            sys.stdout.write(json.dumps(res, sort_keys=False) + "\n")
        sys.stdout.flush()
        sys.stderr.flush()


def main(argv):
    ap = argparse.ArgumentParser(prog="qemu_console.py", add_help=True,
                                 description="Run QEMU and judge its serial console.")
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--expect-generation", default="1")
    ap.add_argument("--marker")
    ap.add_argument("--expect-secure-boot", action="store_true")
    ap.add_argument("--expect-end", action="append", choices=["reboot", "poweroff"])
    ap.add_argument("--wait-poweroff", type=float, default=0.0)
    ap.add_argument("--tail", type=int, default=120)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--workdir")
    ap.add_argument("--fresh-copy", nargs=2, action="append", default=[], metavar=("SRC", "DST"))
    ap.add_argument("--early-panic-retries", type=int, default=1)
    ap.add_argument("--qmp", help="QEMU's QMP unix socket (for --screendump)")
    ap.add_argument("--screendump", metavar="PNG")
    ap.add_argument("--screendump-timeout", type=float, default=300.0)
    ap.add_argument("--screendump-delay", type=float, default=5.0)
    ap.add_argument("--min-colours", type=int, default=64)
    ap.add_argument("--then", metavar="CMD")
    ap.add_argument("--then-timeout", type=float, default=300.0)
    ap.add_argument("--serial-login", metavar="USER")
    ap.add_argument("--serial-password", metavar="PW", default="")
    ap.add_argument("--dialog", metavar="FILE")
    ap.add_argument("qemu", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.qemu[1:] if args.qemu[:1] == ["--"] else args.qemu
    if not cmd:
        ap.error("no QEMU command given (after --)")
    if args.screendump and not args.qmp:
        ap.error("--screendump needs --qmp")
    if (args.then or args.serial_login or args.dialog) and args.expect_end:
        ap.error("--then, --serial-login and --dialog need a running guest: not with --expect-end")
    if args.marker:
        try:
            re.compile(args.marker)
        except re.error as exc:
            ap.error(f"bad --marker regex: {exc}")

    def on_signal(signum, _frame):
        raise Interrupted(signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    w = Watcher(args, cmd)
    status = 2
    try:
        os.makedirs(os.path.dirname(os.path.abspath(args.log)), exist_ok=True)
        w.log = open(args.log, "w", encoding="utf-8", errors="replace")
        retries = []
        while True:
            try:
                w.run()
            except FileNotFoundError as exc:
                sys.stderr.write(f"{PROG}: cannot start QEMU: {exc}\n")
                return 2
            w.kill()
            if not (w.verdict == "fail" and w.early_panic and len(retries) < args.early_panic_retries):
                break
            # See the module doc: an Oops before init is TCG's, and the disks
            # are as they were; boot again with a fresh firmware variable store.
            why = (f"the kernel panicked before init at {w.now():.1f}s "
                   f"({w.failures[0][:160]}); an emulator fault, booted again")
            retries.append(why)
            sys.stderr.write(f"{PROG}: {why}\n")
            w.log.write(f"{PROG}: {why}\n{PROG}: ---- boot {len(retries) + 1} ----\n")
            log = w.log
            for src, dst in args.fresh_copy:
                shutil.copyfile(src, dst)
            w = Watcher(args, cmd)
            w.log = log
        w.retries = retries
        if w.verdict is None:
            w.verdict = "fail"
        status = 0 if w.verdict == "pass" else 1
        w.log.write(f"{PROG}: verdict {w.verdict}"
                    + "".join(f"; {f}" for f in w.failures) + "\n")
        qerr = w.qemu_stderr()
        if qerr:
            w.log.write(f"{PROG}: QEMU stderr:\n{qerr}\n")
        w.log.flush()
        try:
            w.report()
        except BrokenPipeError:   # e.g. piped into `head`; the status still counts
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except OSError:
                pass
        return status
    except Interrupted as exc:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        w.kill()
        sys.stderr.write(f"{PROG}: interrupted by signal {exc.signum}; QEMU stopped"
                         + (f"; console log: {os.path.abspath(args.log)}\n" if w.log else "\n"))
        return 128 + exc.signum
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        w.kill()
        if w.log is not None:
            try:
                w.log.close()
            except OSError:
                pass
        if w.stderr_path:
            try:
                os.unlink(w.stderr_path)
            except OSError:
                pass
        if args.workdir:
            shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
