#!/usr/bin/env python3
"""Boot runs and report for ci/bench-boot.sh (Python 3 standard library only).

Usage:
  bench_boot.py --harness ci/qemu-boot.sh --lake IMG --plain IMG --out OUT.json
                [--runs N] [--timeout S] [--logs DIR] [--info KEY=VALUE ...]

Boots the two images in turn N times each (run n: lake then plain for odd n,
plain then lake for even n)
through the harness (--json --snapshot --marker 'LAKE-BOOT-CHECK', default
QEMU settings), records per run the times from QEMU start to the kernel's
"Linux version" line and to the LAKE-BOOT-CHECK line, the guest's uptime_s
at that line and the CPU that other host processes used meanwhile, then
prints a table and writes OUT.json: runs, medians per image, ratios
lake/plain, image sizes (apparent and `du -B1` allocated), targets, notes.
--info KEY=VALUE (dotted KEY, VALUE parsed as JSON when it is a number,
true/false or a list, else kept as a string) adds facts from the caller to
the report: top-level keys go to "meta", lake.* and plain.* to "images".

Exit status: 0 all boots passed; 1 a boot failed; 2 usage error.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

MARKER = "LAKE-BOOT-CHECK"
RATIO_TARGET = 1.10
METRICS = [  # key in the harness JSON, label
    ("kernel_s", "QEMU start -> kernel"),
    ("marker_s", "QEMU start -> marker"),
    ("guest_uptime_s", "guest uptime_s at marker"),
]
EXPECT_FSTYPE = {"lake": "overlay", "plain": "ext4"}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_busy_s():
    """Host CPU seconds spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    v = [int(x) for x in fields[1:]]
    # user nice system idle iowait irq softirq steal [guest guest_nice]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sizes(path):
    apparent = os.stat(path).st_size
    out = subprocess.run(["du", "-B1", path], check=True, capture_output=True, text=True).stdout
    return apparent, int(out.split()[0])


def allocated_between(path, start, end):
    """Bytes of data (not holes) in [start, end) of a sparse file."""
    total, off = 0, start
    fd = os.open(path, os.O_RDONLY)
    try:
        while off < end:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:   # ENXIO: no data after off
                break
            if d >= end:
                break
            h = min(os.lseek(fd, d, os.SEEK_HOLE), end)
            total += h - d
            off = h
    finally:
        os.close(fd)
    return total


def regions(img, sector):
    """Allocated bytes per region: before the ESP, ESP, root/lake partition, after."""
    esp, root = img.get("esp_sectors"), img.get("root_sectors")
    if not (isinstance(esp, list) and isinstance(root, list)):
        return None
    cuts = [("gpt_and_gap", 0, esp[0] * sector), ("esp", esp[0] * sector, (esp[1] + 1) * sector),
            ("root_partition", root[0] * sector, (root[1] + 1) * sector),
            ("tail", (root[1] + 1) * sector, img["apparent_bytes"])]
    return {name: allocated_between(img["path"], a, b) for name, a, b in cuts}


