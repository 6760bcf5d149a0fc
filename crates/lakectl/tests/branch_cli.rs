//! `lakectl branch` and `lakectl merge` end to end: a real `lakefs mount`, the
//! commands run inside it, files checked through the mount and commits in the
//! lake. Needs /dev/fuse and root (skipped otherwise, with a note).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::mount;

/// Runs lakectl in `cwd` (the mount), without --lake: the mount names its lake.
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(crate::common::lakectl()).current_dir(cwd).env_remove("LAKE").args(args).output().expect("run lakectl")
}

fn ok_in(cwd: &Path, args: &[&str]) -> String {
    let out = run_in(cwd, args);
    assert!(out.status.success(), "lakectl {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_in(cwd: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ok_in(cwd, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lakectl {args:?} --json: {e}: {out}"))
}

#[test]
fn branch_switch_merge_conflict_commit() {
    let Some(m) = mount() else { return };
    let p = |rel: &str| m.mnt.join(rel);
    std::fs::create_dir(p("proj")).expect("mkdir");
    std::fs::write(p("proj/notes.txt"), "one\ntwo\nthree\n").expect("write");
    std::fs::write(p("proj/keep.txt"), "keep\n").expect("write");

    // A branch that does not exist: the library names it, the CLI says what to run.
    let missing = run_in(&m.mnt, &["branch", "switch", "nosuch"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no branch 'nosuch' in volume 'home'") && err.contains("hint: see `lakectl branch list`"), "{err}");

    let created = json_in(&m.mnt, &["branch", "create", "proj", "--name", "exp", "--switch"]);
    assert_eq!(created["branch"]["name"], "exp");
    assert_eq!(created["branch"]["scope"], "proj");
    std::fs::write(p("proj/notes.txt"), "one\ntwo on exp\nthree\n").expect("write");
    std::fs::write(p("proj/new.txt"), "new on exp\n").expect("write");

    // Back to main from inside the scope: the dry run lists, the switch changes.
    let preview = ok_in(&p("proj"), &["branch", "switch", "main", "--path", ".", "--dry-run"]);
    assert!(preview.contains("D ") && preview.contains("new.txt"), "{preview}");
    assert_eq!(std::fs::read_to_string(p("proj/new.txt")).expect("read"), "new on exp\n", "a dry run changes nothing");
    let out = ok_in(&p("proj"), &["branch", "switch", "main", "--path", "."]);
    assert!(out.contains("from 'exp' to 'main'"), "{out}");
    assert_eq!(std::fs::read_to_string(p("proj/notes.txt")).expect("read"), "one\ntwo\nthree\n");
    assert!(!p("proj/new.txt").exists());

    std::fs::write(p("proj/notes.txt"), "one\ntwo on main\nthree\n").expect("write");
    let out = ok_in(&m.mnt, &["merge", "exp"]);
    assert!(out.contains("1 conflict(s)"), "{out}");
    let text = std::fs::read_to_string(p("proj/notes.txt")).expect("read");
    assert!(text.contains("<<<<<<< ours (main)\ntwo on main\n=======\ntwo on exp\n>>>>>>> theirs (exp)\n"), "{text}");
    assert_eq!(std::fs::read_to_string(p("proj/new.txt")).expect("read"), "new on exp\n");
    let status = json_in(&m.mnt, &["status", "proj"]);
    assert_eq!(status["conflicts"][0]["path"], "proj/notes.txt", "{status}");
    let refused = run_in(&m.mnt, &["branch", "switch", "exp"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unresolved conflicts"));

    std::fs::write(p("proj/notes.txt"), "one\ntwo on both\nthree\n").expect("write");
    ok_in(&m.mnt, &["commit", "proj/notes.txt", "-m", "resolved"]);
    let list = json_in(&m.mnt, &["branch", "list"]);
    assert_eq!(list["conflicts"], serde_json::json!([]), "{list}");
    let main = list["branches"].as_array().and_then(|b| b.iter().find(|b| b["name"] == "main")).expect("main").clone();
    assert_eq!(main["current"], true);
    let tip: lakefs::ObjectId = main["tip"].as_str().expect("tip").parse().expect("id");
    let lake = lakefs::Lake::open(&m.lake).expect("open lake");
    let c = lake.read_commit(&tip).expect("merge commit");
    assert_eq!(c.parents.len(), 2, "the resolved merge has two parents");
    assert_eq!(c.message, "resolved");

    ok_in(&m.mnt, &["branch", "delete", "exp"]);
    assert!(lake.get_ref("home/branch/exp").expect("ref").is_none());
}
