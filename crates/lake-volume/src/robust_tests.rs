//! Robustness of volume commits: paths longer than PATH_MAX below the working
//! tree, a path that cannot be read (left out, the rest committed, tried again
//! when it changes), and flushes while a file is still open for writing.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;

use super::*;
use lakefs::lake::CreateOptions;
use lakefs::tree::Node;

const MNT: &str = "/home";

fn lake() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    Lake::create(&lake, &CreateOptions::default()).expect("lake");
    (dir, lake)
}

fn daemon(lake: &Path) -> Arc<Daemon> {
    // A batch delay far beyond the test: only flushes commit.
    let opts = DaemonOptions { batch_delay: Duration::from_secs(3600), tick: Duration::from_millis(20) };
    Daemon::start_with(lake, "home", Path::new(MNT), opts).expect("daemon")
}

fn head_bytes(v: &Volume, rel: &str) -> Option<Vec<u8>> {
    let c = v.lake().read_commit(&v.head().expect("head").expect("has head")).expect("commit");
    match v.lake().lookup(&c.tree, rel).expect("lookup") {
        Some(Node::File { content, .. }) => {
            let mut out = Vec::new();
            v.lake().write_content(&content, &mut out).expect("content");
            Some(out)
        }
        _ => None,
    }
}

fn control(d: &Daemon, req: &str) -> serde_json::Value {
    serde_json::from_slice(&d.control(&Caller::root(), req.as_bytes())).expect("json reply")
}

/// Creates `dirs` nested directories below `base` and a file `name` with
/// `data` in the deepest, by *at calls (the whole path exceeds PATH_MAX);
/// returns the file's path relative to `base`.
fn make_deep(base: &Path, dirs: &[String], name: &str, data: &[u8]) -> String {
    let mut fd: OwnedFd = openat(AT_FDCWD, base, OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).expect("open base");
    for d in dirs {
        match nix::sys::stat::mkdirat(&fd, d.as_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => panic!("mkdirat {d}: {e}"),
        }
        fd = openat(&fd, d.as_str(), OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).expect("open dir");
    }
    let f = openat(&fd, name, OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC, Mode::from_bits_truncate(0o644))
        .expect("create file");
    nix::unistd::write(&f, data).expect("write");
    let mut rel = dirs.join("/");
    rel.push('/');
    rel.push_str(name);
    rel
}

#[test]
fn paths_longer_than_path_max_below_the_working_tree_are_committed() {
    let (_dir, lake) = lake();
    let v = Volume::open(&lake, "home", Path::new(MNT)).expect("volume");
    // 4089 bytes below the mount root: fits below /home, not below LAKE/state/home/.
    let dirs: Vec<String> = (0..20).map(|i| format!("{i:02}{}", "d".repeat(201))).collect();
    let rel = make_deep(v.work_dir(), &dirs, "leaf.txt", b"deep one");
    assert!(v.work_dir().join(&rel).as_os_str().len() > libc::PATH_MAX as usize);
    std::fs::write(v.work_dir().join("short.txt"), b"short").expect("write");
    // A full import (first commit) walks into it.
    v.commit_all("manual", "first").expect("full import with a long path");
    assert_eq!(head_bytes(&v, &rel).as_deref(), Some(&b"deep one"[..]));
    assert_eq!(head_bytes(&v, "short.txt").as_deref(), Some(&b"short"[..]));
    // An incremental commit of the long path itself, and a symlink next to it.
    make_deep(v.work_dir(), &dirs, "leaf.txt", b"changed deep");
    let out = v.commit_paths(&[rel.as_bytes().to_vec()], "close", "deep").expect("incremental commit of a long path");
    assert!(!out.unchanged);
    assert_eq!(head_bytes(&v, &rel).as_deref(), Some(&b"changed deep"[..]));
    // The deepest directory removed with the file: recorded as gone.
    let open_dir = |n: usize| {
        let mut fd: OwnedFd = openat(AT_FDCWD, v.work_dir(), OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).expect("open");
        for d in &dirs[..n] {
            fd = openat(&fd, d.as_str(), OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()).expect("open dir");
        }
        fd
    };
    nix::unistd::unlinkat(open_dir(dirs.len()), "leaf.txt", nix::unistd::UnlinkatFlags::NoRemoveDir).expect("unlink");
    nix::unistd::unlinkat(open_dir(dirs.len() - 1), dirs[dirs.len() - 1].as_str(), nix::unistd::UnlinkatFlags::RemoveDir).expect("rmdir");
    v.commit_paths(&[rel.as_bytes().to_vec()], "close", "gone").expect("commit of a removed long path");
    assert_eq!(head_bytes(&v, &rel), None);
    assert_eq!(head_bytes(&v, "short.txt").as_deref(), Some(&b"short"[..]));
}

/// Bind-mounts this process's /proc/PID/mem on `path`: a regular file (size 0
/// to stat) whose read fails with EIO, even for root. Unmounted on drop.
struct Unreadable(PathBuf);

impl Unreadable {
    fn new(path: &Path) -> Option<Unreadable> {
        let src = format!("/proc/{}/mem", std::process::id());
        let ok = std::process::Command::new("mount").arg("--bind").arg(&src).arg(path).status().is_ok_and(|s| s.success());
        ok.then(|| Unreadable(path.to_owned()))
    }
}

