//! The FUSE driver hands the volume names as the kernel gave them (bytes, not
//! necessarily UTF-8), and reports both names of a new hard link. Real mounts,
//! hook calls recorded (escaped in the record: `caf\xe9`).

mod fuse_common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

use fuse_common::{fuse_available, Fixture};

#[test]
fn names_that_are_not_utf8_reach_the_hooks_as_bytes() {
    if !fuse_available() {
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
    if !fuse_available() {
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
