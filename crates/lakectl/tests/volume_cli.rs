//! `lakectl commit/log/restore/zone/status` inside a real `lakefs mount`: files
//! written and checked through the mount, history read from the lake. Needs
//! /dev/fuse and root (skipped otherwise, with a note).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::mount;

fn run(args: &[&str]) -> Output {
    Command::new(crate::common::lakectl()).env_remove("LAKE").args(args).output().expect("run lakectl")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "lakectl {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lakectl {args:?} --json: {e}: {out}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn commit_log_restore_zone_status_in_a_mount() {
    let Some(m) = mount() else { return };
    let p = |rel: &str| m.mnt.join(rel);
    std::fs::create_dir_all(p("alice/dir")).expect("mkdir");
    let notes = p("alice/notes.txt");

    // Two files in one commit; then a second version of one.
    std::fs::write(&notes, "version one\n").expect("write");
    std::fs::write(p("alice/todo.txt"), "todo\n").expect("write");
    let first = ok(&["commit", s(&notes), s(&p("alice/todo.txt")), "-m", "first"]).trim().to_owned();
    assert!(first.starts_with("b3:"), "{first}");
    std::fs::write(&notes, "version two, longer\n").expect("write");
    let second = ok(&["commit", s(&notes), "-m", "second"]).trim().to_owned();
    assert_ne!(first, second);

    // The file's log, newest first.
    let log = json(&["log", s(&notes)]);
    let versions = log["versions"].as_array().expect("versions");
    assert_eq!(versions[0]["commit"], second.as_str());
    assert_eq!(versions[0]["trigger"], "manual");
    assert_eq!(versions[0]["size"], 20);
    assert!(versions.iter().any(|v| v["commit"] == first.as_str() && v["size"] == 12));
    let text = ok(&["log", s(&notes)]);
    assert!(text.lines().next().expect("a line").contains("manual"), "{text}");
    // A revision that is not a path keeps the old meaning.
    let lake = s(&m.lake);
    assert!(ok(&["--lake", lake, "--ref", "home/main", "log", "-n", "1", "home/main"]).contains(&second[3..15]));

    // Restore by commit id, through the mount; the restore is a commit of its own.
    let dry = run(&["restore", s(&notes), "--to", &first, "--dry-run"]);
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stderr).contains("write   alice/notes.txt"), "{}", String::from_utf8_lossy(&dry.stderr));
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "version two, longer\n", "a dry run changes nothing");
    ok(&["restore", s(&notes), "--to", &first]);
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "version one\n");
    let log = json(&["log", s(&notes)]);
    assert_eq!(log["versions"][0]["trigger"], "restore");

    // A deleted file comes back.
    std::fs::remove_file(&notes).expect("rm");
    ok(&["commit", s(&notes), "-m", "gone"]);
    assert_eq!(json(&["log", s(&notes)])["versions"][0]["kind"], "deleted");
    ok(&["restore", s(&notes), "--to", &second]);
    assert_eq!(std::fs::read_to_string(&notes).expect("read"), "version two, longer\n");

    // A directory gets its subtree back: changed files rewritten, new ones removed.
    std::fs::write(p("alice/dir/a"), "a\n").expect("write");
    std::fs::write(p("alice/dir/b"), "b\n").expect("write");
    let dir_v1 = ok(&["commit", s(&p("alice/dir")), "-m", "dir"]).trim().to_owned();
    std::fs::write(p("alice/dir/a"), "changed\n").expect("write");
    std::fs::write(p("alice/dir/c"), "new\n").expect("write");
    std::fs::remove_file(p("alice/dir/b")).expect("rm");
    ok(&["restore", s(&p("alice/dir")), "--to", &dir_v1]);
    assert_eq!(std::fs::read_to_string(p("alice/dir/a")).expect("read"), "a\n");
    assert_eq!(std::fs::read_to_string(p("alice/dir/b")).expect("read"), "b\n");
    assert!(!p("alice/dir/c").exists());

    // Zones: a POSIX override leaves a path out of history.
    std::fs::create_dir_all(p("alice/build")).expect("mkdir");
    let set = json(&["zone", "set", s(&p("alice/build")), "posix"]);
    assert_eq!((set["was"].as_str(), set["zone"].as_str()), (Some("lake"), Some("posix")));
    assert_eq!(ok(&["zone", "show", s(&p("alice/build/x.o"))]).trim(), "posix");
    std::fs::write(p("alice/build/x.o"), "obj").expect("write");
    let c = ok(&["commit", s(&p("alice/build/x.o")), "-m", "try"]);
    assert!(c.starts_with("b3:"));
    assert!(json(&["log", s(&p("alice/build/x.o"))])["versions"].as_array().expect("versions").is_empty());
    assert!(run(&["restore", s(&p("alice/build/x.o")), "--to", &first]).status.code() != Some(0));

    // Status inside the mount.
    let st = json(&["status", s(&p("alice"))]);
    assert_eq!(st["volume"], "home");
    assert_eq!(st["zone"], "lake");
    assert_eq!(st["path"], "alice");
    assert!(st["conflicts"].as_array().expect("conflicts").is_empty());
    assert!(st["head"].as_str().expect("head").starts_with("b3:"));
    // FUSE passthrough: granted by kernels from 6.9 on (the daemon's handshake says).
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut v = release.trim().split(|c: char| !c.is_ascii_digit()).map(|n| n.parse::<u32>().unwrap_or(0));
    let kernel = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    assert_eq!(st["passthrough"], serde_json::json!(kernel >= (6, 9)), "kernel {release}: {st}");
    let text = ok(&["status", s(&p("alice/build"))]);
    assert!(text.contains("zone posix"), "{text}");

    // Not in a mount: a clear error.
    let out = run(&["restore", "/proc/version", "--to", "1 min ago"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not inside a lakefs mount"));
}

/// After the daemon is killed, lakectl says the mount is dead and what to run
/// (not "/lake is not a lake"), and mounting again over the dead mount works.
#[test]
fn a_dead_mount_is_diagnosed_and_can_be_mounted_over() {
    let Some(m) = crate::common::mount() else { return };
    std::fs::write(m.mnt.join("kept.txt"), "kept\n").expect("write");
    ok(&["commit", s(&m.mnt.join("kept.txt")), "-m", "before the kill"]);
    let pid = String::from_utf8_lossy(
        &Command::new("pgrep").args(["-f", &format!("lakefs mount {}", m.lake.display())]).output().expect("pgrep").stdout,
    )
    .lines()
    .next()
    .expect("the daemon runs")
    .trim()
    .to_owned();
    assert!(Command::new("kill").args(["-9", &pid]).status().expect("kill").success());
    // The kernel aborts the connection once the daemon's threads are gone.
    let dead = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        matches!(nix::sys::statfs::statfs(&m.mnt), Err(nix::errno::Errno::ENOTCONN))
    });
    assert!(dead, "the mount is dead after the kill");
    let out =
        Command::new(crate::common::lakectl()).arg("log").current_dir(&m.mnt).env("LAKE", "/nonexistent-lake").output().expect("lakectl");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("daemon has exited") && err.contains("umount -l") && !err.contains("not a lake"), "{err}");
    let out = Command::new(crate::common::lakectl()).args(["log"]).arg(m.mnt.join("kept.txt")).output().expect("lakectl");
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon has exited"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(crate::common::sibling("lakefs")).arg("mount").arg(&m.lake).arg(&m.mnt).output().expect("lakefs mount");
    assert!(out.status.success(), "mount over the dead mount: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead lakefs mount"), "says what it did");
    assert_eq!(std::fs::read_to_string(m.mnt.join("kept.txt")).expect("read"), "kept\n");
    assert!(ok(&["log", s(&m.mnt.join("kept.txt"))]).contains("before the kill"));
}
