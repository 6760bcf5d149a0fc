//! Import then checkout must give back the same tree: content, modes, owners,
//! mtimes, xattrs (security.capability too), hard links, devices, fifos, sockets.

use crate::common::*;
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

/// Holes stay holes: a sparse file is imported in time proportional to its data
/// (a 16 TiB file with a few KiB of data is a quick commit, not hours of zeros),
/// recorded with holes, and checked out sparse (copy, hard-link and loose modes).
#[test]
fn sparse_files_round_trip_sparse() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    std::fs::create_dir(&src).unwrap();
    let huge: u64 = (16 << 40) - (1 << 20); // ext4's limit with 4 KiB blocks is 16 TiB - 4 KiB
    let f = std::fs::File::create(src.join("huge")).unwrap();
    f.set_len(huge).unwrap();
    f.write_all_at(b"at the start", 0).unwrap();
    f.write_all_at(&bytes(1, 300_000), huge - 400_000).unwrap();
    let g = std::fs::File::create(src.join("gig")).unwrap();
    g.set_len(1 << 30).unwrap();
    g.write_all_at(&bytes(2, 1 << 20), 512 << 20).unwrap();
    drop((f, g));
    std::fs::write(src.join("dense"), bytes(3, 1 << 20)).unwrap();
    let blocks = |p: &std::path::Path| std::fs::metadata(p).unwrap().blocks() * 512;
    ok(&lake, &["init"]);
    commit(&lake, &src, "sparse");
    let sb = std::fs::read(lake.join("superblock")).unwrap();
    let incompat = u64::from_le_bytes(sb[32..40].try_into().unwrap());
    assert_eq!(incompat & 2, 2, "the sparse feature is on once a list has holes: {incompat:#x}");
    for (dir, extra) in [("copy", None), ("link", Some("--hardlink"))] {
        let out = t.path().join(dir);
        let mut args = vec!["checkout"];
        args.extend(extra);
        args.extend(["main", path_str(&out)]);
        ok(&lake, &args);
        for name in ["huge", "gig"] {
            let (a, b) = (src.join(name), out.join(name));
            assert_eq!(std::fs::metadata(&b).unwrap().len(), std::fs::metadata(&a).unwrap().len(), "{name}: size");
            assert!(blocks(&b) <= blocks(&a) + (1 << 20), "{name} came back sparse: {} bytes allocated, source {}", blocks(&b), blocks(&a));
        }
        let got = std::fs::File::open(out.join("huge")).unwrap();
        let mut buf = vec![0u8; 300_000];
        got.read_exact_at(&mut buf, huge - 400_000).unwrap();
        assert_eq!(buf, bytes(1, 300_000), "data near the end of the huge file");
        let mut head = [0u8; 12];
        got.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(&head, b"at the start");
        assert_eq!(std::fs::read(out.join("gig")).unwrap(), std::fs::read(src.join("gig")).unwrap(), "gig: same bytes");
        assert_eq!(std::fs::read(out.join("dense")).unwrap(), bytes(3, 1 << 20));
    }
    // `cat` streams holes as zeros.
    let out = run(&lake, &["cat", "/gig@main"]);
    assert!(out.status.success(), "cat: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, std::fs::read(src.join("gig")).unwrap());
    // The POSIX zone's loose mode keeps holes in the object itself.
    let lake2 = t.path().join("lake2");
    std::fs::remove_file(src.join("huge")).unwrap();
    ok(&lake2, &["init"]);
    ok(&lake2, &["commit", path_str(&src), "--loose", "-m", "posix"]);
    let out = t.path().join("loose-out");
    ok(&lake2, &["checkout", "--hardlink", "main", path_str(&out)]);
    assert!(blocks(&out.join("gig")) <= blocks(&src.join("gig")) + (1 << 20), "loose object is sparse");
    assert_eq!(std::fs::read(out.join("gig")).unwrap(), std::fs::read(src.join("gig")).unwrap());
    ok(&lake, &["verify"]);
    ok(&lake2, &["verify"]);
}

/// `--exclude` leaves out matching paths (names anywhere, or source-relative
/// paths), `--one-file-system` records a mount point empty instead of descending.
#[test]
fn commit_excludes_and_stays_on_one_file_system() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    for d in ["a/node_modules/x", "var/cache/apt", "var/lib", "mnt"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in ["a/keep.rs", "a/junk.tmp", "a/node_modules/x/big.js", "var/cache/apt/pkg.deb", "var/lib/state", "top.tmp"] {
        std::fs::write(src.join(f), f).unwrap();
    }
    assert!(std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(src.join("mnt")).status().unwrap().success());
    std::fs::write(src.join("mnt/other-fs"), "elsewhere").unwrap();
    ok(&lake, &["init"]);
    let out = run(
        &lake,
        &["commit", path_str(&src), "--exclude", "*.tmp", "--exclude", "node_modules", "--exclude", "var/cache/*", "-x", "-m", "x"],
    );
    let _ = std::process::Command::new("umount").arg(src.join("mnt")).status();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ls = ok(&lake, &["ls", "-R", "/@main"]);
    for kept in ["keep.rs", "state", "cache", "mnt"] {
        assert!(ls.contains(kept), "{kept} is recorded: {ls}");
    }
    for gone in ["junk.tmp", "top.tmp", "node_modules", "big.js", "apt", "pkg.deb", "other-fs"] {
        assert!(!ls.contains(gone), "{gone} is left out: {ls}");
    }
    let bad = run(&lake, &["commit", path_str(&src), "--exclude", "a[", "-m", "y"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--exclude 'a['"), "a bad glob is named");
}
