//! Branches and merges through a real `lakefs mount`: the working copy is
//! changed through the FUSE mount and committed by the daemon's flush, as
//! lakectl does. Needs /dev/fuse and root (`lake_testkit::require_fuse`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use lake_volume::branch::{self, Workdir};
use lake_volume::{control, merge};
use lakefs::lake::Lake;
use lakefs::ObjectId;

fn flush(mnt: &Path) -> lakefs::Result<ObjectId> {
    let v = control::request(mnt, &serde_json::json!({"op": "flush", "trigger": "switch", "message": "test"}))?;
    v["commit"].as_str().unwrap_or_default().parse()
}

fn lines(ls: &[&str]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn switch_and_merge_through_the_mount() {
    let Some(m) = lake_testkit::Mounted::fresh() else { return };
    let lake = Lake::open(&m.lake).expect("open lake");
    let p = |rel: &str| m.mnt.join(rel);
    std::fs::create_dir_all(p("proj/sub")).expect("mkdir");
    std::fs::write(p("proj/notes.txt"), lines(&["one", "two", "three", "four", "five"])).expect("write");
    std::fs::write(p("proj/sub/data.bin"), [0u8, 1, 2, 3]).expect("write");
    std::os::unix::fs::symlink("notes.txt", p("proj/link")).expect("symlink");
    std::fs::set_permissions(p("proj/notes.txt"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let mut f = || flush(&m.mnt);
    let mut wd = Workdir { root: &m.mnt, flush: &mut f };

    branch::create(&lake, "home", "proj", "exp", &mut wd).expect("create");
    let notes_md = std::fs::symlink_metadata(p("proj/notes.txt")).expect("stat");
    branch::switch(&lake, "home", "exp", None, &mut wd, false).expect("switch to exp");
    std::fs::write(p("proj/notes.txt"), lines(&["ONE", "two", "three", "four", "five"])).expect("write");
    std::fs::remove_file(p("proj/sub/data.bin")).expect("rm");
    std::fs::write(p("proj/added.txt"), "added on exp\n").expect("write");

    let out = branch::switch(&lake, "home", "main", Some("proj"), &mut wd, false).expect("switch to main");
    assert!(out.saved.is_some());
    assert_eq!(std::fs::read_to_string(p("proj/notes.txt")).expect("read"), lines(&["one", "two", "three", "four", "five"]));
    let md = std::fs::symlink_metadata(p("proj/notes.txt")).expect("stat");
    assert_eq!((md.mode() & 0o7777, md.mtime(), md.mtime_nsec()), (0o640, notes_md.mtime(), notes_md.mtime_nsec()));
    assert_eq!(std::fs::read(p("proj/sub/data.bin")).expect("read"), [0, 1, 2, 3]);
    assert!(!p("proj/added.txt").exists());
    assert_eq!(std::fs::read_link(p("proj/link")).expect("readlink"), Path::new("notes.txt"));
    // The volume's history holds main's version again.
    let head = lake.get_ref("home/main").expect("ref").expect("head");
    let tree = lake.read_commit(&head).expect("commit").tree;
    assert!(lake.lookup(&tree, "proj/added.txt").expect("lookup").is_none());

    // Same line on both sides: a conflict, resolved by a commit of the file.
    std::fs::write(p("proj/notes.txt"), lines(&["ONE from main", "two", "three", "four", "FIVE"])).expect("write");
    let out = merge::merge(&lake, "home", "exp", None, &mut wd, false).expect("merge");
    assert_eq!(out.conflicts.len(), 1, "{:?}", out.conflicts);
    let text = std::fs::read_to_string(p("proj/notes.txt")).expect("read");
    assert!(text.contains("<<<<<<< ours (main)\nONE from main\n=======\nONE\n>>>>>>> theirs (exp)\n"), "{text}");
    assert!(text.ends_with("four\nFIVE\n"), "the other change merged cleanly: {text}");
    assert_eq!(std::fs::read_to_string(p("proj/added.txt")).expect("read"), "added on exp\n");
    assert!(!p("proj/sub/data.bin").exists(), "deleted on exp, unchanged on main");
    assert!(branch::switch(&lake, "home", "exp", None, &mut wd, false).is_err(), "no switching with conflicts");

    std::fs::write(p("proj/notes.txt"), lines(&["ONE", "two", "three", "four", "FIVE"])).expect("write");
    let v =
        control::request(&m.mnt, &serde_json::json!({"op": "commit", "paths": ["proj/notes.txt"], "message": "resolved"})).expect("commit");
    // The daemon's commit calls branch::on_commit: the conflict clears and the merge completes.
    assert_eq!(v["branches"]["resolved"], serde_json::json!(["proj/notes.txt"]), "{v}");
    assert_eq!(v["branches"]["merged"].as_array().map(Vec::len), Some(1), "{v}");
    let tip = branch::find(&lake, "home", "main", Some("proj")).expect("main").tip.expect("tip");
    let c = lake.read_commit(&tip).expect("commit");
    assert_eq!(c.parents.len(), 2);
    assert!(branch::conflicts(&lake, "home").expect("conflicts").is_empty());
}
