//! Volume tests on a temporary lake: stat reuse, zones in commits, committer
//! batching, group-commit fsync, micro-snapshots, file_log and recovery. The
//! daemon is driven through its hooks, as the FUSE driver does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use lakefs::lake::CreateOptions;
use lakefs::tree::Node;

struct Fixture {
    _dir: tempfile::TempDir,
    lake: PathBuf,
}

/// The builtin zone map applies on /home: `.cache` POSIX, dotfiles HYBRID.
const MNT: &str = "/home";

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    Lake::create(&lake, &CreateOptions::default()).expect("lake");
    Fixture { _dir: dir, lake }
}

fn write(work: &Path, rel: &str, data: &[u8]) {
    let p = work.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, data).expect("write");
}

/// Sets a file's mtime well in the past, so stat reuse may trust it.
fn age(path: &Path) {
    let meta = lakefs::tree::Meta { mtime: 1_600_000_000, mtime_nsec: 123, ..Default::default() };
    lakefs::fsmeta::set_times(path, &meta).expect("utimensat");
}

fn file_bytes(v: &Volume, commit: &ObjectId, rel: &str) -> Option<Vec<u8>> {
    let c = v.lake().read_commit(commit).expect("commit");
    match v.lake().lookup(&c.tree, rel).expect("lookup") {
        Some(Node::File { content, .. }) => {
            let mut out = Vec::new();
            v.lake().write_content(&content, &mut out).expect("content");
            Some(out)
        }
        _ => None,
    }
}

fn head_bytes(v: &Volume, rel: &str) -> Option<Vec<u8>> {
    file_bytes(v, &v.head().expect("head").expect("has head"), rel)
}

fn commits(v: &Volume) -> Vec<lakefs::commit::Commit> {
    let mut out = Vec::new();
    let mut cur = v.head().expect("head");
    while let Some(id) = cur {
        let c = v.lake().read_commit(&id).expect("commit");
        cur = c.parents.first().copied();
        out.push(c);
    }
    out
}

#[test]
fn stat_reuse_skips_unchanged_files_and_renamed_dirs() {
    let f = fixture();
    let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
    for i in 0..20 {
        write(v.work_dir(), &format!("alice/docs/f{i}.txt"), format!("file {i}").as_bytes());
        age(&v.work_dir().join(format!("alice/docs/f{i}.txt")));
    }
    let first = v.commit_all("manual", "first").expect("commit");
    assert_eq!(first.stats.reused, 0);
    // Nothing changed: every file is reused, no new commit.
    let again = v.commit_all("manual", "again").expect("commit");
    assert!(again.unchanged);
    assert_eq!(again.stats.reused, 20);
    // One file changed: only it is read.
    write(v.work_dir(), "alice/docs/f3.txt", b"changed, longer");
    let third = v.commit_all("manual", "third").expect("commit");
    assert!(!third.unchanged);
    assert_eq!(third.stats.reused, 19);
    assert_eq!(head_bytes(&v, "alice/docs/f3.txt").as_deref(), Some(&b"changed, longer"[..]));
    // A renamed directory is found again by inode: none of its files is read.
    std::fs::rename(v.work_dir().join("alice/docs"), v.work_dir().join("alice/papers")).expect("rename");
    let renamed = v.commit_paths(&["alice/docs".into(), "alice/papers".into()], "close", "rename").expect("commit");
    assert_eq!(renamed.stats.files, 20);
    assert!(renamed.stats.reused >= 19, "reused {}", renamed.stats.reused);
    assert_eq!(head_bytes(&v, "alice/papers/f0.txt").as_deref(), Some(&b"file 0"[..]));
    assert_eq!(head_bytes(&v, "alice/docs/f0.txt"), None);
}

