//! Restore planning against a working copy and a past version laid out in two
//! temp directories (the daemon's `tree` reply written by hand).

use super::*;
use serde_json::json;
use std::os::unix::fs::symlink;

fn file(name: &str, bytes: &[u8]) -> Value {
    json!({"name": name, "kind": "file", "size": bytes.len(), "chunked": false,
           "content": ObjectId::hash(bytes).to_string(), "meta": {"mode": 0o600}})
}

fn dir(name: &str, entries: Vec<Value>) -> Value {
    json!({"name": name, "kind": "dir", "entries": entries})
}

/// The version: `a.txt` "old", `sub/b.txt` "b", link `l -> a.txt`, a hidden `secret`.
fn version() -> Value {
    dir(
        "",
        vec![
            file("a.txt", b"old"),
            dir("sub", vec![file("b.txt", b"b")]),
            json!({"name": "l", "kind": "symlink", "target": "a.txt"}),
            json!({"name": "secret", "kind": "hidden"}),
        ],
    )
}

fn past_dir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("a.txt"), b"old").unwrap();
    std::fs::create_dir(t.path().join("sub")).unwrap();
    std::fs::write(t.path().join("sub/b.txt"), b"b").unwrap();
    symlink("a.txt", t.path().join("l")).unwrap();
    t
}

#[test]
fn an_equal_tree_needs_no_steps() {
    let past = past_dir();
    let now = past_dir();
    let steps = plan(&Past::in_dir(past.path()), b"", now.path(), &version()).unwrap();
    assert_eq!(steps, vec![]);
}

#[test]
fn changed_missing_and_extra_paths_are_planned_and_applied() {
    let past = past_dir();
    let now = tempfile::tempdir().unwrap();
    let root = now.path();
    std::fs::write(root.join("a.txt"), b"new").unwrap();
    std::fs::write(root.join("extra"), b"x").unwrap();
    std::fs::write(root.join("secret"), b"mine").unwrap();
    std::fs::write(root.join("l"), b"not a link").unwrap();
    std::fs::create_dir_all(root.join(".lake")).unwrap();
    let p = Past::in_dir(past.path());
    let steps = plan(&p, b"", root, &version()).unwrap();
    let w = |s: &str, size| Step::Write { path: s.into(), size };
    let rm = |s: &str| Step::Remove { path: s.into() };
    assert_eq!(
        steps,
        vec![
            rm("extra"),
            w("a.txt", 3),
            Step::Mkdir { path: b"sub".to_vec() },
            w("sub/b.txt", 1),
            rm("l"),
            Step::Symlink { path: b"l".to_vec(), target: b"a.txt".to_vec() },
        ],
        "hidden `secret` and the driver's `.lake` are left alone"
    );
    apply(&p, root, b"", &version(), &steps).unwrap();
    assert_eq!(std::fs::read(root.join("a.txt")).unwrap(), b"old");
    assert_eq!(std::fs::metadata(root.join("a.txt")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::read(root.join("sub/b.txt")).unwrap(), b"b");
    assert_eq!(std::fs::read_link(root.join("l")).unwrap(), Path::new("a.txt"));
    assert!(!root.join("extra").exists());
    assert_eq!(std::fs::read(root.join("secret")).unwrap(), b"mine");
    assert_eq!(plan(&p, b"", root, &version()).unwrap(), vec![], "applied: nothing left to do");
}

#[test]
fn kept_paths_are_not_removed() {
    let mut steps = vec![Step::Remove { path: b"cache".to_vec() }, Step::Remove { path: b"x".to_vec() }];
    assert_eq!(removals(&steps), vec![b"cache".as_slice(), b"x".as_slice()]);
    keep_paths(&mut steps, &HashSet::from([b"cache".to_vec()]));
    assert_eq!(steps, vec![Step::Remove { path: b"x".to_vec() }]);
}

#[test]
fn a_step_outside_the_version_is_a_typed_error() {
    let past = past_dir();
    let now = tempfile::tempdir().unwrap();
    let steps = vec![Step::Write { path: b"nope".to_vec(), size: 1 }];
    let e = apply(&Past::in_dir(past.path()), now.path(), b"", &version(), &steps).unwrap_err();
    assert!(matches!(&e, RestoreError::NotInVersion { path } if path == b"nope"), "{e}");
}

#[test]
fn a_bad_content_id_names_the_reply() {
    let past = past_dir();
    let now = past_dir();
    let mut v = version();
    v["entries"][0]["content"] = json!("b3:zz");
    let e = plan(&Past::in_dir(past.path()), b"", now.path(), &v).unwrap_err();
    assert!(matches!(e, RestoreError::BadReply { what: "a content id", .. }), "{e}");
}
