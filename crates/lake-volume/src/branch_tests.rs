//! Branch and merge tests on a temporary lake: the working tree is a plain
//! directory and the flush commits it with `ops::commit_dir`, as the volume's
//! committer does behind the mount.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::branch::{self, Workdir};
use crate::merge;
use lakefs::error::Result;
use lakefs::id::ObjectId;
use lakefs::lake::{CreateOptions, Lake};
use lakefs::ops::{commit_dir, CommitRequest};

const VOL: &str = "home";

struct Env {
    _dir: tempfile::TempDir,
    lake: Lake,
    work: PathBuf,
}

fn env() -> Env {
    let d = tempfile::tempdir().expect("tempdir");
    let lake = Lake::create(&d.path().join("lake"), &CreateOptions::default()).expect("lake");
    let work = d.path().join("work");
    std::fs::create_dir(&work).expect("work");
    Env { _dir: d, lake, work }
}

fn flush(lake: &Lake, work: &Path) -> Result<ObjectId> {
    let req = CommitRequest {
        src: work,
        reference: "home/main",
        message: "flush",
        scope: "volume:home",
        trigger: "manual",
        changed: None,
        options: Default::default(),
        extra: Vec::new(),
        allow_empty: false,
    };
    Ok(commit_dir(lake, &req, &lakefs::progress::Silent)?.commit)
}

impl Env {
    fn p(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
    fn write(&self, rel: &str, data: &[u8]) {
        let p = self.p(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.p(rel)).expect("read")
    }
    fn text(&self, rel: &str) -> String {
        String::from_utf8(self.read(rel)).expect("utf8")
    }
    fn flush(&self) -> ObjectId {
        flush(&self.lake, &self.work).expect("flush")
    }
    fn create(&self, scope: &str, name: &str) -> branch::Branch {
        let mut f = || flush(&self.lake, &self.work);
        branch::create(&self.lake, VOL, scope, name, &mut Workdir { root: &self.work, flush: &mut f }).expect("create")
    }
    fn switch(&self, name: &str, scope: Option<&str>) -> crate::error::Result<branch::SwitchOutcome> {
        let mut f = || flush(&self.lake, &self.work);
        branch::switch(&self.lake, VOL, name, scope, &mut Workdir { root: &self.work, flush: &mut f }, false)
    }
    fn merge(&self, name: &str) -> merge::MergeOutcome {
        let mut f = || flush(&self.lake, &self.work);
        merge::merge(&self.lake, VOL, name, None, &mut Workdir { root: &self.work, flush: &mut f }, false).expect("merge")
    }
    /// Everything observable about the tree under `rel`: kind, mode, mtime, content or target.
    fn snapshot(&self, rel: &str) -> BTreeMap<String, (String, u32, i64, i64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, (String, u32, i64, i64, Vec<u8>)>) {
            let md = std::fs::symlink_metadata(p).expect("lstat");
            let rel = p.strip_prefix(base).expect("prefix").to_string_lossy().into_owned();
            let ft = md.file_type();
            let (kind, data) = if ft.is_symlink() {
                ("symlink", std::fs::read_link(p).expect("readlink").to_string_lossy().as_bytes().to_vec())
            } else if ft.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", std::fs::read(p).expect("read"))
            };
            out.insert(rel, (kind.to_owned(), md.mode() & 0o7777, md.mtime(), md.mtime_nsec(), data));
            if ft.is_dir() {
                for e in std::fs::read_dir(p).expect("readdir") {
                    walk(base, &e.expect("entry").path(), out);
                }
            }
        }
        let root = self.p(rel);
        walk(&root, &root, &mut out);
        out
    }
}

fn set_mtime(p: &Path, secs: i64) {
    let meta = lakefs::tree::Meta {
        mode: std::fs::symlink_metadata(p).expect("lstat").mode() & 0o7777,
        mtime: secs,
        mtime_nsec: 123,
        ..Default::default()
    };
    lakefs::fsmeta::set_times(p, &meta).expect("utimensat");
}