#[test]
fn posix_zone_paths_are_never_committed() {
    let f = fixture();
    let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
    write(v.work_dir(), "alice/notes.txt", b"notes");
    write(v.work_dir(), "alice/.cache/big.bin", b"cache");
    write(v.work_dir(), "alice/.bashrc", b"alias ll='ls -l'");
    v.commit_all("manual", "first").expect("commit");
    assert!(head_bytes(&v, "alice/notes.txt").is_some());
    assert!(head_bytes(&v, "alice/.bashrc").is_some());
    assert_eq!(head_bytes(&v, "alice/.cache/big.bin"), None);
    // Named explicitly in a change list, still left out.
    write(v.work_dir(), "alice/.cache/other", b"x");
    v.commit_paths(&["alice/.cache/other".into(), "alice/.cache".into()], "close", "c").expect("commit");
    assert_eq!(head_bytes(&v, "alice/.cache/other"), None);
    let c = v.lake().read_commit(&v.head().expect("head").expect("some")).expect("commit");
    assert_eq!(v.lake().lookup(&c.tree, "alice/.cache").expect("lookup"), None);
    // An override moves a path out of history.
    let mut o = crate::zones::ZonesFile::default_empty();
    o.set_override("alice/build", Zone::Posix);
    std::fs::write(v.state_dir().join(ZONES_FILE), o.to_toml().expect("toml")).expect("write");
    v.reload_zones().expect("reload");
    write(v.work_dir(), "alice/build/out.o", b"obj");
    v.commit_all("manual", "rescan").expect("commit");
    assert_eq!(head_bytes(&v, "alice/build/out.o"), None);
}

fn daemon(f: &Fixture, batch_delay: Duration) -> Arc<Daemon> {
    Daemon::start_with(&f.lake, "home", Path::new(MNT), DaemonOptions { batch_delay, tick: Duration::from_millis(20) }).expect("daemon")
}

/// Polls `cond` (up to a minute: a bound for a hung committer, not a timing claim).
fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..6000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("condition not reached within a minute");
}

