#!/usr/bin/env python3
"""Helper for ci/bench-lakezone.sh (Python 3 standard library only).

Subcommands:
  make-tree OUT.tar [--src DIR]...
      a source tree of the given directories (default: ~/.cargo/registry/src/*
      and /usr/include), made a git repository (git init, add -A, commit, gc),
      as one uncompressed tar. JSON on stdout (files, bytes, tar bytes).
  smallfiles DIR [--count 10000] [--size 1024] [--per-dir 100]
      create COUNT files of SIZE bytes in DIR/sNNN/ (PER-DIR each), then stat
      them all, then delete them (and the directories); wall time of each
      phase. JSON on stdout: {"create_s", "stat_s", "delete_s", ...}.
  wait-info MNT [--timeout 60] [--pid PID]
      wait until MNT/.lake/info can be read (the lakefs mount is up); print it.
  control MNT JSON
      write one request to MNT/.lake/control and print the reply read back on
      the same open file.
  head LAKE [--ref home/main]
      print the commit id the ref points at (from LAKE/meta.db, read-only), or
      nothing.
  catchup LAKE --since EPOCH [--ref home/main] [--quiet 5] [--timeout 300]
          [--mnt MNT]
      poll the ref (every 0.2 s) until it has not moved for QUIET seconds;
      catchup_s = time of the last move observed - EPOCH (0 when it never
      moved). With --mnt, also a "flush" control request afterwards: whether
      it still made a commit (something was pending) and how long it took.
      JSON on stdout.
  commits LAKE [--ref home/main] [--lakectl PATH]
      number of commits on the ref (lakectl --json log).
  report --results TSV --meta JSON [--json OUT] [--md OUT]
      medians per side x step, ratios ext4_time / side_time, and with the
      lake and a peer FUSE file system (bindfs, fuse-overlayfs) also
      peer_time / lake_time; markdown tables on stdout (and in --md), the full
      report in --json.
"""

import argparse
import glob
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1 << 20