def typed(value):
    if re.fullmatch(r"-?\d+(\.\d+)?|true|false|\[.*\]", value):
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def put(d, dotted, value):
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def one_boot(args, label, image, n, snapshot):
    log = os.path.join(args.logs, f"{label}-{n}.log")
    cmd = [args.harness, "--json", "--marker", MARKER, "--timeout", str(args.timeout),
           "--log", log]
    if snapshot:
        cmd.append("--snapshot")
    cmd.append(image)
    la = loadavg()
    busy0, kids0, t0 = cpu_busy_s(), children_cpu_s(), time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr passes through
    wall = time.monotonic() - t0
    busy = cpu_busy_s() - busy0
    ours = children_cpu_s() - kids0       # QEMU + the console watcher
    res = None
    for line in reversed(p.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                res = json.loads(line)
                break
            except ValueError:
                pass
    run = {"image": label, "run": n, "exit_status": p.returncode,
           "result": (res or {}).get("result", "fail"),
           "loadavg_before": la,
           "wall_s": round(wall, 3),
           "qemu_cpu_s": round(ours, 1),
           "other_cpu_cores": (round(min(os.cpu_count() or 1, max(0.0, busy - ours) / wall), 2)
                               if wall > 0 else None)}
    if res:
        for k in ("first_output_s", "kernel_s", "kernel_start_est_s", "init_s", "marker_s",
                  "guest_uptime_s"):
            run[k] = res.get(k)
        c = res.get("check") if isinstance(res.get("check"), dict) else {}
        for k in ("root_fstype", "root_source", "multi_user", "lake_generation",
                  "lake_error", "failed_units"):
            run[k] = c.get(k)
        run["marker_line_is_check"] = bool(res.get("marker_line")) and \
            res["marker_line"].lstrip().startswith(MARKER + " {")
        run["failures"] = res.get("failures") or []
        run["log"] = res.get("log") or log
    else:
        run["failures"] = [f"no JSON result from the harness (exit status {p.returncode})"]
        run["log"] = log
    return run


def fmt(v, unit=" s"):
    return "n/a" if v is None else f"{v:.2f}{unit}"


def main(argv):
    ap = argparse.ArgumentParser(prog="bench_boot.py")
    ap.add_argument("--harness", required=True)
    ap.add_argument("--lake", required=True)
    ap.add_argument("--plain", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--timeout", default="600")
    ap.add_argument("--logs")
    ap.add_argument("--info", action="append", default=[])
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    args.logs = args.logs or os.path.join(os.path.dirname(os.path.abspath(args.out)), "boot-logs")
    os.makedirs(args.logs, exist_ok=True)

    info = {}
    for kv in args.info:
        if "=" not in kv:
            ap.error(f"--info needs KEY=VALUE: {kv}")
        k, v = kv.split("=", 1)
        put(info, k, typed(v))
    images = {"lake": dict(info.pop("lake", {})), "plain": dict(info.pop("plain", {}))}
    images["lake"]["path"] = os.path.abspath(args.lake)
    images["plain"]["path"] = os.path.abspath(args.plain)

    helptext = subprocess.run([args.harness, "--help"], capture_output=True, text=True).stdout
    snapshot = "--snapshot" in helptext
    notes = []
    if not snapshot:
        notes.append("the harness has no --snapshot: the boots wrote to the images")

    # Sizes first (the boots run with -snapshot and do not change them).
    for label, img in images.items():
        img["apparent_bytes"], img["allocated_bytes"] = sizes(img["path"])
        img["allocated_by_region"] = regions(img, int(info.get("sector_size", 512)))

    started = time.time()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "nproc": os.cpu_count(),
        "harness": f"{os.path.relpath(args.harness)} --json --marker {MARKER!r} --timeout {args.timeout}"
                   + (" --snapshot" if snapshot else "")
                   + " (defaults: q35 accel=tcg, OVMF, 2048 MiB, 2 vCPUs, virtio disk/NIC/RNG)",
        "runs_per_image": args.runs,
        "order": "rotated: run n boots lake then plain for odd n, plain then lake for even n",
    }
    meta.update(info)
    meta.setdefault("loadavg_start", loadavg())

    runs = []
    total = 2 * args.runs
    for n in range(1, args.runs + 1):
        # Rotate which image goes first, so neither always follows the other.
        for label in (("lake", "plain") if n % 2 else ("plain", "lake")):
            i = len(runs) + 1
            sys.stderr.write(f"==> boot {i}/{total}: {label} run {n} (load average {loadavg()})\n")
            sys.stderr.flush()
            r = one_boot(args, label, images[label]["path"], n, snapshot)
            runs.append(r)
            if r["result"] == "pass":
                sys.stderr.write(
                    f"    kernel {fmt(r.get('kernel_s'))}, marker {fmt(r.get('marker_s'))}, "
                    f"guest uptime {fmt(r.get('guest_uptime_s'))}, root {r.get('root_fstype')}, "
                    f"other processes {r['other_cpu_cores']} cores\n")
            else:
                sys.stderr.write(f"    FAILED: {'; '.join(r['failures'])} (log {r['log']})\n")
    meta["loadavg_end"] = loadavg()
    meta["total_run_s"] = round(time.time() - started, 1)

    # Oddities worth a note.
    for r in runs:
        tag = f"{r['image']} run {r['run']}"
        if r["result"] != "pass":
            notes.append(f"{tag} failed: {'; '.join(r['failures'])}")
            continue
        if not r.get("marker_line_is_check"):
            notes.append(f"{tag}: the marker matched a line that is not the check line")
        if r.get("guest_uptime_s") is None:
            notes.append(f"{tag}: no uptime_s in the check line")
        want = EXPECT_FSTYPE[r["image"]]
        if r.get("root_fstype") != want:
            notes.append(f"{tag}: root_fstype {r.get('root_fstype')!r}, expected {want!r}"
                         f" (root_source {r.get('root_source')!r})")
        if r.get("failed_units"):
            notes.append(f"{tag}: failed units {r['failed_units']}")
        if r["image"] == "lake" and str(r.get("lake_generation")) != "1":
            notes.append(f"{tag}: lake_generation {r.get('lake_generation')!r}")
    if images["lake"].get("journal_needs_recovery") is True:
        notes.append("the lake partition of the lake image has a dirty ext4 journal (needs_recovery: "
                     "its last boot was not shut down cleanly); every --snapshot boot replays it "
                     "(e2fsck -p in lake-initramfs), and its journal blocks count in its allocated size")
    for label in ("kernel", "initrd"):
        if images["plain"].get(f"same_{label}_as_lake") is False:
            notes.append(f"the plain image's {label} differs from the one the lake image boots")

    medians = {}
    for label in ("lake", "plain"):
        ok = [r for r in runs if r["image"] == label and r["result"] == "pass"]
        m = {"n": len(ok)}
        for key, _ in METRICS + [("other_cpu_cores", "")]:
            vals = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
            m[key] = round(statistics.median(vals), 3) if vals else None
        medians[label] = m

    def ratio(key):
        a, b = medians["lake"].get(key), medians["plain"].get(key)
        return round(a / b, 3) if a is not None and b else None

    ratios = {key: ratio(key) for key, _ in METRICS}
    la_start = meta["loadavg_start"]
    try:
        load1 = float(str(la_start).split()[0])
    except (ValueError, IndexError):
        load1 = None
    high_load = load1 is not None and load1 >= 0.5 * (os.cpu_count() or 1)
    other_max = max((r.get("other_cpu_cores") or 0 for r in runs), default=0)
    if high_load:
        notes.append(f"load average at start {la_start} on {os.cpu_count()} CPUs: the host was busy "
                     f"(another job?); TCG boots are CPU-bound, times are inflated/noisy")
    if other_max >= 0.25:
        notes.append(f"other host processes used up to {other_max} CPU cores during a boot "
                     f"(per run: other_cpu_cores); the guest runs 2 vCPUs under TCG on "
                     f"{os.cpu_count()} cores, so this competes with it")
    targets = {
        "ratio_max": RATIO_TARGET,
        "marker_ratio_ok": None if ratios["marker_s"] is None else ratios["marker_s"] <= RATIO_TARGET,
        "uptime_ratio_ok": None if ratios["guest_uptime_s"] is None
        else ratios["guest_uptime_s"] <= RATIO_TARGET,
        "lake_allocated_le_plain": images["lake"]["allocated_bytes"] <= images["plain"]["allocated_bytes"],
        "lake_apparent_le_plain": images["lake"]["apparent_bytes"] <= images["plain"]["apparent_bytes"],
    }
    report = {"meta": meta, "images": images, "runs": runs, "medians": medians,
              "ratios_lake_over_plain": ratios, "targets": targets, "notes": notes}
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)

    # ---- table ----
    out = sys.stdout
    out.write(f"\nBoot benchmark: lake ({images['lake']['path']}) vs plain ext4 "
              f"({images['plain']['path']}), {args.runs} run(s) each, alternating\n")
    out.write(f"note: load average at start {la_start} ({os.cpu_count()} CPUs)"
              + (f"; busiest processes then: {meta['top_cpu_start']}" if meta.get("top_cpu_start") else "")
              + (" -- HIGH" if high_load else "") + f"; at end {meta['loadavg_end']}\n\n")
    hdr = f"{'image':<6} {'run':>3} {'kernel':>9} {'marker':>9} {'uptime':>9} {'root':>8} {'other CPU':>10}  result\n"
    out.write(hdr)
    for r in runs:
        out.write(f"{r['image']:<6} {r['run']:>3} {fmt(r.get('kernel_s')):>9} {fmt(r.get('marker_s')):>9} "
                  f"{fmt(r.get('guest_uptime_s')):>9} {str(r.get('root_fstype')):>8} "
                  f"{fmt(r.get('other_cpu_cores'), ''):>10}  {r['result']}\n")
    for label in ("lake", "plain"):
        m = medians[label]
        out.write(f"{label:<6} {'med':>3} {fmt(m['kernel_s']):>9} {fmt(m['marker_s']):>9} "
                  f"{fmt(m['guest_uptime_s']):>9} {'':>8} {fmt(m['other_cpu_cores'], ''):>10}  n={m['n']}\n")
    def rfmt(v):
        return "n/a" if v is None else f"{v:.3f}"
    def ok(v):
        return "n/a" if v is None else ("ok" if v else "MISSED")
    out.write(f"\nratio lake/plain: time to marker {rfmt(ratios['marker_s'])} "
              f"[{ok(targets['marker_ratio_ok'])}, target <= {RATIO_TARGET}], "
              f"guest uptime {rfmt(ratios['guest_uptime_s'])} [{ok(targets['uptime_ratio_ok'])}], "
              f"kernel {rfmt(ratios['kernel_s'])}\n\n")
    out.write(f"{'image':<6} {'apparent bytes':>15} {'allocated (du -B1)':>19} {'allocated':>10}\n")
    for label in ("lake", "plain"):
        i = images[label]
        out.write(f"{label:<6} {i['apparent_bytes']:>15} {i['allocated_bytes']:>19} "
                  f"{i['allocated_bytes'] / 2**20:>8.1f} M\n")
    reg = [images[l].get("allocated_by_region") for l in ("lake", "plain")]
    if all(reg):
        out.write("allocated by region (MiB, lake/plain): " + ", ".join(
            f"{k} {reg[0][k] / 2**20:.2f}/{reg[1][k] / 2**20:.2f}" for k in reg[0]) + "\n")
    out.write(f"lake allocated <= plain allocated: {ok(targets['lake_allocated_le_plain'])} "
              f"(lake/plain {images['lake']['allocated_bytes'] / images['plain']['allocated_bytes']:.3f})\n")
    for n in notes:
        out.write(f"note: {n}\n")
    out.write(f"JSON: {args.out}; console logs: {args.logs}\n")
    return 0 if all(r["result"] == "pass" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