#[test]
fn switch_back_and_forth_restores_exact_contents() {
    let e = env();
    e.write("outside.txt", b"not in the scope\n");
    e.write("proj/a.txt", b"alpha\n");
    e.write("proj/sub/b.bin", &[0, 1, 2, 3]);
    std::os::unix::fs::symlink("a.txt", e.p("proj/link")).expect("symlink");
    std::fs::set_permissions(e.p("proj/a.txt"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    set_mtime(&e.p("proj/a.txt"), 1_600_000_000);
    set_mtime(&e.p("proj/link"), 1_600_000_001);
    set_mtime(&e.p("proj/sub"), 1_600_000_002);
    set_mtime(&e.p("proj"), 1_600_000_003);
    let b = e.create("proj", "exp");
    assert_eq!((b.scope.as_str(), b.current), ("proj", false));
    let main_snap = e.snapshot("proj");

    let out = e.switch("exp", None).expect("switch to exp");
    assert!(out.changes.is_empty(), "same version: nothing to write, got {:?}", out.changes);
    // Work on the branch: change, delete, add, chmod, retarget the symlink.
    e.write("proj/a.txt", b"alpha on exp\n");
    std::fs::remove_file(e.p("proj/sub/b.bin")).expect("rm");
    e.write("proj/new.txt", b"new\n");
    std::fs::set_permissions(e.p("proj/new.txt"), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::fs::remove_file(e.p("proj/link")).expect("rm link");
    std::os::unix::fs::symlink("new.txt", e.p("proj/link")).expect("symlink");
    e.flush();
    let exp_snap = e.snapshot("proj");
    let again = e.switch("exp", None).expect("switch to the current branch");
    assert!(again.changes.is_empty(), "switching to the current branch keeps the work: {:?}", again.changes);
    assert_eq!(e.snapshot("proj"), exp_snap);

    let out = e.switch("main", Some("proj")).expect("switch to main");
    assert_eq!((out.from.as_str(), out.to.as_str()), ("exp", "main"));
    assert!(out.saved.is_some(), "exp's working state is recorded on switching away");
    assert_eq!(e.snapshot("proj"), main_snap, "main's version comes back exactly");
    assert_eq!(e.read("outside.txt"), b"not in the scope\n");

    e.switch("exp", None).expect("switch to exp again");
    assert_eq!(e.snapshot("proj"), exp_snap, "exp's version comes back exactly");
    let list = branch::list(&e.lake, VOL, None).expect("list");
    assert_eq!(list.iter().map(|b| (b.name.as_str(), b.current)).collect::<Vec<_>>(), [("main", false), ("exp", true)]);
    assert!(branch::delete(&e.lake, VOL, "exp").is_err(), "the current branch cannot be deleted");
    e.switch("main", Some("proj/a.txt")).expect("back to main");
    let gone = branch::delete(&e.lake, VOL, "exp").expect("delete");
    assert!(e.lake.get_ref(&gone.reference).expect("ref").is_none());
    assert!(e.switch("exp", None).is_err(), "a deleted branch is gone");
}

#[test]
fn file_scope_and_overlap_rules() {
    let e = env();
    e.write("doc/report.txt", b"v1\n");
    e.create("doc/report.txt", "draft");
    let mut f = || flush(&e.lake, &e.work);
    let overlap = branch::create(&e.lake, VOL, "doc", "other", &mut Workdir { root: &e.work, flush: &mut f });
    assert!(overlap.is_err(), "scopes do not nest");
    e.switch("draft", None).expect("switch");
    e.write("doc/report.txt", b"v2 draft\n");
    e.switch("main", None).expect("only one scope: main needs no --path");
    assert_eq!(e.read("doc/report.txt"), b"v1\n");
    e.switch("draft", None).expect("switch");
    assert_eq!(e.read("doc/report.txt"), b"v2 draft\n");
}

fn lines(ls: &[&str]) -> String {
    ls.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn clean_text_merge_has_both_changes_and_two_parents() {
    let e = env();
    e.write("proj/notes.txt", lines(&["one", "two", "three", "four", "five"]).as_bytes());
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    e.write("proj/notes.txt", lines(&["ONE", "two", "three", "four", "five"]).as_bytes());
    e.switch("main", None).expect("switch");
    e.write("proj/notes.txt", lines(&["one", "two", "three", "four", "FIVE"]).as_bytes());
    e.flush();
    let b_tip = e.lake.get_ref("home/branch/b").expect("ref").expect("b tip");
    let out = e.merge("b");
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
    assert_eq!(e.text("proj/notes.txt"), lines(&["ONE", "two", "three", "four", "FIVE"]));
    let commit = out.commit.expect("a clean merge commits");
    let c = e.lake.read_commit(&commit).expect("commit");
    assert_eq!(c.parents.len(), 2);
    assert_eq!(c.parents[1], b_tip);
    let main_ref = branch::find(&e.lake, VOL, "main", Some("proj")).expect("main");
    assert_eq!(main_ref.tip, Some(commit));
    // The merge is also in the volume's history, and merging again is a no-op.
    let head = e.lake.get_ref("home/main").expect("ref").expect("head");
    let node = e.lake.lookup(&e.lake.read_commit(&head).expect("c").tree, "proj/notes.txt").expect("lookup");
    assert!(node.is_some());
    assert!(e.merge("b").up_to_date);
}

#[test]
fn same_line_conflict_is_marked_listed_and_cleared_by_commit() {
    let e = env();
    e.write("proj/notes.txt", lines(&["one", "two", "three"]).as_bytes());
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    e.write("proj/notes.txt", lines(&["one", "two from b", "three"]).as_bytes());
    e.switch("main", None).expect("switch");
    e.write("proj/notes.txt", lines(&["one", "two from main", "three"]).as_bytes());
    let out = e.merge("b");
    assert!(out.commit.is_none(), "a conflicted merge waits for its commit");
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!((out.conflicts[0].path.as_str(), out.conflicts[0].kind.as_str()), ("proj/notes.txt", "content"));
    let text = e.text("proj/notes.txt");
    assert!(text.contains("<<<<<<< ours (main)\ntwo from main\n=======\ntwo from b\n>>>>>>> theirs (b)\n"), "{text}");
    let listed = branch::conflicts(&e.lake, VOL).expect("conflicts");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].scope.as_str(), listed[0].theirs.as_str()), ("proj", "b"));
    let err = e.switch("b", None).expect_err("switching is refused during a conflicted merge");
    assert!(err.to_string().contains("unresolved conflicts"), "{err}");

    // Resolve and commit the file: the conflict clears and the merge commit is made.
    let before = branch::find(&e.lake, VOL, "main", None).expect("main").tip.expect("tip");
    e.write("proj/notes.txt", lines(&["one", "two from both", "three"]).as_bytes());
    let head = e.flush();
    let eff = branch::on_commit(&e.lake, VOL, &["proj/notes.txt".into()], head, "resolve").expect("on_commit");
    assert_eq!(eff.resolved, ["proj/notes.txt"]);
    assert_eq!(eff.merged.len(), 1);
    assert!(branch::conflicts(&e.lake, VOL).expect("conflicts").is_empty());
    let tip = branch::find(&e.lake, VOL, "main", None).expect("main").tip.expect("tip");
    let c = e.lake.read_commit(&tip).expect("commit");
    assert_eq!(c.parents[0], before);
    assert_eq!(c.parents.len(), 2);
    assert_eq!(c.message, "resolve");
    let state = branch::branch_state(&e.lake, &tip, "proj").expect("state").expect("dir");
    let lakefs::tree::Node::Dir { tree, .. } = state else { panic!("dir scope") };
    assert!(e.lake.lookup(&tree, "notes.txt").expect("lookup").is_some());
    e.switch("b", None).expect("switching works again");
}

#[test]
fn binary_conflict_keeps_ours_and_writes_theirs_beside_it() {
    let e = env();
    e.write("proj/img.bin", &[0, 1, 2, 3, 4]);
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    e.write("proj/img.bin", &[0, 9, 9, 9]);
    e.switch("main", None).expect("switch");
    e.write("proj/img.bin", &[0, 7, 7]);
    let out = e.merge("b");
    assert_eq!(out.conflicts.len(), 1);
    let c = &out.conflicts[0];
    assert_eq!((c.kind.as_str(), c.theirs_copy.as_deref()), ("binary", Some("proj/img.bin.merge-b")));
    assert_eq!(e.read("proj/img.bin"), [0, 7, 7]);
    assert_eq!(e.read("proj/img.bin.merge-b"), [0, 9, 9, 9]);
    // Abort: back to main's version, their copy removed.
    let mut f = || flush(&e.lake, &e.work);
    merge::abort(&e.lake, VOL, None, &mut Workdir { root: &e.work, flush: &mut f }).expect("abort");
    assert!(!e.p("proj/img.bin.merge-b").exists());
    assert_eq!(e.read("proj/img.bin"), [0, 7, 7]);
    assert!(branch::conflicts(&e.lake, VOL).expect("conflicts").is_empty());
}

#[test]
fn adds_and_deletes_on_either_side_merge_cleanly_and_edit_beats_delete() {
    let e = env();
    e.write("proj/old.txt", b"old\n");
    e.write("proj/keep.txt", b"keep\n");
    e.write("proj/edited.txt", b"base\n");
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    e.write("proj/added/new.txt", b"added on b\n");
    e.write("proj/edited.txt", b"edited on b\n");
    e.switch("main", None).expect("switch");
    std::fs::remove_file(e.p("proj/old.txt")).expect("rm");
    std::fs::remove_file(e.p("proj/edited.txt")).expect("rm");
    let out = e.merge("b");
    assert_eq!(e.read("proj/added/new.txt"), b"added on b\n");
    assert!(!e.p("proj/old.txt").exists(), "deleted on main, untouched on b: stays deleted");
    assert_eq!(e.read("proj/keep.txt"), b"keep\n");
    // Edited on b, deleted on main: the edit is kept and reported.
    assert_eq!(e.read("proj/edited.txt"), b"edited on b\n");
    assert_eq!(
        out.conflicts.iter().map(|c| (c.path.as_str(), c.kind.as_str())).collect::<Vec<_>>(),
        [("proj/edited.txt", "deleted-by-us")]
    );
}

#[test]
fn commit_advances_the_current_branch() {
    let e = env();
    e.write("proj/a.txt", b"1\n");
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    let tip0 = branch::find(&e.lake, VOL, "b", None).expect("b").tip.expect("tip");
    e.write("proj/a.txt", b"2\n");
    e.write("elsewhere.txt", b"x\n");
    let head = e.flush();
    let eff = branch::on_commit(&e.lake, VOL, &["proj/a.txt".into()], head, "two").expect("on_commit");
    assert_eq!(eff.advanced.len(), 1);
    let tip1 = branch::find(&e.lake, VOL, "b", None).expect("b").tip.expect("tip");
    assert_ne!(tip0, tip1);
    assert_eq!(e.lake.read_commit(&tip1).expect("c").parents, [tip0]);
    let eff = branch::on_commit(&e.lake, VOL, &["elsewhere.txt".into()], head, "x").expect("on_commit");
    assert!(eff.advanced.is_empty(), "paths outside every scope move no branch");
}

#[test]
fn kind_clash_keeps_ours_and_puts_their_directory_beside_it() {
    let e = env();
    e.write("proj/x", b"a file\n");
    e.create("proj", "b");
    e.switch("b", None).expect("switch");
    std::fs::remove_file(e.p("proj/x")).expect("rm");
    e.write("proj/x/inner.txt", b"now a directory\n");
    e.switch("main", None).expect("switch");
    e.write("proj/x", b"a changed file\n");
    let out = e.merge("b");
    assert_eq!(out.conflicts.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["type"]);
    assert_eq!(e.read("proj/x"), b"a changed file\n");
    assert_eq!(e.read("proj/x.merge-b/inner.txt"), b"now a directory\n");
}

#[test]
fn dry_run_changes_nothing_and_main_merges_into_a_branch() {
    let e = env();
    e.write("proj/a.txt", lines(&["1", "2", "3"]).as_bytes());
    e.create("proj", "b");
    e.write("proj/a.txt", lines(&["1 on main", "2", "3"]).as_bytes());
    e.write("proj/main-only.txt", b"m\n");
    e.switch("b", None).expect("switch");
    e.write("proj/a.txt", lines(&["1", "2", "3 on b"]).as_bytes());
    e.flush();
    let before = e.snapshot("proj");
    let refs = e.lake.refs().expect("refs");
    let mut f = || flush(&e.lake, &e.work);
    let preview = merge::merge(&e.lake, VOL, "main", Some("proj"), &mut Workdir { root: &e.work, flush: &mut f }, true).expect("dry run");
    let mut kinds: Vec<(char, &str)> = preview.changes.iter().map(|c| (c.kind, c.path.as_str())).collect();
    kinds.sort();
    assert_eq!(kinds, [('A', "proj/main-only.txt"), ('M', "proj/a.txt")]);
    assert!(preview.conflicts.is_empty() && preview.commit.is_none());
    assert_eq!(e.snapshot("proj"), before, "a dry run leaves the files alone");
    assert_eq!(e.lake.refs().expect("refs"), refs, "and the refs");

    let mut f = || flush(&e.lake, &e.work);
    let out = merge::merge(&e.lake, VOL, "main", Some("proj"), &mut Workdir { root: &e.work, flush: &mut f }, false).expect("merge");
    assert_eq!((out.ours.as_str(), out.theirs.as_str()), ("b", "main"));
    assert_eq!(e.text("proj/a.txt"), lines(&["1 on main", "2", "3 on b"]));
    assert_eq!(e.read("proj/main-only.txt"), b"m\n");
    let tip = branch::find(&e.lake, VOL, "b", None).expect("b").tip.expect("tip");
    assert_eq!(Some(tip), out.commit);
    let main_tip = branch::find(&e.lake, VOL, "main", None).expect("main").tip.expect("tip");
    assert_eq!(e.lake.read_commit(&tip).expect("c").parents[1], main_tip);
    assert_eq!(merge::merge_base(&e.lake, &tip, &main_tip).expect("base"), Some(main_tip));
}

#[test]
fn one_branch_operation_at_a_time() {
    let e = env();
    e.write("proj/a.txt", b"a\n");
    e.create("proj", "b");
    let held = branch::lock_ops(&e.lake, VOL).expect("lock");
    let err = e.switch("b", None).expect_err("the volume's branch lock is held");
    assert!(err.to_string().contains("another branch or merge operation"), "{err}");
    drop(held);
    e.switch("b", None).expect("free again");
}

/// A lock whose holder is about to let go (a command finishing, or a child
/// process between fork and exec still sharing its descriptor) is waited for
/// briefly instead of failing the next operation with Busy.
#[test]
fn a_lock_released_within_moments_is_waited_for() {
    let e = env();
    e.write("proj/a.txt", b"a\n");
    e.create("proj", "b");
    let held = branch::lock_ops(&e.lake, VOL).expect("lock");
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(held);
    });
    e.switch("b", None).expect("the lock is free after 100 ms");
    release.join().expect("thread");
}
