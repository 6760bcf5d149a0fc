//! The mount binaries: `mount.lakefs` (as mount(8) runs it) returns once the
//! mount is up or fails with a reason; `lakefs mount --foreground` serves until
//! SIGTERM, then unmounts and makes its final commit.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::path::PathBuf;
use std::process::{Command, Stdio};

use lake_testkit::fuse::is_mounted;
use lakefs::lake::{CreateOptions, Lake};

const MOUNT_LAKEFS: &str = env!("CARGO_BIN_EXE_mount-lakefs");
const LAKEFS: &str = env!("CARGO_BIN_EXE_lakefs");

struct Setup {
    dir: tempfile::TempDir,
    lake: PathBuf,
    mnt: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let lake = dir.path().join("lake");
        drop(Lake::create(&lake, &CreateOptions::default()).unwrap());
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        Setup { dir, lake, mnt }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..6000 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    f()
}

#[test]
fn mount_helper_returns_once_mounted() {
    if !lake_testkit::require_fuse() {
        return;
    }
    let s = Setup::new();
    let out = Command::new(MOUNT_LAKEFS).arg(&s.lake).arg(&s.mnt).args(["-o", "rw,name=home"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Up as soon as the helper returned: no waiting.
    assert!(is_mounted(&s.mnt));
    let info = std::fs::read_to_string(s.mnt.join(".lake/info")).unwrap();
    assert!(info.contains("\"home\""), "{info}");
    std::fs::write(s.mnt.join("hello.txt"), b"hi").unwrap();
    assert_eq!(std::fs::read(s.lake.join("state/home/hello.txt")).unwrap(), b"hi");
    // umount ends the background daemon, which marks the volume cleanly unmounted.
    assert!(Command::new("umount").arg(&s.mnt).status().unwrap().success());
    assert!(eventually(|| s.lake.join("volumes/home/clean").exists()), "no clean-unmount marker");
}

#[test]
fn mount_helper_fails_with_a_reason() {
    let s = Setup::new();
    let not_a_lake = s.dir.path().join("nothing");
    std::fs::create_dir(&not_a_lake).unwrap();
    let out = Command::new(MOUNT_LAKEFS).arg(&not_a_lake).arg(&s.mnt).args(["-o", "name=home"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a lake"), "{err}");
    assert!(!is_mounted(&s.mnt));

    let out = Command::new(MOUNT_LAKEFS).arg(&s.lake).arg(&s.mnt).args(["-o", "name=home,bogus"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown mount option 'bogus'"), "{err}");

    let out = Command::new(MOUNT_LAKEFS).arg(&s.lake).arg(s.dir.path().join("no-such-dir")).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn foreground_mount_stops_on_sigterm() {
    if !lake_testkit::require_fuse() {
        return;
    }
    let s = Setup::new();
    let child = Command::new(LAKEFS)
        .args(["mount", "--foreground", "--name", "docs", "-o", "passthrough=off"])
        .arg(&s.lake)
        .arg(&s.mnt)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(eventually(|| s.mnt.join(".lake/info").exists()), "mount did not come up");
    std::fs::write(s.mnt.join("a.txt"), b"a").unwrap();
    assert!(s.lake.join("state/docs/a.txt").exists());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("passthrough off"), "{err}");
    assert!(err.contains("unmounted cleanly"), "{err}");
    assert!(!is_mounted(&s.mnt));
    assert!(s.lake.join("volumes/docs/clean").exists());
}

#[test]
fn help_names_the_options() {
    let out = Command::new(LAKEFS).args(["mount", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--foreground", "--name", "passthrough=on|off", "LAKE", "MOUNTPOINT", ".lake/at"] {
        assert!(help.contains(word), "lakefs mount --help lacks {word}:\n{help}");
    }
    let out = Command::new(MOUNT_LAKEFS).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("mount -t lakefs"));
}
