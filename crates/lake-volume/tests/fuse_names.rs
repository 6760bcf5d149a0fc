//! The FUSE driver hands the volume names as the kernel gave them (bytes, not
//! necessarily UTF-8), and reports both names of a new hard link. Real mounts,
//! hook calls recorded (escaped in the record: `caf\xe9`).
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::fuse_common::{require_fuse, Fixture};

#[test]
fn names_that_are_not_utf8_reach_the_hooks_as_bytes() {
    if !require_fuse() {
        return;
    }
    let fx = Fixture::new(true);
    fs::create_dir(fx.p("d")).unwrap();
    let odd = fx.p("d").join(OsStr::from_bytes(b"caf\xe9.txt"));
    fx.hooks.clear();
    fs::write(&odd, b"x").unwrap();
    assert_eq!(fs::read(fx.w("d").join(OsStr::from_bytes(b"caf\xe9.txt"))).unwrap(), b"x", "the working tree has the same bytes");
    fs::rename(&odd, fx.p("d").join(OsStr::from_bytes(b"\xff"))).unwrap();
    let calls = fx.hooks.calls();
    for want in ["changed:d/caf\\xe9.txt", "open:d/caf\\xe9.txt", "released:d/caf\\xe9.txt", "changed:d/\\xff"] {
        assert!(calls.iter().any(|c| c == want), "{want} missing from {calls:?}");
    }
    assert!(!calls.iter().any(|c| c.contains('\u{fffd}')), "a name was replaced lossily: {calls:?}");
}

#[test]
fn a_new_hard_link_reports_both_names() {
    if !require_fuse() {
        return;
    }
    let fx = Fixture::new(true);
    fs::create_dir(fx.p("d")).unwrap();
    fs::write(fx.p("d/one"), b"x").unwrap();
    fx.hooks.clear();
    fs::hard_link(fx.p("d/one"), fx.p("two")).unwrap();
    let calls = fx.hooks.calls();
    assert!(calls.contains(&"changed:d/one".to_owned()) && calls.contains(&"changed:two".to_owned()), "{calls:?}");
}

#[test]
fn sparse_writes_stay_sparse_in_the_working_tree() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileExt, MetadataExt};
    if !require_fuse() {
        return;
    }
    for passthrough in [true, false] {
        let fx = Fixture::new(passthrough);
        let f = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(fx.p("disk.img")).unwrap();
        f.set_len(256 << 20).unwrap();
        f.write_all_at(b"data", 128 << 20).unwrap();
        f.sync_all().unwrap();
        let work = fs::metadata(fx.w("disk.img")).unwrap();
        assert_eq!(work.len(), 256 << 20);
        assert!(work.blocks() * 512 < 1 << 20, "passthrough={passthrough}: {} bytes allocated", work.blocks() * 512);
        // SEEK_DATA/SEEK_HOLE through the mount see the holes.
        // SAFETY: a valid open descriptor; lseek has no memory arguments.
        let data = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_DATA) };
        assert!(((128 << 20) - 4096..=128 << 20).contains(&data), "passthrough={passthrough}: SEEK_DATA from 0 gave {data}");
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), 128 << 20, libc::SEEK_HOLE) };
        assert!(hole > 128 << 20 && hole < 256 << 20, "passthrough={passthrough}: SEEK_HOLE gave {hole}");
        // Punching a hole through the mount frees the blocks of the backing file.
        f.write_all_at(&vec![7u8; 4 << 20], 0).unwrap();
        f.sync_all().unwrap();
        assert!(fs::metadata(fx.w("disk.img")).unwrap().blocks() * 512 >= 4 << 20);
        // SAFETY: as above.
        let r = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, 4 << 20) };
        assert_eq!(r, 0, "passthrough={passthrough}: punch hole: {}", std::io::Error::last_os_error());
        assert!(
            fs::metadata(fx.w("disk.img")).unwrap().blocks() * 512 < 1 << 20,
            "passthrough={passthrough}: the punched hole is allocated"
        );
    }
}
