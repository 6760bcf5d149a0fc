//! History: incremental commits, diffs, revisions, gc.

use crate::common::*;
use std::path::Path;

fn tree_of(lake: &Path, rev: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&ok(lake, &["show", rev, "--json"])).unwrap();
    v["tree"].as_str().unwrap().to_owned()
}

#[test]
fn change_list_commit_equals_full_commit() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    special_tree(&src);
    ok(&lake, &["init"]);
    commit(&lake, &src, "base");
    // Change a few things the way a package upgrade would.
    std::fs::write(src.join("sub/file9"), b"rewritten").unwrap();
    std::fs::remove_file(src.join("sub/file10")).unwrap();
    std::fs::create_dir_all(src.join("newdir/inner")).unwrap();
    std::fs::write(src.join("newdir/inner/x"), b"new").unwrap();
    std::fs::remove_dir_all(src.join("sub/deeper/empty")).unwrap();
    std::fs::write(src.join("text.txt"), b"changed text").unwrap();
    let list = t.path().join("changed");
    std::fs::write(&list, "sub/file9\nsub/file10\nnewdir\n./newdir/inner/x\nsub/deeper/empty\ntext.txt\n").unwrap();
    ok(&lake, &["--ref", "incr", "commit", path_str(&src), "-m", "base-copy"]);
    ok(&lake, &["refs", "--delete", "incr"]);
    // Incremental on main from the change list, full on a second ref: same tree.
    let inc: serde_json::Value =
        serde_json::from_str(&ok(&lake, &["commit", path_str(&src), "--changed", path_str(&list), "--json", "-m", "incremental"])).unwrap();
    // Only the listed paths were scanned: 3 files (file9, text.txt, newdir/inner/x), not the tree's 40+.
    assert_eq!(inc["stats"]["files"], 3, "{inc}");
    ok(&lake, &["--ref", "full", "commit", path_str(&src), "-m", "full"]);
    assert_eq!(tree_of(&lake, "main"), tree_of(&lake, "full"), "incremental and full imports agree");
    let diff = ok(&lake, &["diff", "main~1", "main"]);
    for line in ["M /sub/file9", "D /sub/file10", "A /newdir", "A /newdir/inner/x", "D /sub/deeper/empty", "M /text.txt"] {
        assert!(diff.lines().any(|l| l == line), "diff lacks '{line}':\n{diff}");
    }
    // Directories whose entries changed show as metadata changes; untouched ones not at all.
    assert!(!diff.contains("/sub/deeper/file3-link"), "{diff}");
}

#[test]
fn metadata_only_changes_and_unchanged_trees() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    special_tree(&src);
    ok(&lake, &["init"]);
    let first = commit(&lake, &src, "one");
    // Nothing changed: no new commit.
    let again = commit(&lake, &src, "same");
    assert_eq!(first, again);
    std::process::Command::new("chmod").arg("0640").arg(src.join("sub/file12")).status().unwrap();
    commit(&lake, &src, "chmod");
    let diff = ok(&lake, &["diff", &first, "main"]);
    assert!(diff.lines().any(|l| l == "m /sub/file12"), "{diff}");
    let j: serde_json::Value = serde_json::from_str(&ok(&lake, &["diff", &first, "main", "--json"])).unwrap();
    assert!(j["changes"].as_array().unwrap().iter().any(|c| c["kind"] == "metadata" && c["path"] == "/sub/file12"));
}

#[test]
fn revisions_by_id_prefix_ancestry_and_time() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "v1").unwrap();
    ok(&lake, &["init"]);
    let c1 = commit(&lake, &src, "one");
    std::fs::write(src.join("f"), "v2").unwrap();
    let c2 = commit(&lake, &src, "two");
    assert_eq!(ok(&lake, &["cat", &format!("/f@{c1}")]), "v1");
    assert_eq!(ok(&lake, &["cat", &format!("/f@{}", &c1[3..15])]), "v1", "hex prefix without b3:");
    assert_eq!(ok(&lake, &["cat", "/f@main~1"]), "v1");
    assert_eq!(ok(&lake, &["cat", "/f@main"]), "v2");
    assert_eq!(ok(&lake, &["cat", "/f"]), "v2");
    // Times: both commits are newer than an hour ago, so that resolves to nothing.
    let out = run(&lake, &["cat", "/f@2h ago"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no commit on 'main' at or before"));
    // 'before:' a time after both commits is the newest; an ISO time far ahead too.
    assert_eq!(ok(&lake, &["cat", "/f@before:2100-01-01T00:00:00Z"]), "v2");
    assert_eq!(ok(&lake, &["cat", "/f@main@{2100-01-01}"]), "v2");
    let log: serde_json::Value = serde_json::from_str(&ok(&lake, &["log", "--json"])).unwrap();
    let ids: Vec<&str> = log.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![c2.as_str(), c1.as_str()]);
    let bad = run(&lake, &["show", "no-such-thing"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown revision 'no-such-thing'"));
}

#[test]
fn gc_drops_unreachable_and_keeps_the_rest() {
    let t = tempfile::tempdir().unwrap();
    let (src, other, lake) = (t.path().join("src"), t.path().join("other"), t.path().join("lake"));
    special_tree(&src);
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("unique.bin"), bytes(99, 4 << 20)).unwrap();
    ok(&lake, &["init"]);
    commit(&lake, &src, "keep");
    ok(&lake, &["--ref", "scratch", "commit", path_str(&other), "-m", "drop me"]);
    let before: serde_json::Value = serde_json::from_str(&ok(&lake, &["stats", "--json"])).unwrap();
    let dry: serde_json::Value = serde_json::from_str(&ok(&lake, &["gc", "--dry-run", "--json"])).unwrap();
    assert_eq!(dry["objects_dropped"], 0, "nothing unreachable yet: {dry}");
    ok(&lake, &["refs", "--delete", "scratch"]);
    let r: serde_json::Value = serde_json::from_str(&ok(&lake, &["gc", "--json"])).unwrap();
    assert!(r["objects_dropped"].as_u64().unwrap() >= 40, "4 MiB of unique chunks went: {r}");
    assert_eq!(r["commits_dropped"], 1);
    let after: serde_json::Value = serde_json::from_str(&ok(&lake, &["stats", "--json"])).unwrap();
    assert!(after["pack_bytes"].as_u64().unwrap() + (4 << 20) - 65536 <= before["pack_bytes"].as_u64().unwrap(), "{before} -> {after}");
    assert_eq!(after["packs"], 1, "repacked into one pack");
    ok(&lake, &["verify"]);
    let out = t.path().join("out");
    ok(&lake, &["checkout", "main", path_str(&out)]);
    assert_same(&snapshot(&src), &snapshot(&out), true);
}
