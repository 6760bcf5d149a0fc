#!/bin/sh
# Stand-in for /usr/bin/lake-initramfs, used by ci/build-images.sh when the real
# program (crates/lake-initramfs, a Rust binary) has not been built: it makes the
# failure path visible (lake-initramfs.service fails -> emergency shell).
echo "lake-initramfs stand-in"
echo "lake-initramfs: this initramfs was built without the real early-boot program; /sysroot was not assembled" >&2
exit 1
