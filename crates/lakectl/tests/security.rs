//! Security as a hostile local user meets it: a lake's own files are its owner's
//! only (made by `lakectl init`, `mkfs.lakefs --populate`, or tightened from an
//! older lake), a user who may read a lake but not write it gets read-only
//! access with clear errors, and crafted trees cannot reach outside a checkout.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use crate::common::*;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unprivileged user the tests act as (created when missing).
fn test_user() -> (u32, u32) {
    let id = |flag: &str| Command::new("id").arg(flag).arg(TEST_USER).output().expect("run id");
    if !id("-u").status.success() {
        let st = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER])
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {TEST_USER} failed");
    }
    let num = |flag: &str| String::from_utf8_lossy(&id(flag).stdout).trim().parse::<u32>().expect("numeric id");
    (num("-u"), num("-g"))
}

const TEST_USER: &str = "lakeos-test";

/// Runs `argv` as the test user, with no supplementary groups but its own.
fn as_user(argv: &[&str]) -> Output {
    let (uid, gid) = test_user();
    Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={gid}"), "--init-groups".into()])
        .args(argv)
        .env_remove("LAKE")
        .output()
        .expect("run setpriv")
}

/// A temporary directory the test user may enter (tempdirs are 0700 root).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn all_paths(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_owned()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() && !out[i].is_symlink() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&out[i]).expect("readdir").map(|e| e.expect("entry").path()).collect();
            v.sort();
            out.extend(v);
        }
        i += 1;
    }
    out
}

