#!/usr/bin/env python3
"""prune-libs.py ROOT — drop shared libraries nothing in the initramfs uses.

Called by mkosi.finalize on the host. Roots of the closure: every ELF file that
is not in a library directory (programs: /usr/bin, /usr/sbin, /usr/lib/systemd,
/usr/lib/udev, /init's target, our /usr/bin/lake-initramfs, ...), plus the
libraries that are dlopen()ed rather than linked (KEEP below: NSS, PAM, glibc's
libgcc_s for thread cancellation, systemd's optional libraries). Everything
reachable through DT_NEEDED is kept; other *.so* files in the library
directories are removed. Then every remaining ELF's DT_NEEDED is checked to
resolve, and the script fails (exit 1) if one does not.

Standard library only; reads ELF dynamic sections itself (x86-64, little endian).
"""
import os
import re
import stat
import struct
import sys

LIBDIRS = ["usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib", "usr/lib/x86_64-linux-gnu/systemd"]
KEEP = [
    r"^ld-linux", r"^libc\.so", r"^libm\.so", r"^libgcc_s\.so", r"^libpthread", r"^libdl\.so",
    r"^librt\.so", r"^libnss_", r"^libresolv", r"^libpam", r"^libpam_misc",
    # systemd 252 dlopen()s these when a feature is used
    r"^libcryptsetup", r"^libidn2", r"^libpcre2-8", r"^libqrencode", r"^libfido2", r"^libtss2",
    r"^libbpf", r"^libpwquality", r"^libkmod", r"^libp11-kit", r"^libip4tc", r"^liblz4",
    r"^liblzma", r"^libzstd", r"^libbz2", r"^libz\.so", r"^libdw", r"^libelf", r"^libcurl",
    r"^libsystemd", r"^libudev", r"^libseccomp", r"^libcrypt\.so",
]


def dt_needed(path):
    """(needed sonames, runpaths) of an ELF64 LE file, or None if not such an ELF."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    e_phoff = struct.unpack_from("<Q", data, 0x20)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dyn = [], None
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        p_type, _flags, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == 1:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == 2:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return [], []

    def v2o(addr):
        for vaddr, offset, size in loads:
            if vaddr <= addr < vaddr + size:
                return addr - vaddr + offset
        return None

    entries, strtab = [], None
    for i in range(dyn[1] // 16):
        tag, val = struct.unpack_from("<qQ", data, dyn[0] + i * 16)
        if tag == 0:
            break
        if tag == 5:
            strtab = v2o(val)
        entries.append((tag, val))
    if strtab is None:
        return [], []

    def s(o):
        end = data.index(b"\0", strtab + o)
        return data[strtab + o:end].decode()

    needed = [s(v) for t, v in entries if t == 1]
    runpath = [p for t, v in entries if t in (15, 29) for p in s(v).split(":") if p]
    return needed, runpath


def main():
    root = sys.argv[1]
    libdirs = [os.path.join(root, d) for d in LIBDIRS]
    libdir_set = {os.path.realpath(d) for d in libdirs if os.path.isdir(d)}

    elves = {}  # path -> (needed, runpath)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode):
                continue
            r = dt_needed(p)
            if r is not None:
                elves[p] = r

    def is_lib(p):
        return os.path.realpath(os.path.dirname(p)) in libdir_set and ".so" in os.path.basename(p)

    def resolve(soname, runpath):
        dirs = [os.path.join(root, rp.replace("$ORIGIN", "").lstrip("/")) for rp in runpath] + libdirs
        for d in dirs:
            c = os.path.join(d, soname)
            if os.path.exists(c):
                return os.path.realpath(c)
        return None

    keep = set()
    todo = [p for p in elves if not is_lib(p)]
    todo += [p for p in elves if is_lib(p) and any(re.match(k, os.path.basename(p)) for k in KEEP)]
    # PAM and security modules live in subdirectories (not library directories): roots already.
    while todo:
        p = os.path.realpath(todo.pop())
        if p in keep:
            continue
        keep.add(p)
        needed, runpath = elves.get(p, ([], []))
        for so in needed:
            q = resolve(so, runpath)
            if q and q not in keep:
                todo.append(q)

    removed, freed = 0, 0
    for p in list(elves):
        if is_lib(p) and os.path.realpath(p) not in keep:
            freed += os.path.getsize(p)
            os.unlink(p)
            del elves[p]
            removed += 1
    # Dangling library symlinks (libfoo.so.1 -> libfoo.so.1.2.3) go too.
    for d in libdirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if os.path.islink(p) and not os.path.exists(p):
                os.unlink(p)

    missing = []
    for p, (needed, runpath) in elves.items():
        for so in needed:
            if resolve(so, runpath) is None:
                missing.append(f"{os.path.relpath(p, root)} needs {so}")
    print(f"prune-libs: removed {removed} unused libraries ({freed // 1024} KiB), "
          f"{len(elves)} ELF files left")
    if missing:
        print("prune-libs: unresolved libraries:\n  " + "\n  ".join(missing), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
