#!/usr/bin/env python3
"""Helper for ci/bench-posix.sh (Python 3 standard library only).

Subcommands:
  make-pkg OUT.deb [--mib 50] [--files 200] [--seed S] [--name N]
      a Debian package of --files files (about 60% pseudo-random bytes, 40%
      log-like text) totalling --mib MiB under /usr/share/N and /usr/lib/N,
      no maintainer scripts; built with dpkg-deb (gzip -1). JSON on stdout.
  bulk ROOT [--copies 4]
      grow a rootfs into the "large" tree: copy ROOT/usr to ROOT/opt/bulkK
      (K = 1..copies), appending a short per-copy tag to each regular file so
      no copy deduplicates against another. JSON on stdout.
  kernel ROOT [--kver V]
      a stand-in kernel and initramfs (seeded random bytes, 8 + 16 MiB) at
      ROOT/usr/lib/modules/V/{vmlinuz,initramfs.img}, where ostree and lake
      both look for them. JSON on stdout.
  report --results TSV --meta JSON [--json OUT] [--md OUT]
      medians per side x tree x step, ratios; a markdown table on stdout
      (and in --md), the full report in --json.

Data written is deterministic for a given seed.
"""

import argparse
import json
import os
import random
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile

MIB = 1 << 20

_WORDS = ("request completed cache miss connection accepted retrying upstream "
          "flushed batch disk session refreshed slow query detected pause "
          "finished lease renewed checkpoint written config reloaded health ok "
          "node api db auth worker sched proxy ingest level info debug warn").split()


def _text(r, n):
    """n bytes of log-like lines (compressible, no long repeats)."""
    out = []
    size = 0
    ts = 1700000000000 + r.getrandbits(30)
    while size < n:
        ts += r.getrandbits(12)
        line = "%d %s[%d]: %s %s %s id=%08x\n" % (
            ts, r.choice(_WORDS), r.getrandbits(15), r.choice(_WORDS),
            r.choice(_WORDS), r.choice(_WORDS), r.getrandbits(32))
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:n]


def cmd_make_pkg(a):
    r = random.Random(a.seed)
    total = int(a.mib * MIB)
    # Sizes: log-uniform between 4 KiB and 4 MiB, then scaled to the total.
    raw = [2 ** r.uniform(12, 22) for _ in range(a.files)]
    scale = total / sum(raw)
    sizes = [max(1, int(x * scale)) for x in raw]
    sizes[-1] += total - sum(sizes)
    stage = tempfile.mkdtemp(prefix="lake-bench-pkg.", dir=os.path.dirname(os.path.abspath(a.out)))
    try:
        os.makedirs(os.path.join(stage, "DEBIAN"))
        kinds = {"random": 0, "text": 0}
        for i, n in enumerate(sizes):
            sub = ("usr/share/%s/data/%02d" % (a.name, i % 10)) if i % 4 else ("usr/lib/%s" % a.name)
            d = os.path.join(stage, sub)
            os.makedirs(d, exist_ok=True)
            if r.random() < 0.6:
                data, kind = r.randbytes(n), "random"
            else:
                data, kind = _text(r, n), "text"
            kinds[kind] += n
            with open(os.path.join(d, "file-%03d.%s" % (i, "bin" if kind == "random" else "txt")), "wb") as f:
                f.write(data)
        with open(os.path.join(stage, "DEBIAN", "control"), "w") as f:
            f.write("Package: %s\nVersion: 1.0\nArchitecture: all\n"
                    "Maintainer: Lake OS benchmark <bench@lake.invalid>\n"
                    "Installed-Size: %d\nSection: misc\nPriority: optional\n"
                    "Description: synthetic ~%g MiB package for ci/bench-posix.sh\n"
                    % (a.name, total // 1024, a.mib))
        for dp, dn, fn in os.walk(stage):
            os.chmod(dp, 0o755)
            for n in fn:
                os.chmod(os.path.join(dp, n), 0o644)
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", stage, a.out],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    json.dump({"deb": a.out, "name": a.name, "files": a.files, "bytes": total,
               "deb_bytes": os.path.getsize(a.out), "mix_bytes": kinds}, sys.stdout)
    print()


