//! Generations: a deployed generation is a hard-link farm into the loose objects
//! with overlay dirs and a hot-cache view; the first one becomes the default.

use std::os::unix::fs::MetadataExt;

use lake_posix::generation;
use lakefs::progress::Silent;

fn tree(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("usr/bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(dir.join("etc/hostname"), b"lake\n").unwrap();
    std::fs::write(dir.join("usr/bin/tool"), vec![7u8; 300_000]).unwrap();
    std::os::unix::fs::symlink("usr/bin", dir.join("bin")).unwrap();
}

fn commit(lake: &lakefs::Lake, src: &std::path::Path, msg: &str) -> lakefs::ObjectId {
    lake_testkit::posix::commit(lake, src, msg, false).commit
}

#[test]
fn deploy_makes_a_hardlink_checkout_with_overlay_dirs_and_hot_cache() {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("src"), t.path().join("lake"));
    tree(&src);
    let lake = lakefs::Lake::create(&root, &Default::default()).unwrap();
    let c1 = commit(&lake, &src, "one");
    // A staging dir left by an interrupted deploy is cleaned, never used.
    std::fs::create_dir_all(root.join("deploy/.staging-1-dead/root")).unwrap();
    let g1 = generation::deploy(&lake, c1, true, &Silent).unwrap();
    assert_eq!((g1.number, g1.pinned), (1, true));
    assert!(!root.join("deploy/.staging-1-dead").exists());
    let r1 = generation::root_dir(&root, 1);
    assert_eq!(std::fs::read(r1.join("etc/hostname")).unwrap(), b"lake\n");
    assert_eq!(std::fs::read_link(r1.join("bin")).unwrap(), std::path::Path::new("usr/bin"));
    // Stored once: the checkout's file is the loose object's inode.
    let md = std::fs::metadata(r1.join("usr/bin/tool")).unwrap();
    assert!(md.nlink() >= 2, "hard-linked into objects/ (nlink {})", md.nlink());
    assert!(generation::upper_dir(&root, 1).is_dir() && generation::work_dir(&root, 1).is_dir());
    let (tree_id, entries) = lake_posix::hotcache::read(&generation::hotcache_path(&root, 1)).unwrap();
    assert_eq!(tree_id, lake.read_commit(&c1).unwrap().tree);
    let paths: Vec<String> = entries.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect();
    assert_eq!(paths, ["bin", "etc", "etc/hostname", "usr", "usr/bin", "usr/bin/tool"]);
    assert_eq!(entries[5].size, 300_000);
    assert_eq!(generation::default(&lake).unwrap(), Some(1));

    std::fs::write(src.join("etc/hostname"), b"lake2\n").unwrap();
    let c2 = commit(&lake, &src, "two");
    let g2 = generation::deploy(&lake, c2, false, &Silent).unwrap();
    assert_eq!(g2.number, 2);
    assert_eq!(generation::default(&lake).unwrap(), Some(1), "a new generation does not become the default by itself");
    generation::set_default(&lake, 2).unwrap();
    assert_eq!(generation::default(&lake).unwrap(), Some(2));
    assert!(generation::set_default(&lake, 9).is_err());
    // Unchanged files share inodes across generations.
    let a = std::fs::metadata(r1.join("usr/bin/tool")).unwrap().ino();
    let b = std::fs::metadata(generation::root_dir(&root, 2).join("usr/bin/tool")).unwrap().ino();
    assert_eq!(a, b);
    assert_eq!(generation::list(&lake).unwrap().len(), 2);
    // Pinned generation 1 keeps its commit alive through gc; verify is clean.
    assert!(lakefs::verify::verify(&lake, &Silent).unwrap().clean());
}
