#!/usr/bin/env python3
"""Remove the Authenticode signature from a PE/COFF (EFI) binary, in place.

Usage: pe_strip_signature.py FILE

For the Secure Boot negative test (ci/boot.sh): a loader whose signature is
gone must be refused. What `sbattach --remove` does, with the standard
library only: the optional header's Certificate Table entry (data directory 4)
is zeroed and the attribute certificates after it are cut off. The checksum
field is left alone (UEFI does not check it). Exits 1 when FILE is not a PE
image or has no signature.
"""
import struct
import sys


def main(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:2] != b"MZ":
            sys.exit(f"{path}: not a PE image (no MZ header)")
        pe = struct.unpack_from("<I", data, 0x3C)[0]
        if data[pe:pe + 4] != b"PE\0\0":
            sys.exit(f"{path}: not a PE image (no PE signature at {pe:#x})")
        opt = pe + 24
        magic = struct.unpack_from("<H", data, opt)[0]
        # Data directories start at 96 (PE32) or 112 (PE32+) into the optional header.
        dirs = opt + {0x10B: 96, 0x20B: 112}.get(magic, -1)
        if dirs < opt:
            sys.exit(f"{path}: unknown optional header magic {magic:#x}")
        entry = dirs + 4 * 8
        off, size = struct.unpack_from("<II", data, entry)
        if off == 0 or size == 0:
            sys.exit(f"{path}: has no signature (empty Certificate Table)")
        struct.pack_into("<II", data, entry, 0, 0)
        # The certificate table is the file's tail (it is not mapped).
        del data[off:off + size]
        f.seek(0)
        f.write(data)
        f.truncate()
    print(f"{path}: removed the {size}-byte signature at {off:#x}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