def cmd_bulk(a):
    src = os.path.join(a.root, "usr")
    files = links = dirs = nbytes = 0
    for k in range(1, a.copies + 1):
        dst = os.path.join(a.root, "opt", "bulk%d" % k)
        if os.path.lexists(dst):
            sys.exit("bulk: %s exists" % dst)
        tag = b"\n# lake-bench bulk copy %d\n" % k
        for dp, dn, fn in os.walk(src):
            rel = os.path.relpath(dp, src)
            out = os.path.normpath(os.path.join(dst, rel))
            st = os.lstat(dp)
            os.makedirs(out, exist_ok=True)
            dirs += 1
            for n in dn:  # symlinked dirs are not walked into; copy the link
                p = os.path.join(dp, n)
                if os.path.islink(p):
                    os.symlink(os.readlink(p), os.path.join(out, n))
                    links += 1
            for n in fn:
                p, q = os.path.join(dp, n), os.path.join(out, n)
                s = os.lstat(p)
                if stat.S_ISLNK(s.st_mode):
                    os.symlink(os.readlink(p), q)
                    links += 1
                elif stat.S_ISREG(s.st_mode):
                    with open(p, "rb") as f, open(q, "wb") as g:
                        shutil.copyfileobj(f, g, 1 << 20)
                        g.write(tag)
                    os.chown(q, s.st_uid, s.st_gid)
                    os.chmod(q, stat.S_IMODE(s.st_mode))
                    files += 1
                    nbytes += s.st_size + len(tag)
            os.chown(out, st.st_uid, st.st_gid)
            os.chmod(out, stat.S_IMODE(st.st_mode))
    json.dump({"copies": a.copies, "files": files, "symlinks": links, "dirs": dirs,
               "bytes": nbytes}, sys.stdout)
    print()


