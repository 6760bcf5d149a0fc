//! Views and search in a real `lakefs mount`: files written through the mount,
//! committed with `lakectl commit` (which indexes before it returns), a view created from a path in the
//! mount and read back as `<mount>/views/NAME/`. Needs /dev/fuse and root
//! (skipped otherwise, with a note).

use std::path::Path;
use std::process::{Command, Output};

use lake_catalog::props::testdata::jpeg_with_exif;

use crate::common::mount;

fn run(args: &[&str]) -> Output {
    Command::new(crate::common::lakectl()).env_remove("LAKE").args(args).output().expect("run lakectl")
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "lakectl {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Names in a view directory and where their symlinks point, sorted.
fn view_dir(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("read view dir")
        .map(|e| {
            let e = e.expect("entry");
            let target = std::fs::read_link(e.path()).expect("entries are symlinks");
            (e.file_name().to_string_lossy().into_owned(), target.to_string_lossy().into_owned())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn views_and_search_in_a_mount() {
    let Some(m) = mount() else { return };
    let p = |rel: &str| m.mnt.join(rel);
    std::fs::create_dir_all(p("alice/photos")).expect("mkdir");
    std::fs::create_dir_all(p("alice/notes")).expect("mkdir");
    let june = jpeg_with_exif("2025:06:14 10:22:01", 640, 480);
    std::fs::write(p("alice/photos/beach.jpg"), &june).expect("write");
    std::fs::write(p("alice/photos/ski.jpg"), jpeg_with_exif("2025:02:01 09:00:00", 640, 480)).expect("write");
    std::fs::write(p("alice/notes/todo.md"), "buy quinoa and kiwi\n").expect("write");
    let files = ["alice/photos/beach.jpg", "alice/photos/ski.jpg", "alice/notes/todo.md"].map(p);
    let mut args = vec!["commit"];
    args.extend(files.iter().map(|f| s(f)));
    args.extend(["-m", "photos and notes"]);
    ok(&args);

    // The volume is found from a path in the mount.
    let q = "type = image and taken >= 2025-06-01 and taken < 2025-07-01";
    let out = ok(&["view", "create", "june", "--query", q, s(&p("alice"))]);
    assert!(out.contains("1 file matches"), "{out}");
    let dir = p("views/june");
    assert_eq!(view_dir(&dir), [("beach.jpg".to_owned(), "../../alice/photos/beach.jpg".to_owned())]);
    assert_eq!(std::fs::read(dir.join("beach.jpg")).expect("read through the view"), june);

    let hits: serde_json::Value = serde_json::from_str(&ok(&["--json", "search", "quinoa", "--in", s(&m.mnt)])).expect("json");
    let paths: Vec<&str> = hits.as_array().expect("array").iter().map(|h| h["path"].as_str().unwrap_or("")).collect();
    assert_eq!(paths, ["alice/notes/todo.md"]);
    assert!(hits[0]["snippet"].as_str().unwrap_or("").contains("[quinoa]"), "{hits}");

    // A second June photo elsewhere under the same name; the first one deleted: the view follows.
    std::fs::create_dir_all(p("bob")).expect("mkdir");
    std::fs::write(p("bob/beach.jpg"), jpeg_with_exif("2025:06:20 08:00:00", 10, 10)).expect("write");
    ok(&["commit", s(&p("bob/beach.jpg")), "-m", "bob"]);
    let names: Vec<String> = view_dir(&dir).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["beach.jpg", "beach~bob.jpg"]);
    std::fs::remove_file(p("alice/photos/beach.jpg")).expect("rm");
    std::fs::remove_file(p("alice/notes/todo.md")).expect("rm");
    ok(&["commit", s(&p("alice/photos/beach.jpg")), s(&p("alice/notes/todo.md")), "-m", "gone"]);
    // bob's photo now has the plain name, and the symlink (a new inode, since the
    // kernel caches symlink targets per inode) points at it.
    assert_eq!(view_dir(&dir), [("beach.jpg".to_owned(), "../../bob/beach.jpg".to_owned())]);
    let show: serde_json::Value = serde_json::from_str(&ok(&["--json", "view", "show", "june", s(&m.mnt)])).expect("json");
    assert_eq!(show["entries"], serde_json::json!([{ "name": "beach.jpg", "path": "bob/beach.jpg" }]));
    let hits: serde_json::Value = serde_json::from_str(&ok(&["--json", "search", "quinoa", "--in", s(&m.mnt)])).expect("json");
    assert_eq!(hits.as_array().map(|a| a.len()), Some(0), "{hits}");

    ok(&["view", "delete", "june", s(&m.mnt)]);
    assert!(!dir.exists(), "a deleted view's directory goes");
}