#[test]
fn committer_batches_many_changes_into_one_commit() {
    let f = fixture();
    // A batch delay far beyond the test: only the flush commits.
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    let before = commits(v).len();
    for i in 0..300 {
        let rel = format!("alice/src/m{i}.rs");
        write(v.work_dir(), &rel, format!("fn f{i}() {{}}").as_bytes());
        d.opened_for_write(rel.as_bytes());
        d.changed(rel.as_bytes());
        d.released(rel.as_bytes());
    }
    d.changed(b"alice/.cache/junk");
    let reply: serde_json::Value = serde_json::from_slice(&d.control(&Caller::root(), br#"{"op":"flush"}"#)).expect("json");
    assert_eq!(reply["ok"], true, "{reply}");
    let all = commits(v);
    assert_eq!(all.len(), before + 1, "300 closes make one commit");
    assert_eq!(all[0].trigger, "close");
    assert_eq!(reply["commit"].as_str(), Some(v.head().expect("head").expect("some").to_string().as_str()));
    assert_eq!(head_bytes(v, "alice/src/m299.rs").as_deref(), Some(&b"fn f299() {}"[..]));
    d.shutdown().expect("shutdown");
    assert!(v.state_dir().join(CLEAN_MARKER).exists());
}

/// Paths the catalog's full-text search finds for `word`.
fn found(v: &Volume, word: &str) -> Vec<String> {
    lake_catalog::fts::search(v.lake(), "home", word, 10).expect("search").into_iter().map(|h| h.path).collect()
}

#[test]
fn catalog_follows_batches_once_quiet_and_at_a_flush() {
    let f = fixture();
    let d = daemon(&f, Duration::from_millis(50));
    let v = d.volume();
    // A batch commits; the catalog pass follows once nothing is pending.
    write(v.work_dir(), "alice/birds.txt", b"a pelican on the pier\n");
    d.changed(b"alice/birds.txt");
    wait_until(|| head_bytes(v, "alice/birds.txt").is_some());
    wait_until(|| found(v, "pelican") == ["alice/birds.txt"]);
    // A flush returns with the catalog current (the batch delay is not waited for).
    let d2 = daemon_flush_only(&f, d);
    let v = d2.volume();
    write(v.work_dir(), "alice/more.txt", b"a cormorant drying its wings\n");
    d2.changed(b"alice/more.txt");
    let reply: serde_json::Value = serde_json::from_slice(&d2.control(&Caller::root(), br#"{"op":"flush"}"#)).expect("json");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(found(v, "cormorant"), ["alice/more.txt"]);
    d2.shutdown().expect("shutdown");
}

/// Restarts the volume's daemon with a batch delay far beyond the test, so only a flush commits.
fn daemon_flush_only(f: &Fixture, d: Arc<Daemon>) -> Arc<Daemon> {
    d.shutdown().expect("shutdown");
    drop(d);
    daemon(f, Duration::from_secs(3600))
}

#[test]
fn fsync_waits_for_a_commit_holding_the_file() {
    let f = fixture();
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    write(v.work_dir(), "alice/log.txt", b"");
    d.opened_for_write(b"alice/log.txt");
    // Several writers fsync at once: each returns with its bytes committed.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let d = d.clone();
            std::thread::spawn(move || {
                let rel = format!("alice/w{t}.txt");
                for round in 0..5 {
                    let body = format!("writer {t} round {round}\n").repeat(round + 1);
                    write(d.work_dir(), &rel, body.as_bytes());
                    d.fsync(rel.as_bytes()).expect("fsync");
                    assert_eq!(head_bytes(d.volume(), &rel).as_deref(), Some(body.as_bytes()));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    assert!(commits(v).iter().any(|c| c.trigger == "fsync"));
    // HYBRID and POSIX files: fsync returns without a commit.
    let n = commits(v).len();
    write(v.work_dir(), "alice/.bash_history", b"ls\n");
    d.fsync(b"alice/.bash_history").expect("fsync");
    d.fsync(b"alice/.cache/x").expect("fsync");
    assert_eq!(commits(v).len(), n);
    d.shutdown().expect("shutdown");
}

#[test]
fn micro_snapshots_for_lake_files_open_for_writing_not_hybrid() {
    let f = fixture();
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    write(v.work_dir(), "alice/draft.txt", b"");
    write(v.work_dir(), "alice/.profile", b"");
    d.opened_for_write(b"alice/draft.txt");
    d.opened_for_write(b"alice/.profile");
    write(v.work_dir(), "alice/draft.txt", b"first words");
    write(v.work_dir(), "alice/.profile", b"export A=1");
    // The text policy (2 s) snapshots the draft while it stays open.
    wait_until(|| head_bytes(v, "alice/draft.txt").as_deref() == Some(&b"first words"[..]));
    let all = commits(v);
    assert_eq!(all[0].trigger, "snapshot");
    // The HYBRID file open alongside it was not snapshotted.
    assert_eq!(head_bytes(v, "alice/.profile"), None);
    // The journal lists both open files.
    wait_until(|| recovery::read_journal(v).expect("journal").len() == 2);
    d.released(b"alice/.profile");
    d.control(&Caller::root(), br#"{"op":"flush"}"#);
    assert_eq!(head_bytes(v, "alice/.profile").as_deref(), Some(&b"export A=1"[..]));
    d.shutdown().expect("shutdown");
}

#[test]
fn control_commit_takes_exactly_the_given_paths() {
    let f = fixture();
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    write(v.work_dir(), "alice/a.txt", b"a1");
    write(v.work_dir(), "alice/b.txt", b"b1");
    write(v.work_dir(), "alice/c.txt", b"c1");
    d.changed(b"alice/a.txt");
    d.changed(b"alice/b.txt");
    d.changed(b"alice/c.txt");
    let r: serde_json::Value =
        serde_json::from_slice(&d.control(&Caller::root(), br#"{"op":"commit","paths":["alice/a.txt","alice/b.txt"],"message":"two"}"#))
            .expect("json");
    assert_eq!(r["ok"], true, "{r}");
    let c = &commits(v)[0];
    assert_eq!((c.trigger.as_str(), c.message.as_str()), ("manual", "two"));
    assert!(head_bytes(v, "alice/a.txt").is_some() && head_bytes(v, "alice/b.txt").is_some());
    assert_eq!(head_bytes(v, "alice/c.txt"), None);
    let bad: serde_json::Value =
        serde_json::from_slice(&d.control(&Caller::root(), br#"{"op":"commit","paths":["../etc"]}"#)).expect("json");
    assert_eq!(bad["ok"], false);
    let bad: serde_json::Value = serde_json::from_slice(&d.control(&Caller::root(), b"nonsense")).expect("json");
    assert_eq!(bad["ok"], false);
    d.shutdown().expect("shutdown");
}

#[test]
fn file_log_lists_versions_newest_first() {
    let f = fixture();
    let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
    write(v.work_dir(), "alice/other.txt", b"o");
    v.commit_all("manual", "start").expect("commit");
    for (i, body) in ["one", "two", "two"].iter().enumerate() {
        write(v.work_dir(), "alice/f.txt", body.as_bytes());
        write(v.work_dir(), "alice/other.txt", format!("o{i}").as_bytes());
        v.commit_paths(&["alice/f.txt".into(), "alice/other.txt".into()], "close", &format!("v{i}")).expect("commit");
    }
    std::fs::remove_file(v.work_dir().join("alice/f.txt")).expect("rm");
    v.commit_paths(&["alice/f.txt".into()], "close", "rm").expect("commit");
    let log = file_log::file_log(v.lake(), v.reference(), b"alice/f.txt").expect("log");
    let kinds: Vec<(&str, Option<u64>)> = log.iter().map(|e| (e.kind.as_str(), e.size)).collect();
    // deleted; "two" (the second write kept its bytes but got a new mtime: a version too, metadata only); "one".
    assert_eq!(log[0].message, "rm");
    assert_eq!(kinds[0], ("deleted", None));
    assert_eq!(log.last().expect("oldest").message, "v0");
    assert_eq!(log.last().expect("oldest").size, Some(3));
    assert!(log.iter().all(|e| e.message != "start"));
    let limited = file_log::file_log_limit(v.lake(), v.reference(), b"alice/f.txt", 1).expect("log");
    assert_eq!(limited.len(), 1);
    assert!(file_log::file_log(v.lake(), v.reference(), b"nobody/here").expect("log").is_empty());
}

#[test]
fn recovery_puts_open_files_back_and_keeps_newer_bytes() {
    let f = fixture();
    {
        let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
        write(v.work_dir(), "alice/db.txt", b"snapshot bytes");
        write(v.work_dir(), "alice/closed.txt", b"closed v1");
        v.commit_all("manual", "first").expect("commit");
        // The crash: db.txt was open and got more bytes, a new file was open and
        // never committed, closed.txt changed but was not open.
        write(v.work_dir(), "alice/db.txt", b"snapshot bytes and more");
        write(v.work_dir(), "alice/new.txt", b"never committed");
        write(v.work_dir(), "alice/closed.txt", b"closed v2");
        recovery::write_journal(&v, &["alice/db.txt".into(), "alice/new.txt".into()]).expect("journal");
    }
    // No clean marker: start recovers.
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    let work = v.work_dir();
    assert_eq!(std::fs::read(work.join("alice/db.txt")).expect("read"), b"snapshot bytes");
    assert!(!work.join("alice/new.txt").exists());
    let lf: Vec<_> = std::fs::read_dir(work.join(LOST_FOUND)).expect("lost+found").collect();
    assert_eq!(lf.len(), 1);
    let lf = lf[0].as_ref().expect("entry").path();
    assert_eq!(std::fs::read(lf.join("alice/db.txt")).expect("read"), b"snapshot bytes and more");
    assert_eq!(std::fs::read(lf.join("alice/new.txt")).expect("read"), b"never committed");
    let head = &commits(v)[0];
    assert_eq!(head.trigger, "recovery");
    assert_eq!(head_bytes(v, "alice/closed.txt").as_deref(), Some(&b"closed v2"[..]));
    let lf_rel = lf.strip_prefix(work).expect("inside").to_string_lossy().into_owned();
    assert_eq!(head_bytes(v, &format!("{lf_rel}/alice/db.txt")).as_deref(), Some(&b"snapshot bytes and more"[..]));
    assert_eq!(recovery::read_journal(v).expect("journal"), Vec::<Vec<u8>>::new());
    d.shutdown().expect("shutdown");
    // A clean restart changes nothing.
    let n = {
        let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
        commits(&v).len()
    };
    let d = daemon(&f, Duration::from_secs(3600));
    assert_eq!(commits(d.volume()).len(), n);
    d.shutdown().expect("shutdown");
}

#[test]
fn recovery_puts_a_sparse_file_back_sparse() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let f = fixture();
    let img = {
        let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
        std::fs::create_dir_all(v.work_dir().join("alice")).expect("mkdir");
        let img = v.work_dir().join("alice/disk.img");
        let file = std::fs::File::create(&img).expect("create");
        file.set_len(64 << 20).expect("truncate");
        file.write_all_at(b"snapshot", 32 << 20).expect("write");
        drop(file);
        v.commit_all("manual", "first").expect("commit");
        // The crash: open for writing, and written into a hole since its snapshot.
        let file = std::fs::OpenOptions::new().write(true).open(&img).expect("open");
        file.write_all_at(&[1u8; 8 << 20], 0).expect("write");
        drop(file);
        recovery::write_journal(&v, &[b"alice/disk.img".to_vec()]).expect("journal");
        img
    };
    let d = daemon(&f, Duration::from_secs(3600));
    let back = std::fs::read(&img).expect("read");
    assert_eq!(back.len(), 64 << 20);
    assert_eq!(&back[32 << 20..(32 << 20) + 8], b"snapshot");
    assert!(back[..32 << 20].iter().all(|b| *b == 0), "back at the snapshot");
    let allocated = std::fs::metadata(&img).expect("stat").blocks() * 512;
    assert!(allocated < 1 << 20, "recovery allocated {allocated} bytes");
    d.shutdown().expect("shutdown");
}

#[test]
fn file_holds_compares_sparse_files_without_reading_their_holes() {
    use std::os::unix::fs::FileExt;
    let f = fixture();
    let v = Volume::open(&f.lake, "home", Path::new(MNT)).expect("volume");
    std::fs::create_dir_all(v.work_dir().join("alice")).expect("mkdir");
    let img = v.work_dir().join("alice/disk.img");
    let file = std::fs::File::create(&img).expect("create");
    file.set_len(64 << 20).expect("truncate");
    file.write_all_at(b"data", 16 << 20).expect("write");
    drop(file);
    v.commit_all("manual", "first").expect("commit");
    let c = v.lake().read_commit(&v.head().expect("head").expect("some")).expect("commit");
    let Some(Node::File { content, .. }) = v.lake().lookup(&c.tree, "alice/disk.img").expect("lookup") else { panic!("a file") };
    assert!(matches!(content, lakefs::tree::Content::Chunked(_)), "stored as a chunk list");
    assert!(file_holds(v.lake(), &img, &content).expect("compare"));
    let other = v.work_dir().join("other.img");
    let changed = |edit: &dyn Fn(&std::fs::File)| {
        std::fs::copy(&img, &other).expect("copy");
        let f = std::fs::OpenOptions::new().write(true).open(&other).expect("open");
        edit(&f);
        drop(f);
        file_holds(v.lake(), &other, &content).expect("compare")
    };
    assert!(!changed(&|f| f.write_all_at(b"x", 40 << 20).expect("write")), "a byte where the version has a hole");
    assert!(!changed(&|f| f.write_all_at(b"D", 16 << 20).expect("write")), "a byte of the data");
    assert!(!changed(&|f| f.set_len(65 << 20).expect("grow")), "longer");
    assert!(changed(&|f| f.write_all_at(&[0], 40 << 20).expect("write")), "a zero written into a hole is the same content");
}

#[test]
fn a_file_renamed_while_open_is_committed_under_its_new_name() {
    let f = fixture();
    let d = daemon(&f, Duration::from_secs(3600));
    let v = d.volume();
    write(v.work_dir(), "alice/tmp.txt", b"");
    d.opened_for_write(b"alice/tmp.txt");
    write(v.work_dir(), "alice/tmp.txt", b"saved");
    // An editor's save: rename over the final name while still open.
    std::fs::rename(v.work_dir().join("alice/tmp.txt"), v.work_dir().join("alice/final.txt")).expect("rename");
    d.changed(b"alice/tmp.txt");
    d.changed(b"alice/final.txt");
    d.control(&Caller::root(), br#"{"op":"flush"}"#);
    assert_eq!(head_bytes(v, "alice/final.txt").as_deref(), Some(&b"saved"[..]));
    assert_eq!(head_bytes(v, "alice/tmp.txt"), None);
    let st: serde_json::Value = serde_json::from_slice(&d.control(&Caller::root(), br#"{"op":"status"}"#)).expect("json");
    assert_eq!(st["open"], serde_json::json!([]), "the old name is no longer open");
    d.shutdown().expect("shutdown");
}