def cmd_kernel(a):
    d = os.path.join(a.root, "usr", "lib", "modules", a.kver)
    os.makedirs(d, exist_ok=True)
    r = random.Random(a.seed)
    for name, mib in (("vmlinuz", 8), ("initramfs.img", 16)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(r.randbytes(mib * MIB))
    json.dump({"kver": a.kver, "dir": os.path.relpath(d, a.root)}, sys.stdout)
    print()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

STEPS = [  # (side, step, column title)
    ("lake", "commit", "lake commit"),
    ("lake", "deploy", "lake deploy"),
    ("lake", "rollback", "lake rollback"),
    ("lake", "rollback-now", "lake rollback --now"),
    ("ostree", "commit", "ostree commit"),
    ("ostree", "deploy", "ostree deploy"),
    ("ostree", "rollback", "ostree rollback"),
]


def _fmt_bytes(n):
    if n is None:
        return "-"
    for unit in ["B", "KiB", "MiB", "GiB"]:
        if abs(n) < 1024 or unit == "GiB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0


def _s(x):
    return "-" if x is None else "%.2f" % x


def _r(x):
    return "-" if x is None else "%.2f" % x


def cmd_report(a):
    with open(a.meta) as f:
        meta = json.load(f)
    runs = []
    with open(a.results) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            side, tree, run, step, status, wall, user, sysc, note = (line.split("\t") + [""] * 9)[:9]
            row = {"side": side, "tree": tree, "run": int(run), "step": step, "status": status}
            if status == "ok":
                row.update({"wall_s": round(float(wall), 3), "user_s": float(user or 0),
                            "sys_s": float(sysc or 0)})
            if note:
                row["note"] = note
            runs.append(row)

    trees = [t for t in meta.get("trees_order", []) if any(r["tree"] == t for r in runs)]
    med = {}
    for tree in trees:
        for side in ("lake", "ostree"):
            for step in sorted({r["step"] for r in runs if r["side"] == side}):
                vals = [r["wall_s"] for r in runs
                        if (r["side"], r["tree"], r["step"], r["status"]) == (side, tree, step, "ok")]
                if vals:
                    med.setdefault(tree, {}).setdefault(side, {})[step] = {
                        "median_s": round(statistics.median(vals), 3),
                        "min_s": min(vals), "max_s": max(vals), "n": len(vals)}

    def m(tree, side, step):
        return med.get(tree, {}).get(side, {}).get(step, {}).get("median_s")

    ratios = {}
    for tree in trees:
        lc, ld = m(tree, "lake", "commit"), m(tree, "lake", "deploy")
        oc, od = m(tree, "ostree", "commit"), m(tree, "ostree", "deploy")
        lr, orb = m(tree, "lake", "rollback"), m(tree, "ostree", "rollback")
        ent = {}
        if None not in (lc, ld, oc, od) and oc + od > 0:
            ent["lake_vs_ostree_commit_deploy"] = round((lc + ld) / (oc + od), 3)
        if None not in (lc, oc) and oc > 0:
            ent["lake_vs_ostree_commit"] = round(lc / oc, 3)
        if None not in (lr, orb) and orb > 0:
            ent["lake_vs_ostree_rollback"] = round(lr / orb, 3)
        ratios[tree] = ent
    growth = {}
    if "small" in med and "large" in med:
        for side in ("lake", "ostree"):
            for step in ("commit", "deploy", "rollback", "rollback-now"):
                s, l = m("small", side, step), m("large", side, step)
                if s and l is not None:
                    growth["%s_%s" % (side, step)] = round(l / s, 3)
        ts, tl = meta.get("tree_stats", {}).get("small"), meta.get("tree_stats", {}).get("large")
        if ts and tl and ts.get("files") and ts.get("bytes"):
            growth["tree_files"] = round(tl["files"] / ts["files"], 3)
            growth["tree_bytes"] = round(tl["bytes"] / ts["bytes"], 3)

    out = {"meta": meta, "medians": med, "ratios_lake_vs_ostree": ratios,
           "large_vs_small": growth, "runs": runs}

    # ---- markdown ---------------------------------------------------------
    L = []
    L.append("### POSIX zone: commit, deploy and rollback of a ~%s MiB package (lake vs ostree)"
             % meta.get("pkg", {}).get("mib", "?"))
    L.append("")
    tv = meta.get("tool_versions", {})
    tools = ", ".join(("%s" if k == "lake" else "ostree %s") % v for k, v in sorted(tv.items()))
    L.append("%s; %s CPUs, %s GiB RAM, %s on Linux %s; %s; median of %s run(s), seconds, %s." % (
        meta.get("date"), meta.get("nproc"), meta.get("mem_gib"), meta.get("fs"),
        meta.get("kernel"), tools, meta.get("runs"), meta.get("cache", "warm page cache")))
    L.append("Load average (1/5/15 min) at start %s, at end %s: other processes on the host "
             "add noise; min/max per step are in the JSON." % (
                 meta.get("loadavg_start"), meta.get("loadavg_end")))
    L.append("")
    for t in trees:
        st = meta.get("tree_stats", {}).get(t, {})
        L.append("- tree **%s**: %s files, %s" % (t, st.get("files", "?"), _fmt_bytes(st.get("bytes"))))
    pk = meta.get("pkg", {})
    if pk:
        L.append("- change: dpkg -i of one package, %s files, %s (%s random / %s text)" % (
            pk.get("files"), _fmt_bytes(pk.get("bytes")),
            _fmt_bytes(pk.get("mix_bytes", {}).get("random")),
            _fmt_bytes(pk.get("mix_bytes", {}).get("text"))))
    L.append("")
    cols = [c for c in STEPS if any(m(t, c[0], c[1]) is not None for t in trees)]
    hdr = ["tree"] + [c[2] + " s" for c in cols] + ["lake/ostree commit+deploy",
                                                    "lake/ostree rollback"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(hdr) - 1)) + "|")
    for t in trees:
        cells = [t] + [_s(m(t, c[0], c[1])) for c in cols]
        cells.append(_r(ratios[t].get("lake_vs_ostree_commit_deploy")))
        cells.append(_r(ratios[t].get("lake_vs_ostree_rollback")))
        L.append("| " + " | ".join(cells) + " |")
    if growth:
        L.append("")
        L.append("large/small: tree %sx files, %sx bytes; lake commit %sx, ostree commit %sx; "
                 "lake deploy %sx, ostree deploy %sx; lake rollback %sx, ostree rollback %sx."
                 % (_r(growth.get("tree_files")), _r(growth.get("tree_bytes")),
                    _r(growth.get("lake_commit")), _r(growth.get("ostree_commit")),
                    _r(growth.get("lake_deploy")), _r(growth.get("ostree_deploy")),
                    _r(growth.get("lake_rollback")), _r(growth.get("ostree_rollback"))))
    L.append("")
    for n in meta.get("notes", []):
        L.append("- " + n)
    failed = [r for r in runs if r["status"] != "ok"]
    for r in failed:
        L.append("- FAILED: %s %s run %d %s (%s)" % (r["side"], r["tree"], r["run"], r["step"],
                                                    r.get("note", "")))
    md = "\n".join(L) + "\n"
    sys.stdout.write("\n" + md)
    if a.md:
        os.makedirs(os.path.dirname(os.path.abspath(a.md)), exist_ok=True)
        with open(a.md, "w") as f:
            f.write(md)
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        print("\nJSON written to %s" % a.json)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("make-pkg")
    s.add_argument("out")
    s.add_argument("--mib", type=float, default=50)
    s.add_argument("--files", type=int, default=200)
    s.add_argument("--seed", type=int, default=4)
    s.add_argument("--name", default="lake-bench-payload")
    s.set_defaults(fn=cmd_make_pkg)
    s = sp.add_parser("bulk")
    s.add_argument("root")
    s.add_argument("--copies", type=int, default=4)
    s.set_defaults(fn=cmd_bulk)
    s = sp.add_parser("kernel")
    s.add_argument("root")
    s.add_argument("--kver", default="6.1.0-lake-bench")
    s.add_argument("--seed", type=int, default=5)
    s.set_defaults(fn=cmd_kernel)
    s = sp.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--json")
    s.add_argument("--md")
    s.set_defaults(fn=cmd_report)
    a = ap.parse_args()
    if a.cmd == "make-pkg" and (a.files < 1 or a.mib <= 0):
        ap.error("make-pkg: --files must be >= 1 and --mib > 0")
    a.fn(a)


if __name__ == "__main__":
    main()