def cmd_make_tree(a):
    srcs = a.src or (sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*"))) + ["/usr/include"])
    srcs = [s for s in srcs if os.path.isdir(s)]
    if not srcs:
        sys.exit("make-tree: no source directories")
    out = os.path.abspath(a.out)
    stage = tempfile.mkdtemp(prefix="lakezone-tree.", dir=os.path.dirname(out))
    try:
        top = os.path.join(stage, "src")
        os.makedirs(top)
        for i, s in enumerate(srcs):
            dst = os.path.join(top, "%02d-%s" % (i, os.path.basename(s.rstrip("/")) or "root"))
            # symlinks=True: copy links as links (some point outside the tree).
            shutil.copytree(s, dst, symlinks=True, ignore_dangling_symlinks=True)
        env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@lake",
                   GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@lake",
                   GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
        git = ["git", "-C", top, "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"]
        for args in (["init", "-q"], ["add", "-A", "-f"], ["commit", "-q", "-m", "bench tree"], ["gc", "-q"]):
            subprocess.run(git + args, check=True, env=env, stdout=subprocess.DEVNULL)
        # Counted after gc, so .git (packed) is included.
        files = nbytes = 0
        for d, _, fs in os.walk(top):
            for f in fs:
                files += 1
                nbytes += os.lstat(os.path.join(d, f)).st_size
        tmp = out + ".tmp"
        subprocess.run(["tar", "-cf", tmp, "-C", stage, "src"], check=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(json.dumps({"tar": out, "sources": srcs, "files": files, "bytes": nbytes,
                      "tar_bytes": os.path.getsize(out)}))


def cmd_smallfiles(a):
    base = os.path.abspath(a.dir)
    os.makedirs(base, exist_ok=True)
    data = (b"small file payload 0123456789abcdef\n" * (a.size // 36 + 1))[:a.size]
    ndirs = (a.count + a.per_dir - 1) // a.per_dir
    paths = [os.path.join(base, "s%03d" % (i // a.per_dir), "f%05d.txt" % i) for i in range(a.count)]
    t0 = time.monotonic()
    for d in range(ndirs):
        os.mkdir(os.path.join(base, "s%03d" % d))
    for p in paths:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
    t1 = time.monotonic()
    total = 0
    for p in paths:
        total += os.stat(p).st_size
    t2 = time.monotonic()
    for p in paths:
        os.unlink(p)
    for d in range(ndirs):
        os.rmdir(os.path.join(base, "s%03d" % d))
    t3 = time.monotonic()
    if total != a.count * a.size:
        sys.exit("smallfiles: stat saw %d bytes, wrote %d" % (total, a.count * a.size))
    print(json.dumps({"count": a.count, "size": a.size, "dirs": ndirs, "create_s": round(t1 - t0, 4),
                      "stat_s": round(t2 - t1, 4), "delete_s": round(t3 - t2, 4)}))


def cmd_wait_info(a):
    info = os.path.join(a.mnt, ".lake", "info")
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        if a.pid:
            try:
                os.kill(a.pid, 0)
            except ProcessLookupError:
                sys.exit("wait-info: the mount process %d exited before %s appeared" % (a.pid, info))
        try:
            with open(info, "rb") as f:
                body = f.read()
            sys.stdout.write(body.decode(errors="replace").strip() + "\n")
            return
        except OSError as e:
            last = e
        time.sleep(0.1)
    sys.exit("wait-info: %s not readable after %s s (%s)" % (info, a.timeout, last))


def control(mnt, req):
    fd = os.open(os.path.join(mnt, ".lake", "control"), os.O_RDWR)
    try:
        os.write(fd, req.encode() if isinstance(req, str) else req)
        # The reply is read from where the request's write ended.
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        text = b"".join(chunks).decode(errors="replace").strip()
        # Only the first JSON value (a kernel page-cache read of the control file
        # can append stale bytes).
        try:
            v, _ = json.JSONDecoder().raw_decode(text)
            return json.dumps(v)
        except ValueError:
            return text
    finally:
        os.close(fd)


def cmd_control(a):
    print(control(a.mnt, a.request))


def head(lake, ref):
    db = os.path.join(lake, "meta.db")
    try:
        c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
        try:
            row = c.execute("SELECT commit_id FROM refs WHERE name=?", (ref,)).fetchone()
        finally:
            c.close()
    except sqlite3.Error:
        return None
    return row[0].hex() if row else None


def cmd_head(a):
    print(head(a.lake, a.ref) or "")


def cmd_catchup(a):
    start = head(a.lake, a.ref)
    cur, last_move, moves = start, None, 0
    t_begin = time.time()
    timed_out = False
    while True:
        now = time.time()
        h = head(a.lake, a.ref)
        if h != cur:
            cur, last_move, moves = h, now, moves + 1
        ref_t = last_move if last_move is not None else max(a.since, t_begin)
        if now - ref_t >= a.quiet:
            break
        if now - t_begin >= a.timeout:
            timed_out = True
            break
        time.sleep(0.2)
    res = {"catchup_s": round(last_move - a.since, 3) if last_move is not None else 0.0,
           "ref_moves_seen": moves, "head": cur, "timed_out": timed_out, "quiet_s": a.quiet}
    if a.mnt:
        t0 = time.monotonic()
        try:
            reply = control(a.mnt, json.dumps({"op": "flush"}))
            res["flush_s"] = round(time.monotonic() - t0, 3)
            res["flush_reply"] = reply[:300]
        except OSError as e:
            res["flush_error"] = str(e)
        after = head(a.lake, a.ref)
        res["flush_committed"] = after != cur
    print(json.dumps(res))


def commit_count(lakectl, lake, ref):
    p = subprocess.run([lakectl, "--lake", lake, "--ref", ref, "--json", "log"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        return None
    try:
        return len(json.loads(p.stdout))
    except ValueError:
        return None


def cmd_commits(a):
    n = commit_count(a.lakectl, a.lake, a.ref)
    print("" if n is None else n)


# --- report -----------------------------------------------------------------

SIDES = ("ext4", "lake", "lake-nopt", "bindfs", "fuse-overlayfs")
SIDE_TITLE = {"ext4": "ext4", "lake": "lakefs (passthrough)", "lake-nopt": "lakefs (passthrough=off)",
              "bindfs": "bindfs", "fuse-overlayfs": "fuse-overlayfs"}
# Other FUSE file systems, compared with the lake side in a table of their own.
PEERS = ("bindfs", "fuse-overlayfs")
# step -> (title, class); class is "data" or "metadata" (the targets).
STEPS = [
    ("untar", "untar source tree", "metadata"),
    ("git-status", "git status (warm)", "metadata"),
    ("seq-write", "{seq} sequential write (fsync)", "data"),
    ("seq-write-nofsync", "{seq} sequential write (no fsync; syncfs of the ext4)", "data"),
    ("seq-read", "{seq} sequential read (cold)", "data"),
    ("small-create", "{small} small files: create", "metadata"),
    ("small-stat", "{small} small files: stat", "metadata"),
    ("small-delete", "{small} small files: delete", "metadata"),
]


def _titles(meta):
    mib = int(meta.get("seq_mib", 1024))
    seq = "%d GiB" % (mib // 1024) if mib % 1024 == 0 else "%d MiB" % mib
    n = int(meta.get("small_files", 10000))
    small = "%dk" % (n // 1000) if n % 1000 == 0 else str(n)
    return [(st, t.format(seq=seq, small=small), c) for st, t, c in STEPS]
TARGET = {"data": 0.7, "metadata": 0.5}


def _s(x):
    return "-" if x is None else ("%.2f" % x if x >= 0.1 else "%.3f" % x)


def _r(x):
    return "-" if x is None else "%.2f" % x


def cmd_report(a):
    with open(a.meta) as f:
        meta = json.load(f)
    steps = _titles(meta)
    runs = []
    with open(a.results) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            side, run, step, status, value, note = (line.split("\t") + [""] * 6)[:6]
            row = {"side": side, "run": int(run), "step": step, "status": status}
            if status == "ok":
                row["value"] = float(value)
            if note:
                row["note"] = note
            runs.append(row)
    sides = [s for s in SIDES if any(r["side"] == s for r in runs)]
    med = {}
    for side in sides:
        for step in sorted({r["step"] for r in runs if r["side"] == side}):
            vals = [r["value"] for r in runs if (r["side"], r["step"], r["status"]) == (side, step, "ok")]
            fails = [r for r in runs if (r["side"], r["step"]) == (side, step) and r["status"] != "ok"]
            ent = {"n": len(vals), "failed": len(fails)}
            if vals:
                ent.update({"median": round(statistics.median(vals), 4), "min": min(vals), "max": max(vals)})
            med.setdefault(side, {})[step] = ent

    def m(side, step):
        return med.get(side, {}).get(step, {}).get("median")

    def ratio_of(num, den):
        """step -> median(num) / median(den), for the steps both sides have."""
        out = {}
        for step, _, _ in steps:
            n, d = m(num, step), m(den, step)
            if n is not None and d:
                out[step] = round(n / d, 3)
        return out

    ratios = {side: r for side in sides if side != "ext4" and (r := ratio_of("ext4", side))}
    # > 1: lakefs (passthrough) is faster than the peer.
    peers = [s for s in sides if s in PEERS] if "lake" in sides else []
    peer_ratios = {peer: r for peer in peers if (r := ratio_of(peer, "lake"))}
    report = {"meta": meta, "runs": runs, "medians": med, "ratios_ext4_over_side": ratios,
              "ratios_peer_over_lake": peer_ratios, "targets": TARGET, "steps": [{"step": s, "title": t, "class": c} for s, t, c in steps]}
    with open(a.json, "w") if a.json else open(os.devnull, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")

    L = []
    L.append("### LAKE zone (FUSE) vs ext4%s on the same file system"
             % (" and other FUSE file systems" if any(s in PEERS for s in sides) else ""))
    L.append("")
    mach = meta.get("machine", {})
    L.append("%s; %s CPUs, %s GiB RAM, Linux %s; %s; median of %s run(s), seconds, warm cache "
             "(the read is after drop_caches); load %s at the start, %s at the end." % (
                 meta.get("date", "?"), mach.get("nproc", "?"), mach.get("mem_gib", "?"),
                 mach.get("kernel", "?"), meta.get("fs", "?"), meta.get("runs", "?"),
                 mach.get("loadavg_start", "?"), mach.get("loadavg_end", "?")))
    L.append("")
    tree = meta.get("tree", {})
    if tree:
        L.append("- tree: %s files (%s tar entries), %.1f MiB (tar %.1f MiB), a git repository (%s)" % (
            tree.get("files", "?"), meta.get("tree_entries", "?"), tree.get("bytes", 0) / MIB, tree.get("tar_bytes", 0) / MIB,
            ", ".join(os.path.basename(s.rstrip("/")) if "registry" not in s else "~/.cargo/registry/src/" + os.path.basename(s)
                      for s in tree.get("sources", []))))
    if meta.get("nofile_hard"):
        L.append("- open-file limit (hard) for the lakefs daemon: %s" % meta["nofile_hard"])
    for side in sides:
        if side in meta.get("sides", {}):
            L.append("- %s: %s" % (SIDE_TITLE[side], meta["sides"][side]))
    L.append("")
    head_cells = ["workload", "class"]
    for side in sides:
        head_cells.append("%s s" % SIDE_TITLE[side])
    for side in sides:
        if side != "ext4":
            head_cells.append("ext4/%s" % SIDE_TITLE[side])
    L.append("| " + " | ".join(head_cells) + " |")
    L.append("|---|---|" + "---:|" * (len(head_cells) - 2))
    for step, title, cls in steps:
        if not any(step in med.get(s, {}) for s in sides):
            continue
        cells = [title, cls]
        for side in sides:
            cells.append(_s(m(side, step)))
        for side in sides:
            if side == "ext4":
                continue
            r = ratios.get(side, {}).get(step)
            # The targets are lakefs's; the peers' ratios are only for comparison.
            mark = "" if r is None or r >= TARGET[cls] or side in PEERS else " (below %.1f)" % TARGET[cls]
            cells.append(_r(r) + mark)
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L.append("Ratio = ext4 time / side time (1.0 = as fast as ext4); lakefs's targets: >= %.1f data, >= %.1f metadata."
             % (TARGET["data"], TARGET["metadata"]))
    if peer_ratios:
        L.append("")
        L.append("#### lakefs vs other FUSE file systems")
        L.append("")
        cols = [p for p in peers if p in peer_ratios]
        L.append("| workload | class | " + " | ".join("%s / %s" % (SIDE_TITLE[p], SIDE_TITLE["lake"]) for p in cols) + " |")
        L.append("|---|---|" + "---:|" * len(cols))
        for step, title, cls in steps:
            if not any(step in peer_ratios[p] for p in cols):
                continue
            L.append("| %s | %s | %s |" % (title, cls, " | ".join(_r(peer_ratios[p].get(step)) for p in cols)))
        L.append("")
        L.append("Ratio = peer time / lakefs (passthrough) time, from the medians above: > 1 means lakefs is faster.")
    # Lake-side history numbers.
    hist = [s for s in sides if s != "ext4" and any(k in med.get(s, {}) for k in ("catchup", "commits-untar", "commits-total"))]
    if hist:
        L.append("")
        L.append("| lake history | " + " | ".join(SIDE_TITLE[s] for s in hist) + " |")
        L.append("|---|" + "---:|" * len(hist))
        for key, title in (("catchup", "committer catch-up after the untar, s"),
                           ("commits-untar", "commits after the untar"),
                           ("commit-1g", "committer catch-up after the unsynced %s write and its syncfs, s (0: committed during the syncfs)" % _titles(meta)[2][1].split(" sequential")[0]),
                           ("commits-total", "commits at the end of a run"),
                           ("daemon-cpu", "daemon CPU (user+sys) per run, s")):
            if any(key in med.get(s, {}) for s in hist):
                fmt = (lambda x: "-" if x is None else "%d" % round(x)) if key.startswith("commits") else _s
                L.append("| %s | %s |" % (title, " | ".join(fmt(m(s, key)) for s in hist)))
    if meta.get("notes"):
        L.append("")
        for note in meta["notes"]:
            L.append("- " + note)
    fails = [r for r in runs if r["status"] != "ok"]
    if fails:
        L.append("")
        L.append("Failed steps: " + "; ".join("%s run %d %s (%s)" % (r["side"], r["run"], r["step"], r.get("note", ""))
                                             for r in fails))
    text = "\n".join(L) + "\n"
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    sys.stdout.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("make-tree")
    s.add_argument("out")
    s.add_argument("--src", action="append")
    s.set_defaults(fn=cmd_make_tree)
    s = sub.add_parser("smallfiles")
    s.add_argument("dir")
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--size", type=int, default=1024)
    s.add_argument("--per-dir", type=int, default=100)
    s.set_defaults(fn=cmd_smallfiles)
    s = sub.add_parser("wait-info")
    s.add_argument("mnt")
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--pid", type=int)
    s.set_defaults(fn=cmd_wait_info)
    s = sub.add_parser("control")
    s.add_argument("mnt")
    s.add_argument("request")
    s.set_defaults(fn=cmd_control)
    s = sub.add_parser("head")
    s.add_argument("lake")
    s.add_argument("--ref", default="home/main")
    s.set_defaults(fn=cmd_head)
    s = sub.add_parser("catchup")
    s.add_argument("lake")
    s.add_argument("--since", type=float, required=True)
    s.add_argument("--ref", default="home/main")
    s.add_argument("--quiet", type=float, default=5)
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("--mnt")
    s.set_defaults(fn=cmd_catchup)
    s = sub.add_parser("commits")
    s.add_argument("lake")
    s.add_argument("--ref", default="home/main")
    s.add_argument("--lakectl", default="lakectl")
    s.set_defaults(fn=cmd_commits)
    s = sub.add_parser("report")
    s.add_argument("--results", required=True)
    s.add_argument("--meta", required=True)
    s.add_argument("--json")
    s.add_argument("--md")
    s.set_defaults(fn=cmd_report)
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
