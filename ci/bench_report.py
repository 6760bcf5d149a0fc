#!/usr/bin/env python3
"""Helper for ci/bench-ingest.sh (Python 3 standard library only).

Subcommands:
  gen-large DIR --gb N [--files 8] [--seed S]   reproducible large-file tree
  mutate-large DIR [--seed S]                   version 2 of the large tree (in place)
  mutate-tree DIR [--frac 0.01] [--seed S]      version 2 of a rootfs-like tree (in place)
  strip-special DIR                             delete device nodes / fifos / sockets
  stat DIR                                      JSON: files, dirs, symlinks, bytes
  report --results TSV --trees JSON --meta JSON [--json OUT]
                                                table on stdout + JSON file

Everything that writes data is deterministic for a given seed, so two runs of
the benchmark ingest byte-identical trees.
"""

import argparse
import json
import multiprocessing
import os
import random
import stat
import sys

MIB = 1 << 20

# ---------------------------------------------------------------------------
# Large-file tree generation
# ---------------------------------------------------------------------------

_HOSTS = ["node-%02d" % i for i in range(16)]
_SVCS = ["api", "db", "auth", "cache", "worker", "sched", "proxy", "ingest"]
_LEVELS = ["INFO"] * 8 + ["DEBUG"] * 4 + ["WARN", "ERROR"]
_MSGS = [
    "request completed", "cache miss for key", "connection accepted from",
    "retrying upstream call", "flushed batch to disk", "user session refreshed",
    "slow query detected", "gc pause finished", "lease renewed",
    "checkpoint written", "config reloaded", "health check ok",
]


class _Gen:
    """Seeded generator of 1 MiB pieces of three kinds of data.

    random : incompressible (media, already-compressed archives)
    text   : log-like lines, ~5x compressible, no long repeats
    pages  : 4 KiB "database pages", a random header then zero fill (~3x)
    """

    def __init__(self, seed):
        self.r = random.Random(seed)
        r = self.r
        self.pool = [
            '%s %s[%d]: level=%s msg="%s" ms=%d req=' % (
                r.choice(_HOSTS), r.choice(_SVCS), r.getrandbits(15),
                r.choice(_LEVELS), r.choice(_MSGS), r.getrandbits(10))
            for _ in range(4096)
        ]
        self.ts = 1700000000000 + r.getrandbits(30)

    def random_mib(self, n=MIB):
        return self.r.randbytes(n)

    def text_mib(self, n=MIB):
        r, pool, out, size = self.r, self.pool, [], 0
        while size < n:
            k = 12000
            idx = r.choices(range(len(pool)), k=k)
            hx = r.randbytes(4 * k).hex()
            ts = self.ts
            s = "".join(["%dZ %s%s\n" % (ts + 7 * j, pool[i], hx[8 * j:8 * j + 8])
                         for j, i in enumerate(idx)]).encode()
            self.ts = ts + 7 * k
            out.append(s)
            size += len(s)
        return b"".join(out)[:n]

    def pages_mib(self, n=MIB):
        r = self.r
        buf = bytearray(n)
        for off in range(0, n, 4096):
            h = min(64 + r.getrandbits(11), n - off)  # 64..2111 bytes used
            buf[off:off + h] = r.randbytes(h)
        return bytes(buf)

    def piece(self, kind, n=MIB):
        return {"random": self.random_mib, "text": self.text_mib,
                "pages": self.pages_mib}[kind](n)


def _gen_one(args):
    path, size_mib, seed = args
    g = _Gen(seed)
    kinds = ["random", "text", "pages"]
    weights = [55, 25, 20]
    counts = {k: 0 for k in kinds}
    with open(path, "wb") as f:
        left = size_mib
        while left > 0:
            kind = g.r.choices(kinds, weights)[0]
            run = min(left, 1 + g.r.getrandbits(3))  # runs of 1..8 MiB
            for _ in range(run):
                f.write(g.piece(kind))
            counts[kind] += run
            left -= run
    return path, counts