/// A tree with a secret only root may read (as /etc/shadow is).
fn secret_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).expect("mkdir");
    std::fs::write(dir.join("etc/shadow"), "root:TOPSECRET-HASH:19000:0:99999:7:::\n").expect("write");
    std::fs::set_permissions(dir.join("etc/shadow"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::write(dir.join("etc/big"), bytes(7, 600_000)).expect("write");
    std::fs::write(dir.join("hello"), "hello\n").expect("write");
}

/// As the test user: nothing of the lake at `lake` can be listed or read, and
/// `lakectl` says whose the lake is.
fn assert_private(lake: &Path) {
    let mut script = String::new();
    for p in all_paths(lake) {
        let q = p.to_str().expect("utf-8 test path");
        script.push_str(&format!("cat '{q}' 2>/dev/null && echo 'LEAK {q}'; ls '{q}' >/dev/null 2>&1 && echo 'LISTED {q}'\n"));
    }
    let out = as_user(&["sh", "-c", &script]);
    let got = text(&out.stdout);
    assert!(!got.contains("TOPSECRET"), "the secret was read from the lake's files:\n{got}");
    let leaks: Vec<&str> = got.lines().filter(|l| l.starts_with("LEAK ") || l.starts_with("LISTED ")).collect();
    assert!(leaks.is_empty(), "the test user reached the lake's files: {leaks:#?}");
    let out = as_user(&[lakectl().to_str().expect("path"), "--lake", lake.to_str().expect("path"), "log"]);
    assert!(!out.status.success(), "lakectl log as another user succeeded: {}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("permission denied") && err.contains("only root may read"), "clear error naming whose lake it is: {err}");
    assert!(err.contains(lake.to_str().expect("path")), "the error names the lake: {err}");
}

#[test]
fn a_new_lake_is_private_to_its_owner() {
    let t = open_tempdir();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    secret_tree(&src);
    ok(&lake, &["init"]);
    ok(&lake, &["commit", path_str(&src), "-m", "packed"]);
    ok(&lake, &["commit", path_str(&src), "--loose", "-m", "loose"]);
    let mode = std::fs::metadata(&lake).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o700, "lake directory mode");
    for p in all_paths(&lake) {
        let md = std::fs::symlink_metadata(&p).expect("stat");
        if p.starts_with(lake.join("objects")) && md.is_file() {
            continue; // loose objects keep the modes they record (shadow's is 0600)
        }
        assert_eq!(md.mode() & 0o077, 0, "{} is mode {:o}", p.display(), md.mode() & 0o7777);
    }
    assert_private(&lake);
}

#[test]
fn mkfs_populate_makes_a_private_lake() {
    let t = open_tempdir();
    let (src, img, mnt) = (t.path().join("src"), t.path().join("lake.img"), t.path().join("mnt"));
    secret_tree(&src);
    let out = Command::new(sibling("mkfs-lakefs")).args(["--size", "64M", "--populate"]).arg(&src).arg(&img).output().expect("mkfs");
    assert!(out.status.success(), "mkfs.lakefs: {}", text(&out.stderr));
    std::fs::create_dir(&mnt).expect("mkdir");
    let st = Command::new("mount").args(["-o", "loop,ro"]).arg(&img).arg(&mnt).status().expect("mount");
    assert!(st.success(), "mount the image");
    let r = std::panic::catch_unwind(|| {
        assert_eq!(std::fs::metadata(&mnt).expect("stat").mode() & 0o7777, 0o700, "the partition's root is the lake directory");
        assert_private(&mnt);
    });
    let _ = Command::new("umount").arg(&mnt).status();
    if let Err(e) = r {
        std::panic::resume_unwind(e);
    }
    let out = Command::new(sibling("fsck-lakefs")).arg(&img).output().expect("fsck");
    assert_eq!(out.status.code(), Some(0), "fsck.lakefs of the image: {}{}", text(&out.stdout), text(&out.stderr));
}

/// Rewrites the superblock with the compat bit `PRIVATE` cleared and the lake's
/// files opened up, as lakes made before this rule were.
fn make_old_style(lake: &Path) {
    let sbp = lake.join("superblock");
    let mut sb = std::fs::read(&sbp).expect("read superblock");
    let compat = u64::from_le_bytes(sb[16..24].try_into().expect("8 bytes")) & !1;
    sb[16..24].copy_from_slice(&compat.to_le_bytes());
    let sum = blake3::hash(&sb[..96]);
    sb[96..128].copy_from_slice(sum.as_bytes());
    std::fs::write(&sbp, &sb).expect("write superblock");
    for p in all_paths(lake) {
        if p.starts_with(lake.join("objects")) && p.is_file() {
            continue;
        }
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
}

#[test]
fn an_older_lake_is_reported_by_fsck_and_made_private() {
    let t = open_tempdir();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    secret_tree(&src);
    ok(&lake, &["init"]);
    commit(&lake, &src, "first");
    make_old_style(&lake);
    let fsck = |args: &[&str]| Command::new(sibling("fsck-lakefs")).args(args).arg(&lake).output().expect("fsck");
    let out = fsck(&[]);
    assert_eq!(out.status.code(), Some(4), "fsck reports an exposed lake: {}", text(&out.stdout));
    let report = text(&out.stdout);
    assert!(report.contains("meta.db: mode 0644") && report.contains("fsck.lakefs -y"), "names the files and the fix: {report}");
    assert_eq!(std::fs::metadata(lake.join("meta.db")).expect("stat").mode() & 0o777, 0o644, "fsck -n changed nothing");
    let out = fsck(&["-y"]);
    assert_eq!(out.status.code(), Some(1), "fsck -y corrects: {}", text(&out.stdout));
    assert_eq!(fsck(&[]).status.code(), Some(0), "clean after -y");
    assert_private(&lake);

    // The first writer of an older lake makes it private by itself, once.
    make_old_style(&lake);
    let out = run(&lake, &["commit", path_str(&src), "-m", "second", "--allow-empty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("made") && text(&out.stderr).contains("private"), "says what it did: {}", text(&out.stderr));
    assert_private(&lake);
    let sb = std::fs::read(lake.join("superblock")).expect("superblock");
    assert_eq!(u64::from_le_bytes(sb[16..24].try_into().expect("8 bytes")) & 1, 1, "compat bit PRIVATE recorded");
    // A lake opened up on purpose after that stays as its owner set it.
    std::fs::set_permissions(&lake, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    ok(&lake, &["commit", path_str(&src), "-m", "third", "--allow-empty"]);
    assert_eq!(std::fs::metadata(&lake).expect("stat").mode() & 0o777, 0o750);
}

#[test]
fn a_reader_who_may_not_write_gets_read_only_access() {
    let t = open_tempdir();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("hello"), "hello\n").expect("write");
    ok(&lake, &["init"]);
    let id = commit(&lake, &src, "first");
    // The owner shares the lake with the test user's group, read-only.
    let (_, gid) = test_user();
    for p in all_paths(&lake) {
        std::os::unix::fs::chown(&p, None, Some(gid)).expect("chgrp");
        let m = std::fs::symlink_metadata(&p).expect("stat").mode() & 0o7777;
        let add = if p.is_dir() { 0o050 } else { 0o040 };
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m | add)).expect("chmod");
    }
    let l = lake.to_str().expect("path");
    let ctl = lakectl();
    let ctl = ctl.to_str().expect("path");
    let out = as_user(&[ctl, "--lake", l, "log"]);
    assert!(out.status.success(), "log as a reader: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&id[..12]), "log shows the commit: {}", text(&out.stdout));
    let out = as_user(&[ctl, "--lake", l, "cat", "/hello@main"]);
    assert_eq!(text(&out.stdout), "hello\n", "cat as a reader: {}", text(&out.stderr));
    let out = as_user(&[ctl, "--lake", l, "commit", src.to_str().expect("path"), "-m", "x"]);
    assert!(!out.status.success(), "a reader cannot commit");
    let err = text(&out.stderr);
    assert!(err.contains("permission denied") && err.contains("only root may change"), "names the permission: {err}");
    assert!(!err.contains("readonly database"), "no raw SQLite error: {err}");
}

// ---------------------------------------------------------------- crafted lakes

use lakefs::id::ObjectId;
use lakefs::pack::Kind;
use lakefs::tree::{Content, Entry, Meta, Node, Tree};
use lakefs::writer::{RefUpdate, WriteSession};

/// A tree under construction: (name, node) pairs, or subdirectories built first.
enum T {
    Dir(Vec<(&'static str, T)>),
    File(&'static [u8]),
    Link(&'static [u8]),
    Sym(&'static [u8]),
}

fn meta(mode: u32) -> Meta {
    Meta { mode, uid: 0, gid: 0, mtime: 1_700_000_000, mtime_nsec: 0, xattrs: vec![] }
}

fn put(w: &WriteSession, t: &T) -> Node {
    match t {
        T::Dir(entries) => {
            let mut tree = Tree { entries: entries.iter().map(|(n, c)| Entry { name: n.as_bytes().to_vec(), node: put(w, c) }).collect() };
            tree.sort();
            Node::Dir { meta: meta(0o755), tree: w.put_tree(&tree).expect("tree") }
        }
        T::File(b) => {
            let id = ObjectId::hash(b);
            w.put_with_id(id, Kind::Data, b).expect("data");
            Node::File { meta: meta(0o644), size: b.len() as u64, content: Content::Whole(id) }
        }
        T::Link(target) => Node::Hardlink { target: target.to_vec() },
        T::Sym(target) => Node::Symlink { meta: meta(0o777), target: target.to_vec() },
    }
}

/// A new lake at `lake` whose `main` holds tree `t` (built node by node, so any
/// shape can be made, as a crafted lake from elsewhere could).
fn build(t: T, lake: &Path) -> String {
    let l = lakefs::Lake::create(lake, &Default::default()).expect("create lake");
    let w = WriteSession::begin(&l).expect("session");
    let Node::Dir { tree, .. } = put(&w, &t) else { panic!("the root must be a directory") };
    commit_on_main(w, tree)
}

/// Commits root tree `tree` on `main` with the session's objects; returns its id.
fn commit_on_main(w: WriteSession, tree: ObjectId) -> String {
    let c = lakefs::commit::Commit {
        tree,
        root: meta(0o755),
        parents: vec![],
        scope: "path:/".into(),
        time: 1_700_000_000,
        time_nsec: 0,
        trigger: "test".into(),
        message: "crafted".into(),
        extra: vec![],
    };
    let id = w.put_commit(&c).expect("commit");
    w.finish(&[(id, c)], &[RefUpdate { name: "main".into(), expected: None, new: id, reason: "crafted".into() }]).expect("finish");
    id.to_string()
}

/// Every escape shape: each is refused by checkout (copy and hard-link), named,
/// with nothing written (not even the target directory), and reported by verify
/// and fsck.
#[test]
fn crafted_trees_are_refused_with_the_entry_named() {
    use T::*;
    let deep = {
        let mut t = File(b"bottom");
        for _ in 0..1100 {
            t = Dir(vec![("d", t)]);
        }
        t
    };
    let cases: Vec<(&str, T, &str)> = vec![
        ("absolute", Dir(vec![("x", Link(b"/etc/passwd"))]), "x"),
        ("dotdot", Dir(vec![("f", File(b"f")), ("x", Link(b"../outside"))]), "x"),
        ("dotdot-inside", Dir(vec![("a", Dir(vec![("f", File(b"f"))])), ("x", Link(b"a/../../outside"))]), "x"),
        ("through-symlink", Dir(vec![("s", Sym(b"/etc")), ("x", Link(b"s/passwd"))]), "x"),
        ("through-relative-symlink", Dir(vec![("a", Dir(vec![("f", File(b"f"))])), ("s", Sym(b"a")), ("x", Link(b"s/f"))]), "x"),
        ("to-directory", Dir(vec![("a", Dir(vec![])), ("x", Link(b"a"))]), "x"),
        ("chain", Dir(vec![("f", File(b"f")), ("x", Link(b"f")), ("y", Link(b"x"))]), "y"),
        ("missing", Dir(vec![("x", Link(b"nothere"))]), "x"),
        ("empty-component", Dir(vec![("a", Dir(vec![("f", File(b"f"))])), ("x", Link(b"a//f"))]), "x"),
        ("trailing-slash", Dir(vec![("f", File(b"f")), ("x", Link(b"f/"))]), "x"),
        ("dot", Dir(vec![("f", File(b"f")), ("x", Link(b"./f"))]), "x"),
        ("empty", Dir(vec![("x", Link(b""))]), "x"),
        ("deep", deep, "nested deeper than"),
    ];
    let t = open_tempdir();
    let sentinel = t.path().join("outside");
    std::fs::write(&sentinel, b"untouched").expect("write");
    for (name, tree, names) in cases {
        let lake = t.path().join(format!("lake-{name}"));
        let id = build(tree, &lake);
        for mode in [None, Some("--hardlink")] {
            let out_dir = t.path().join(format!("out-{name}"));
            let mut args = vec!["checkout"];
            args.extend(mode);
            args.extend(["main", path_str(&out_dir)]);
            let out = run(&lake, &args);
            assert!(!out.status.success(), "{name}: checkout {mode:?} succeeded");
            let err = text(&out.stderr);
            assert!(err.contains("unsafe tree entry") && err.contains(names), "{name}: the error names the entry: {err}");
            assert!(!out_dir.exists(), "{name}: nothing is written, not even the target");
        }
        let out = run(&lake, &["verify"]);
        assert!(!out.status.success(), "{name}: verify passes a crafted tree");
        let report = text(&out.stdout) + &text(&out.stderr);
        assert!(report.contains("unsafe tree") && report.contains(&id[3..15]), "{name}: verify names the commit: {report}");
        let fsck = Command::new(sibling("fsck-lakefs")).arg(&lake).output().expect("fsck");
        assert_eq!(fsck.status.code(), Some(4), "{name}: fsck: {}", text(&fsck.stdout));
    }
    assert_eq!(std::fs::read(&sentinel).expect("read"), b"untouched");
}

/// Names a tree decoder refuses: a crafted tree object holding them is damage.
#[test]
fn crafted_entry_names_are_refused() {
    let t = open_tempdir();
    for (i, bad) in [&b".."[..], b".", b"a/b", b"", b"a\0b"].into_iter().enumerate() {
        let bad = bad.to_vec();
        let lake = t.path().join(format!("lake-{i}"));
        let l = lakefs::Lake::create(&lake, &Default::default()).expect("create lake");
        let w = WriteSession::begin(&l).expect("session");
        // The encoder does not check names (the decoder does): write the bytes as they are.
        let tree =
            Tree { entries: vec![Entry { name: bad.clone(), node: Node::Symlink { meta: meta(0o777), target: b"/etc/passwd".to_vec() } }] };
        let tid = w.put_tree(&tree).expect("tree");
        commit_on_main(w, tid);
        drop(l);
        let out_dir = t.path().join(format!("out-{i}"));
        let out = run(&lake, &["checkout", "main", path_str(&out_dir)]);
        assert!(!out.status.success(), "{bad:?}: checkout succeeded");
        assert!(text(&out.stderr).contains("invalid entry name"), "{bad:?}: {}", text(&out.stderr));
        assert!(!out_dir.exists() || std::fs::read_dir(&out_dir).expect("readdir").next().is_none(), "{bad:?}: wrote into the target");
        assert!(!run(&lake, &["verify"]).status.success(), "{bad:?}: verify passes it");
    }
}

/// Random trees with random hard links, some escaping: checkout either refuses
/// (as `validate` does, and writes nothing) or writes only inside its target,
/// with each hard link sharing its target's inode.
#[test]
fn random_trees_never_leave_the_target() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("LAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random());
    eprintln!("seed {seed} (replay with LAKE_TEST_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let t = open_tempdir();
    let sentinel_dir = t.path().join("etc");
    std::fs::create_dir(&sentinel_dir).expect("mkdir");
    std::fs::write(sentinel_dir.join("passwd"), b"host").expect("write");
    let names = ["a", "b", "c", "s", "etc", "passwd"];
    let targets: [&[u8]; 12] =
        [b"a", b"b/a", b"s/passwd", b"../etc/passwd", b"/etc/passwd", b"etc/passwd", b"b", b"b/../a", b"c/c", b"s", b"etc", b"b/s/passwd"];
    let (mut refused, mut accepted) = (0, 0);
    for case in 0..150 {
        // Up to 3 levels of directories, files, symlinks (some pointing out) and hard links.
        fn gen(rng: &mut rand::rngs::StdRng, depth: usize, names: &[&'static str], targets: &[&'static [u8]]) -> Vec<(&'static str, T)> {
            let mut v: Vec<(&'static str, T)> = Vec::new();
            for n in names {
                if !rng.random_bool(0.5) {
                    continue;
                }
                let t = match rng.random_range(0..4) {
                    0 if depth < 3 => T::Dir(gen(rng, depth + 1, names, targets)),
                    1 => T::Sym(if rng.random_bool(0.5) { b"/etc" } else { b".." }),
                    2 => T::Link(targets[rng.random_range(0..targets.len())]),
                    _ => T::File(b"content"),
                };
                v.push((n, t));
            }
            v
        }
        let tree = T::Dir(gen(&mut rng, 0, &names, &targets));
        let lake = t.path().join(format!("lake{case}"));
        build(tree, &lake);
        let l = lakefs::Lake::open(&lake).expect("open");
        let root = l.read_commit(&l.get_ref("main").expect("ref").expect("main")).expect("commit").tree;
        let valid = lakefs::checkout::validate(&l, &root);
        drop(l);
        let out_dir = t.path().join(format!("out{case}"));
        let mut args = vec!["checkout"];
        if case % 2 == 0 {
            args.push("--hardlink");
        }
        args.extend(["main", path_str(&out_dir)]);
        let out = run(&lake, &args);
        match valid {
            Err(lakefs::Error::UnsafeTree { .. }) => {
                refused += 1;
                assert!(!out.status.success(), "case {case}: validate refuses, checkout succeeded");
                assert!(!out_dir.exists(), "case {case}: refused, yet the target exists");
            }
            Err(e) => panic!("case {case}: validate failed otherwise: {e}"),
            Ok(()) => {
                accepted += 1;
                assert!(
                    out.status.success(),
                    "case {case}: valid tree, checkout failed: {}\ntree:\n{}",
                    text(&out.stderr),
                    text(&run(&lake, &["ls", "-l", "-R", "/@main"]).stdout)
                );
            }
        }
        assert_eq!(std::fs::read(sentinel_dir.join("passwd")).expect("read"), b"host", "case {case}: a host file changed");
        let entries: Vec<_> = std::fs::read_dir(t.path()).expect("readdir").map(|e| e.expect("entry").file_name()).collect();
        assert!(
            entries.iter().all(|n| n == "etc" || n.to_string_lossy().starts_with("lake") || n.to_string_lossy().starts_with("out")),
            "case {case}: something was written beside the target: {entries:?}"
        );
        if out_dir.exists() {
            for p in all_paths(&out_dir) {
                let md = std::fs::symlink_metadata(&p).expect("stat");
                if md.nlink() > 1 && md.is_file() {
                    // Hard links inside the checkout only: no inode of the host's.
                    assert_ne!(
                        md.ino(),
                        std::fs::metadata(sentinel_dir.join("passwd")).expect("stat").ino(),
                        "case {case}: {}",
                        p.display()
                    );
                }
            }
        }
    }
    eprintln!("{refused} refused, {accepted} accepted");
    assert!(refused > 10 && accepted > 10, "both kinds were tried: {refused} refused, {accepted} accepted");
}

/// A write through a hard-link checkout changes the store's inode; the next
/// hard-link checkout notices (by size and mtime, and by content for files others
/// than root may write, whose mtime a user can put back) and rewrites the object
/// from an intact copy, or, when the lake has none, refuses and names the file.
#[test]
fn hard_link_checkouts_cannot_poison_the_store() {
    let t = open_tempdir();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("root-file"), "original root\n").expect("write");
    std::fs::write(src.join("user-file"), "original user\n").expect("write");
    std::os::unix::fs::chown(src.join("user-file"), Some(test_user().0), Some(test_user().1)).expect("chown");
    ok(&lake, &["init"]);
    commit(&lake, &src, "packed"); // content in packs: an intact copy exists
    let a = t.path().join("a");
    ok(&lake, &["checkout", "--hardlink", "main", path_str(&a)]);
    // root appends (size and mtime change); the user rewrites in place, same size, and puts the mtime back.
    std::fs::OpenOptions::new()
        .append(true)
        .open(a.join("root-file"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"x\n"))
        .expect("append");
    let user_file = a.join("user-file");
    let out = as_user(&[
        "sh",
        "-c",
        &format!("t=$(stat -c %y '{0}'); printf 'POISONED user\\n' > '{0}' && touch -d \"$t\" '{0}'", user_file.display()),
    ]);
    assert!(out.status.success(), "the owner rewrites its file: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&user_file).expect("read"), b"POISONED user\n");
    let b = t.path().join("b");
    let out = run(&lake, &["checkout", "--hardlink", "main", path_str(&b)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(b.join("root-file")).expect("read"), b"original root\n", "healed from the pack");
    assert_eq!(
        std::fs::read(b.join("user-file")).expect("read"),
        b"original user\n",
        "same-size rewrite with the mtime put back is caught"
    );
    assert!(text(&out.stderr).contains("rewritten from an intact copy"), "says what it did: {}", text(&out.stderr));
    assert_eq!(std::fs::read(a.join("root-file")).expect("read"), b"original root\nx\n", "the changed checkout keeps its change");
    ok(&lake, &["verify"]);

    // Loose only (the POSIX zone's form): no intact copy, so a checkout refuses.
    let lake2 = t.path().join("lake2");
    ok(&lake2, &["init"]);
    ok(&lake2, &["commit", path_str(&src), "--loose", "-m", "loose"]);
    let c = t.path().join("c");
    ok(&lake2, &["checkout", "--hardlink", "main", path_str(&c)]);
    std::fs::write(c.join("root-file"), "changed in place\n").expect("write");
    let d = t.path().join("d");
    let out = run(&lake2, &["checkout", "--hardlink", "main", path_str(&d)]);
    assert!(!out.status.success(), "a poisoned object is not handed out");
    let err = text(&out.stderr);
    assert!(err.contains("root-file") && err.contains("no intact copy"), "names the file: {err}");
    let out = run(&lake2, &["verify"]);
    assert!(!out.status.success());
    assert!(text(&out.stdout).contains("root-file"), "verify names the path: {}", text(&out.stdout));
}

#[test]
fn hard_link_checkout_onto_another_file_system_says_so() {
    let t = open_tempdir();
    let (src, lake, mnt) = (t.path().join("src"), t.path().join("lake"), t.path().join("tmpfs"));
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("f"), "f\n").expect("write");
    ok(&lake, &["init"]);
    commit(&lake, &src, "x");
    std::fs::create_dir(&mnt).expect("mkdir");
    assert!(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&mnt).status().expect("mount").success());
    let out = run(&lake, &["checkout", "--hardlink", "main", path_str(&mnt.join("out"))]);
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(!out.status.success(), "a copy made silently");
    assert!(text(&out.stderr).contains("must be on the lake's file system"), "{}", text(&out.stderr));
}
