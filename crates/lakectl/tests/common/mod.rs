//! Shared helpers of the lakectl integration tests: running lakectl, and the
//! test kit's trees, snapshots and mounts (lake-testkit) under the names the
//! tests use.
#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use lake_testkit::tree::{assert_same, snapshot, special_tree};
pub use lake_testkit::{bytes, Mounted};

pub fn lakectl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lakectl"))
}

/// Another binary of the workspace, built next to lakectl.
pub fn sibling(name: &str) -> PathBuf {
    lake_testkit::bin(name)
}

pub fn run(lake: &Path, args: &[&str]) -> Output {
    Command::new(lakectl()).arg("--lake").arg(lake).arg("-q").args(args).output().expect("run lakectl")
}

/// Runs lakectl and insists on success; returns stdout.
pub fn ok(lake: &Path, args: &[&str]) -> String {
    let out = run(lake, args);
    assert!(out.status.success(), "lakectl {args:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn commit(lake: &Path, src: &Path, msg: &str) -> String {
    let out = ok(lake, &["commit", src.to_str().unwrap(), "-m", msg]);
    out.lines().last().unwrap_or_default().trim().to_owned()
}

pub fn path_str(p: &Path) -> &str {
    std::str::from_utf8(p.as_os_str().as_bytes()).unwrap()
}

/// A lake made by `lakectl init` in a temporary directory, its `home` volume
/// mounted with the real `lakefs mount`; None where FUSE cannot run (a skip,
/// or a failure under CI: `lake_testkit::require_fuse`).
pub fn mount() -> Option<Mounted> {
    if !lake_testkit::require_fuse() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    ok(&lake, &["init"]);
    let mnt = dir.path().join("mnt");
    Some(Mounted::start(&lake, &mnt).owning(dir))
}