impl Drop for Unreadable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_unreadable_path_is_left_out_and_the_rest_committed() {
    let (_dir, lake) = lake();
    let d = daemon(&lake);
    let v = d.volume();
    let work = v.work_dir().to_owned();
    std::fs::create_dir_all(work.join("a")).expect("mkdir");
    std::fs::write(work.join("a/bad"), b"recorded before").expect("write");
    d.changed(b"a/bad");
    assert_eq!(control(&d, r#"{"op":"flush"}"#)["ok"], true);
    assert_eq!(head_bytes(v, "a/bad").as_deref(), Some(&b"recorded before"[..]));

    let Some(guard) = Unreadable::new(&work.join("a/bad")) else {
        assert!(!nix::unistd::geteuid().is_root(), "bind mount failed as root");
        eprintln!("skipping: bind mounts need root");
        return;
    };
    assert!(std::fs::read(work.join("a/bad")).is_err(), "the bind-mounted file reads");
    d.changed(b"a/bad");
    std::fs::write(work.join("a/good"), b"good").expect("write");
    d.changed(b"a/good");
    let r = control(&d, r#"{"op":"flush"}"#);
    assert_eq!(r["ok"], true, "flush with an unreadable path: {r}");
    assert_eq!(head_bytes(v, "a/good").as_deref(), Some(&b"good"[..]), "the rest is committed");
    assert_eq!(head_bytes(v, "a/bad").as_deref(), Some(&b"recorded before"[..]), "kept as recorded, not removed");
    let st = control(&d, r#"{"op":"status"}"#);
    assert_eq!(st["not_recorded"][0]["path"], "a/bad", "{st}");
    assert!(st["not_recorded"][0]["reason"].as_str().is_some_and(|r| r.contains("error")), "{st}");

    // The volume keeps committing, also a full rescan and a change of the directory.
    std::fs::write(work.join("later"), b"later").expect("write");
    d.changed(b"later");
    d.changed(b"a");
    assert_eq!(control(&d, r#"{"op":"flush"}"#)["ok"], true);
    assert_eq!(head_bytes(v, "later").as_deref(), Some(&b"later"[..]));
    let r = control(&d, r#"{"op":"reload"}"#);
    assert_eq!(r["ok"], true, "rescan with an unreadable path: {r}");
    assert_eq!(head_bytes(v, "a/bad").as_deref(), Some(&b"recorded before"[..]));

    // Readable again and changed: recorded, and no longer listed.
    drop(guard);
    std::fs::write(work.join("a/bad"), b"fixed").expect("write");
    d.changed(b"a/bad");
    assert_eq!(control(&d, r#"{"op":"flush"}"#)["ok"], true);
    assert_eq!(head_bytes(v, "a/bad").as_deref(), Some(&b"fixed"[..]));
    let st = control(&d, r#"{"op":"status"}"#);
    assert_eq!(st["not_recorded"], serde_json::json!([]), "{st}");
    d.shutdown().expect("shutdown");
}

#[test]
fn flush_and_commit_record_files_still_open_for_writing() {
    let (_dir, lake) = lake();
    let d = daemon(&lake);
    let v = d.volume();
    let work = v.work_dir().to_owned();
    // `echo x > f` through the mount: the release may come after the flush.
    d.opened_for_write(b"f");
    std::fs::write(work.join("f"), b"x\n").expect("write");
    d.changed(b"f");
    let r = control(&d, r#"{"op":"flush"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(head_bytes(v, "f").as_deref(), Some(&b"x\n"[..]), "flush records an open file");
    // Same for a commit of explicit paths.
    d.opened_for_write(b"g");
    std::fs::write(work.join("g"), b"y\n").expect("write");
    d.changed(b"g");
    let r = control(&d, r#"{"op":"commit","paths":["g"],"message":"m"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(head_bytes(v, "g").as_deref(), Some(&b"y\n"[..]), "commit records an open file");
    d.released(b"f");
    d.released(b"g");
    d.shutdown().expect("shutdown");
}

#[test]
fn an_unreadable_path_does_not_stop_the_mount() {
    let (_dir, lake) = lake();
    let work = lake.join(STATE_DIR).join("home");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("ok.txt"), b"ok").expect("write");
    std::fs::write(work.join("bad"), b"").expect("write");
    let Some(guard) = Unreadable::new(&work.join("bad")) else {
        assert!(!nix::unistd::geteuid().is_root(), "bind mount failed as root");
        eprintln!("skipping: bind mounts need root");
        return;
    };
    // First mount (initial import), then a clean remount (rescan) and one after a crash.
    for round in ["initial", "clean", "crash"] {
        let d = daemon(&lake);
        assert_eq!(head_bytes(d.volume(), "ok.txt").as_deref(), Some(&b"ok"[..]), "{round}");
        assert_eq!(head_bytes(d.volume(), "bad"), None, "{round}");
        let st = control(&d, r#"{"op":"status"}"#);
        assert_eq!(st["not_recorded"][0]["path"], "bad", "{round}: {st}");
        d.shutdown().expect("shutdown");
        if round == "clean" {
            // Unmounted without the marker: the next start recovers.
            let m = d.volume().state_dir().join(CLEAN_MARKER);
            std::fs::remove_file(&m).expect("remove marker");
        }
    }
    drop(guard);
}
