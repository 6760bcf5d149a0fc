//! Import then checkout must give back the same tree: content, modes, owners,
//! mtimes, xattrs (security.capability too), hard links, devices, fifos, sockets.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;

#[test]
fn special_tree_round_trips_exactly_as_copies() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake, out) = (t.path().join("src"), t.path().join("lake"), t.path().join("out"));
    special_tree(&src);
    ok(&lake, &["init"]);
    let id = commit(&lake, &src, "special");
    assert!(id.starts_with("b3:") && id.len() == 67, "commit id printed: {id}");
    ok(&lake, &["checkout", "main", path_str(&out)]);
    let (a, b) = (snapshot(&src), snapshot(&out));
    assert!(a.len() > 50, "the tree has every kind: {}", a.len());
    assert_same(&a, &b, true);
    // The capability survived (chown during checkout would have cleared it if done after).
    assert!(b["sub/file5"].xattrs.iter().any(|(k, _)| k == b"security.capability"));
    ok(&lake, &["verify"]);
}

#[test]
fn loose_import_and_hardlink_checkout_share_inodes() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake, out) = (t.path().join("src"), t.path().join("lake"), t.path().join("out"));
    special_tree(&src);
    ok(&lake, &["init"]);
    ok(&lake, &["commit", path_str(&src), "--loose", "-m", "posix"]);
    ok(&lake, &["checkout", "--hardlink", "main", path_str(&out)]);
    let (a, b) = (snapshot(&src), snapshot(&out));
    // Content and metadata are exact; inode sharing may only coarsen (identical
    // content and metadata become one inode), so links are compared separately.
    assert_same(&a, &b, false);
    for (path, info) in &a {
        for other in &info.links {
            let (x, y) = (std::fs::symlink_metadata(out.join(path)).unwrap(), std::fs::symlink_metadata(out.join(other)).unwrap());
            assert_eq!(x.ino(), y.ino(), "{path} and {other} are hard links in the source");
        }
    }
    // Files are the store's objects: one more link than the checkout accounts for.
    let md = std::fs::metadata(out.join("text.txt")).unwrap();
    assert!(md.nlink() >= 2, "text.txt is hard-linked into the lake's objects (nlink {})", md.nlink());
    // Content is stored once: nothing went to packs but trees and the commit.
    let stats: serde_json::Value = serde_json::from_str(&ok(&lake, &["stats", "--json"])).unwrap();
    assert!(stats["loose_objects"].as_i64().unwrap() >= 40);
    assert_eq!(stats["data_objects"].as_i64().unwrap(), 0, "{stats}");
    ok(&lake, &["verify"]);
}

#[test]
fn debian_rootfs_round_trips_exactly() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("rootfs"), t.path().join("lake"));
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let st = std::process::Command::new("bash")
        .arg(root.join("ci/debian-rootfs.sh"))
        .arg("--extract")
        .arg(&src)
        .status()
        .expect("run ci/debian-rootfs.sh");
    assert!(st.success(), "ci/debian-rootfs.sh --extract failed");
    let a = snapshot(&src);
    assert!(a.len() > 8000, "a real rootfs: {} entries", a.len());
    ok(&lake, &["init"]);
    commit(&lake, &src, "debian");
    for (mode, dir) in [("copy", "out-copy"), ("hardlink", "out-link")] {
        let out = t.path().join(dir);
        let mut args = vec!["checkout", "main", path_str(&out)];
        if mode == "hardlink" {
            args.insert(1, "--hardlink");
        }
        ok(&lake, &args);
        assert_same(&a, &snapshot(&out), mode == "copy");
    }
    let v: serde_json::Value = serde_json::from_str(&ok(&lake, &["verify", "--json"])).unwrap();
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
}