def cmd_gen_large(a):
    os.makedirs(a.dir, exist_ok=True)
    total_mib = max(int(round(a.gb * 1024)), a.files)
    per = max(1, total_mib // a.files)
    jobs = [(os.path.join(a.dir, "large-%02d.bin" % i), per, a.seed * 1000 + i)
            for i in range(a.files)]
    procs = min(len(jobs), os.cpu_count() or 1)
    with multiprocessing.Pool(procs) as p:
        res = p.map(_gen_one, jobs)
    mix = {}
    for _, c in res:
        for k, v in c.items():
            mix[k] = mix.get(k, 0) + v
    json.dump({"files": a.files, "file_mib": per, "mix_mib": mix}, sys.stdout)
    print()


def cmd_mutate_large(a):
    r = random.Random(a.seed)
    g = _Gen(a.seed + 7)
    names = sorted(n for n in os.listdir(a.dir) if n.endswith(".bin"))
    changed = 0
    regions = 0
    for n in names:
        p = os.path.join(a.dir, n)
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            for _ in range(3):  # three small regions in the middle half
                ln = min(4096 * (1 + r.getrandbits(4)), max(1, size // 4))  # 4..64 KiB
                off = size // 4 + r.randrange(max(1, size // 2 - ln))
                f.seek(off)
                f.write(r.randbytes(ln))
                changed += ln
                regions += 1
    appended = 0
    if names:
        p = os.path.join(a.dir, names[r.randrange(len(names))])
        with open(p, "ab") as f:
            f.write(g.piece("text"))
        appended = MIB
    json.dump({"files": len(names), "overwritten_regions": regions,
               "overwritten_bytes": changed, "appended_bytes": appended}, sys.stdout)
    print()


# ---------------------------------------------------------------------------
# rootfs-like tree mutation
# ---------------------------------------------------------------------------

def _walk(root):
    files, dirs = [], []
    for dp, dn, fn in os.walk(root):
        dn.sort()
        dirs.append(dp)
        for n in sorted(fn):
            p = os.path.join(dp, n)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                files.append((p, st.st_size))
    return files, dirs


def cmd_mutate_tree(a):
    r = random.Random(a.seed)
    g = _Gen(a.seed + 11)
    files, dirs = _walk(a.dir)
    n = max(4, int(round(len(files) * a.frac)))
    picked = r.sample(files, min(n, len(files)))
    n_rewrite = int(n * 0.4)
    n_append = int(n * 0.3)
    n_delete = int(n * 0.15)
    n_add = max(1, n - n_rewrite - n_append - n_delete)
    out = {"rewritten": 0, "appended": 0, "deleted": 0, "added": 0,
           "bytes_written": 0, "bytes_deleted": 0}
    i = 0
    for p, size in picked[i:i + n_rewrite]:
        # Rewrite: keep the size, replace ~1/4 of the content at a random spot
        # (like an upgraded binary or a regenerated config file).
        with open(p, "r+b") as f:
            ln = max(1, size // 4)
            off = r.randrange(max(1, size - ln + 1))
            f.seek(off)
            f.write(r.randbytes(ln) if size else b"rewritten\n")
            out["bytes_written"] += ln
        out["rewritten"] += 1
    i += n_rewrite
    for p, size in picked[i:i + n_append]:
        ln = 64 + r.getrandbits(13)
        with open(p, "ab") as f:
            f.write(g.text_mib(ln))
        out["bytes_written"] += ln
        out["appended"] += 1
    i += n_append
    for p, size in picked[i:i + n_delete]:
        os.unlink(p)
        out["bytes_deleted"] += size
        out["deleted"] += 1
    sizes = [s for _, s in files] or [4096]
    for k in range(n_add):
        d = r.choice(dirs)
        p = os.path.join(d, "lake-bench-new-%03d" % k)
        ln = r.choice(sizes)
        data = g.random_mib(ln) if r.random() < 0.5 else g.text_mib(ln)
        with open(p, "wb") as f:
            f.write(data)
        out["bytes_written"] += ln
        out["added"] += 1
    out["files_before"] = len(files)
    json.dump(out, sys.stdout)
    print()


def cmd_strip_special(a):
    removed = []
    for dp, dn, fn in os.walk(a.dir):
        for n in fn + dn:
            p = os.path.join(dp, n)
            m = os.lstat(p).st_mode
            if stat.S_ISCHR(m) or stat.S_ISBLK(m) or stat.S_ISFIFO(m) or stat.S_ISSOCK(m):
                os.unlink(p)
                removed.append(os.path.relpath(p, a.dir))
    json.dump({"removed": len(removed), "paths": removed[:50]}, sys.stdout)
    print()


def cmd_stat(a):
    files = dirs = links = other = 0
    nbytes = 0
    for dp, dn, fn in os.walk(a.dir):
        dirs += 1
        for n in fn + [d for d in dn if os.path.islink(os.path.join(dp, d))]:
            st = os.lstat(os.path.join(dp, n))
            if stat.S_ISREG(st.st_mode):
                files += 1
                nbytes += st.st_size
            elif stat.S_ISLNK(st.st_mode):
                links += 1
            else:
                other += 1
    json.dump({"files": files, "dirs": dirs, "symlinks": links, "other": other,
               "bytes": nbytes}, sys.stdout)
    print()


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

PEERS = ["ostree", "restic", "borg", "borg-zstd3", "cp"]


def _fmt_bytes(n):
    if n is None:
        return "-"
    for unit in ["B", "KiB", "MiB", "GiB", "TiB"]:
        if abs(n) < 1024 or unit == "TiB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (n, unit)
        n /= 1024.0


def _fps(x):
    if x is None:
        return "-"
    return "%.0f" % x if x >= 100 else "%.2f" % x


def _f(x, fmt="%.2f"):
    return "-" if x is None else fmt % x


def cmd_report(a):
    with open(a.meta) as f:
        meta = json.load(f)
    with open(a.trees) as f:
        trees = json.load(f)
    rows = []
    with open(a.results) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            (tool, tree, ver, status, wall, user, sysc, rss, stored,
             aux, note) = (line.split("\t") + [""] * 11)[:11]
            tv = trees.get(tree, {}).get(ver, {})
            row = {"tool": tool, "tree": tree, "version": ver, "status": status,
                   "input_files": tv.get("files"), "input_bytes": tv.get("bytes")}
            if status == "ok":
                wall, user, sysc = float(wall), float(user), float(sysc)
                row.update({
                    "wall_s": round(wall, 3), "user_s": user, "sys_s": sysc,
                    "cpu_s": round(user + sysc, 2),
                    "cpu_util": round((user + sysc) / wall, 2) if wall > 0 else None,
                    "max_rss_kib": int(rss) if rss else None,
                    "files_per_s": round(tv["files"] / wall, 1) if wall > 0 else None,
                    "mb_per_s": round(tv["bytes"] / 1e6 / wall, 1) if wall > 0 else None,
                    "stored_bytes": int(stored) if stored else None,
                    "aux_cache_bytes": int(aux) if aux else None,
                })
            if note.startswith("commit ") and tool.startswith("lake"):
                row["commit_id"] = note[len("commit "):]
            elif note:
                row["note"] = note
            rows.append(row)

    # stored size after both versions = stored_bytes of the v2 row
    after_both = {}
    for r in rows:
        if r["version"] == "v2" and r.get("stored_bytes") is not None:
            after_both[(r["tool"], r["tree"])] = r["stored_bytes"]
    for r in rows:
        r["stored_bytes_after_both"] = after_both.get((r["tool"], r["tree"]))

    idx = {(r["tool"], r["tree"], r["version"]): r for r in rows if r["status"] == "ok"}
    ratios = []
    for tree in trees:
        for peer in PEERS:
            for lake in ("lake", "lake-1core"):
                ent = {"tree": tree, "lake": lake, "peer": peer}
                have = False
                for ver in ("v1", "v2"):
                    l, p = idx.get((lake, tree, ver)), idx.get((peer, tree, ver))
                    if l and p and p["wall_s"] > 0:
                        ent["time_ratio_" + ver] = round(l["wall_s"] / p["wall_s"], 3)
                        have = True
                lb, pb = after_both.get((lake, tree)), after_both.get((peer, tree))
                if lb and pb:
                    ent["size_ratio"] = round(lb / pb, 3)
                    have = True
                if have:
                    ratios.append(ent)

    out = {"meta": meta, "trees": trees, "results": rows, "ratios_lake_vs_peer": ratios}

    # ---- readable table -------------------------------------------------
    p = print
    p("")
    p("== Lake OS ingest benchmark ==  (%s)" % meta.get("cache", "warm page cache"))
    p("host: %s | %s | %s CPUs | %s GiB RAM | fs %s | %s | load %s -> %s" % (
        meta.get("hostname"), meta.get("cpu"), meta.get("nproc"), meta.get("mem_gib"),
        meta.get("fs"), meta.get("date"), meta.get("loadavg_start"),
        meta.get("loadavg_end")))
    for t, tv in trees.items():
        v1, v2 = tv.get("v1", {}), tv.get("v2", {})
        p("tree %-7s v1: %d files, %s | v2: %d files, %s | change: %s" % (
            t, v1.get("files", 0), _fmt_bytes(v1.get("bytes")),
            v2.get("files", 0), _fmt_bytes(v2.get("bytes")),
            json.dumps(tv.get("mutation", {}))))
    p("MB = 10^6 bytes; MB/s and files/s = whole input tree / wall time (also for v2).")
    p("stored = du -sb of the repo after that version (cp: both copies).")
    p("")
    hdr = "%-11s %-7s %-3s %9s %10s %9s %8s %6s %11s %11s  %s" % (
        "tool", "tree", "ver", "wall s", "files/s", "MB/s", "cpu s", "cpu%",
        "stored", "after both", "status")
    p(hdr)
    p("-" * len(hdr))
    for r in rows:
        if r["status"] == "ok":
            p("%-11s %-7s %-3s %9.2f %10s %9.1f %8.2f %5.0f%% %11s %11s  ok" % (
                r["tool"], r["tree"], r["version"], r["wall_s"], _fps(r["files_per_s"]),
                r["mb_per_s"], r["cpu_s"], 100 * (r["cpu_util"] or 0),
                _fmt_bytes(r["stored_bytes"]),
                _fmt_bytes(r["stored_bytes_after_both"])))
        else:
            p("%-11s %-7s %-3s %9s %10s %9s %8s %6s %11s %11s  %s%s" % (
                r["tool"], r["tree"], r["version"], "-", "-", "-", "-", "-", "-", "-",
                r["status"], (" (" + r["note"] + ")") if r.get("note") else ""))
    p("")
    if ratios:
        p("lake vs peer (time ratio = lake wall / peer wall, <1 is faster; "
          "size ratio = lake stored / peer stored after both versions, <1 is smaller)")
        p("%-11s %-7s %-11s %10s %10s %10s" % ("lake", "tree", "peer", "time v1",
                                              "time v2", "size"))
        for e in ratios:
            p("%-11s %-7s %-11s %10s %10s %10s" % (
                e["lake"], e["tree"], e["peer"], _f(e.get("time_ratio_v1"), "%.3f"),
                _f(e.get("time_ratio_v2"), "%.3f"), _f(e.get("size_ratio"), "%.3f")))
    else:
        p("lake vs peer ratios: none (lake was not run).")
    target = meta.get("single_core_target_mb_s", 1500)
    for ver in ("v1", "v2"):
        one = idx.get(("lake-1core", "large", ver))
        if not one:
            continue
        verdict = "meets" if one["mb_per_s"] >= target else "BELOW"
        if ver == "v1":
            p("")
        p("single-core lake ingest (taskset -c 0), large tree %s: %.1f MB/s "
          "(%s the %d MB/s target)" % (ver, one["mb_per_s"], verdict, target))
        out["single_core_large_%s_mb_per_s" % ver] = one["mb_per_s"]
        if ver == "v1":
            out["single_core_target_met"] = one["mb_per_s"] >= target
            cpu = one.get("cpu_s") or 0
            if cpu:
                p("  per CPU second (user+sys): %.1f MB/s" % (one["mb_per_s"] * one["wall_s"] / cpu))
                out["single_core_large_v1_mb_per_cpu_s"] = one["mb_per_s"] * one["wall_s"] / cpu
    ceiling = meta.get("one_core_ceiling")
    if ceiling:
        p("one-core in-memory ceiling on this machine: FastCDC %(fastcdc_mbs)s MB/s, BLAKE3 %(blake3_mbs)s MB/s, "
          "FastCDC+BLAKE3 %(fastcdc_blake3_mbs)s MB/s, zstd-3 random %(zstd3_random_mbs)s / text %(zstd3_text_mbs)s MB/s" % ceiling)
        one = idx.get(("lake-1core", "large", "v1"))
        if one and ceiling.get("fastcdc_blake3_mbs"):
            r = one["mb_per_s"] / ceiling["fastcdc_blake3_mbs"]
            p("lake single-core ingest / FastCDC+BLAKE3 ceiling: %.2f" % r)
            out["single_core_vs_ceiling"] = r
        out["one_core_ceiling"] = ceiling
    for n in meta.get("notes", []):
        p("note: " + n)

    if a.json:
        d = os.path.dirname(os.path.abspath(a.json))
        os.makedirs(d, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")
        p("")
        p("JSON written to %s" % a.json)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("gen-large")
    s.add_argument("dir")
    s.add_argument("--gb", type=float, default=2.0)
    s.add_argument("--files", type=int, default=8)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(fn=cmd_gen_large)
    s = sp.add_parser("mutate-large")
    s.add_argument("dir")
    s.add_argument("--seed", type=int, default=2)
    s.set_defaults(fn=cmd_mutate_large)
    s = sp.add_parser("mutate-tree")
    s.add_argument("dir")
    s.add_argument("--frac", type=float, default=0.01)
    s.add_argument("--seed", type=int, default=3)
    s.set_defaults(fn=cmd_mutate_tree)
    s = sp.add_parser("strip-special")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_strip_special)
    s = sp.add_parser("stat")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_stat)
    s = sp.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--trees", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--json")
    s.set_defaults(fn=cmd_report)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
