//! SIGKILL the volume daemon during a write-heavy workload, remount, and check:
//! every fsync-confirmed version is in history with the right bytes; every file
//! that was open at the kill is back at its last committed version (its last
//! micro-snapshot or fsync) with its newer bytes in lost+found; fsck.lakefs is
//! clean. Uses the real `lakefs mount --foreground` binary on a temp lake, and
//! repeats the kill several times in one run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lake_volume::file_log;
use lakefs::lake::{CreateOptions, Lake};
use lakefs::tree::Node;

const WRITERS: usize = 4;
const ROUNDS: usize = 3;
const VOLUME: &str = "home";

fn lazy_unmount(mnt: &Path) {
    if lake_testkit::fuse::is_mounted(mnt) {
        let _ = Command::new("umount").arg("-l").arg(mnt).status();
    }
}

/// The mount process; killed and lazily unmounted if a failed assertion skips that.
struct Mount {
    child: Option<Child>,
    mnt: PathBuf,
}

impl Mount {
    fn start(lake: &Path, mnt: &Path, log: &Path) -> Mount {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_lakefs"))
            .args(["mount", "--foreground", "--name", VOLUME])
            .arg(lake)
            .arg(mnt)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start lakefs mount");
        let mut m = Mount { child: Some(child), mnt: mnt.to_owned() };
        // Up when the daemon answers `.lake/info` (a bound for a hung start, not a timing claim).
        for _ in 0..6000 {
            if mnt.join(".lake/info").is_file() {
                return m;
            }
            if let Some(st) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("lakefs mount exited early: {st}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the mount did not come up within a minute");
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
        lazy_unmount(&self.mnt);
    }

    /// SIGTERM: final commit, clean unmount.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
            let st = c.wait().expect("wait");
            assert!(st.success(), "lakefs mount exited with {st} after SIGTERM");
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Only a mount still running is ours to take down: after kill() or stop()
        // the mount point may already hold the next mount.
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            lazy_unmount(&self.mnt);
        }
    }
}

/// The bytes writer `t` of `round` has written after `n` records.
fn content(round: usize, t: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        out.extend_from_slice(record(round, t, i).as_bytes());
    }
    out
}

fn record(round: usize, t: usize, i: usize) -> String {
    // Records of varying length, so versions differ in size as well as bytes.
    format!("round {round} writer {t} record {i:06} {}\n", "x".repeat(i % 37))
}

struct Confirmed {
    /// (mount-relative path, records confirmed by a returned fsync).
    fsynced: Mutex<Vec<(String, usize)>>,
}

/// Appends records to one file kept open; fsync after every few records. Stops
/// at the first error (the daemon is gone) or when told.
fn writer(mnt: PathBuf, rel: String, round: usize, t: usize, stop: Arc<AtomicBool>, conf: Arc<Confirmed>) {
    let path = mnt.join(&rel);
    let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) else { return };
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        if f.write_all(record(round, t, i).as_bytes()).is_err() {
            return;
        }
        i += 1;
        if i % (3 + t) == 0 {
            if f.sync_all().is_err() {
                return;
            }
            conf.fsynced.lock().expect("lock").push((rel.clone(), i));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Small files written, fsync'd and closed, one after another.
fn closer(mnt: PathBuf, dir: String, stop: Arc<AtomicBool>, conf: Arc<Confirmed>) {
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let rel = format!("{dir}/note{i:04}.txt");
        let body = content(1000 + i, 0, 1 + i % 5);
        let ok = std::fs::File::create(mnt.join(&rel)).and_then(|mut f| {
            f.write_all(&body)?;
            f.sync_all()
        });
        if ok.is_err() {
            return;
        }
        conf.fsynced.lock().expect("lock").push((rel, usize::MAX - i));
        i += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn expected(rel: &str, n: usize) -> Vec<u8> {
    if n > usize::MAX / 2 {
        let i = usize::MAX - n;
        return content(1000 + i, 0, 1 + i % 5);
    }
    let name = rel.rsplit('/').next().expect("name");
    let t: usize = name.trim_start_matches('w').trim_end_matches(".log").parse().expect("writer number");
    let round: usize = rel.split('/').nth(1).expect("round dir").trim_start_matches('r').parse().expect("round");
    content(round, t, n)
}

fn node_bytes(lake: &Lake, node: &Node) -> Option<Vec<u8>> {
    match node {
        Node::File { content, .. } => {
            let mut out = Vec::new();
            lake.write_content(content, &mut out).expect("content");
            Some(out)
        }
        _ => None,
    }
}

fn bytes_at(lake: &Lake, commit: &lakefs::ObjectId, rel: &str) -> Option<Vec<u8>> {
    let c = lake.read_commit(commit).expect("commit");
    lake.lookup(&c.tree, rel).expect("lookup").and_then(|n| node_bytes(lake, &n))
}

#[test]
fn sigkill_during_writes_loses_nothing_recorded() {
    if !lake_testkit::require_fuse() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    drop(Lake::create(&lake_dir, &CreateOptions::default()).expect("lake"));
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let log = dir.path().join("mount.log");
    let work = lake_dir.join("state").join(VOLUME);
    let conf = Arc::new(Confirmed { fsynced: Mutex::new(Vec::new()) });

    let t0 = std::time::Instant::now();
    let mut mount = Mount::start(&lake_dir, &mnt, &log);
    for round in 0..ROUNDS {
        eprintln!("round {round} starts at {:?}", t0.elapsed());
        let rdir = format!("alice/r{round}");
        std::fs::create_dir_all(mnt.join(&rdir)).expect("round dir");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let open_files: Vec<String> = (0..WRITERS).map(|t| format!("{rdir}/w{t}.log")).collect();
        for (t, rel) in open_files.iter().enumerate() {
            let (m, r, s, c) = (mnt.clone(), rel.clone(), stop.clone(), conf.clone());
            threads.push(std::thread::spawn(move || writer(m, r, round, t, s, c)));
        }
        let (m, s, c) = (mnt.clone(), stop.clone(), conf.clone());
        let notes = format!("{rdir}/notes");
        std::fs::create_dir_all(mnt.join(&notes)).expect("notes dir");
        threads.push(std::thread::spawn(move || closer(m, notes, s, c)));

        // Long enough for micro-snapshots (text: every 2 s) and journal ticks.
        std::thread::sleep(Duration::from_millis(4500));
        mount.kill();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("writer thread");
        }

        // What the crash left: the last committed head and the working tree's bytes.
        let (head_before, at_kill): (lakefs::ObjectId, BTreeMap<String, Vec<u8>>) = {
            let lake = Lake::open(&lake_dir).expect("open lake");
            let head = lake.get_ref(&format!("{VOLUME}/main")).expect("ref").expect("volume has history");
            let bytes = open_files.iter().filter_map(|rel| std::fs::read(work.join(rel)).ok().map(|b| (rel.clone(), b))).collect();
            (head, bytes)
        };

        eprintln!("killed at {:?}", t0.elapsed());
        mount = Mount::start(&lake_dir, &mnt, &log);
        eprintln!("remounted at {:?}", t0.elapsed());
        let lake = Lake::open(&lake_dir).expect("open lake");
        let reference = format!("{VOLUME}/main");

        // Open files: back at their last committed version, newer bytes in lost+found.
        let mut snapshotted = 0;
        for rel in &open_files {
            let committed = bytes_at(&lake, &head_before, rel);
            let now = std::fs::read(mnt.join(rel));
            let work_now = std::fs::read(work.join(rel)).ok().map(|b| b.len());
            assert!(
                now.as_ref().ok() == committed.as_ref(),
                "{rel}: after recovery the file is its last committed version: through the mount {:?}, working tree {:?} bytes, committed {:?} bytes, at the kill {:?} bytes\n{}",
                now.as_ref().map(|b| b.len()),
                work_now,
                committed.as_ref().map(|b| b.len()),
                at_kill.get(rel).map(|b| b.len()),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            if committed.is_some() {
                snapshotted += 1;
            }
            let killed = at_kill.get(rel).expect("the writer created its file");
            if Some(killed) != committed.as_ref() {
                let found: Vec<PathBuf> = std::fs::read_dir(mnt.join("lost+found"))
                    .expect("lost+found exists")
                    .filter_map(|e| e.ok().map(|e| e.path().join(rel)))
                    .filter(|p| p.is_file())
                    .collect();
                assert_eq!(found.len(), 1, "{rel}: newer bytes in exactly one lost+found entry");
                assert!(&std::fs::read(&found[0]).expect("read") == killed, "{rel}: lost+found holds the bytes at the kill");
                let lf_rel = found[0].strip_prefix(&mnt).expect("inside the mount").to_string_lossy().into_owned();
                let head = lake.get_ref(&reference).expect("ref").expect("head");
                assert!(bytes_at(&lake, &head, &lf_rel).as_ref() == Some(killed), "{lf_rel} is committed");
            }
        }
        assert!(snapshotted > 0, "round {round}: some open file had a committed version before the kill");
        let head = lake.get_ref(&reference).expect("ref").expect("head");
        assert_eq!(lake.read_commit(&head).expect("commit").trigger, "recovery");

        // Every fsync-confirmed version is in history with its bytes.
        let confirmed = conf.fsynced.lock().expect("lock").clone();
        assert!(confirmed.len() > WRITERS, "round {round}: the workload confirmed some fsyncs");
        let mut by_file: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (rel, n) in confirmed {
            by_file.entry(rel).or_default().push(n);
        }
        let head = lake.get_ref(&reference).expect("ref").expect("head");
        for (rel, ns) in &by_file {
            if ns.iter().all(|n| *n > usize::MAX / 2) {
                // A note is written once, fsync'd and closed: its version is the head's.
                let want = expected(rel, ns[0]);
                assert!(bytes_at(&lake, &head, rel).as_ref() == Some(&want), "{rel}: fsync-confirmed note missing from history");
                continue;
            }
            let versions: Vec<Vec<u8>> = file_log::file_log(&lake, &reference, rel.as_bytes())
                .expect("file log")
                .iter()
                .filter_map(|v| v.node.as_ref().and_then(|n| node_bytes(&lake, n)))
                .collect();
            for n in ns {
                let want = expected(rel, *n);
                assert!(versions.contains(&want), "{rel}: fsync-confirmed version ({} bytes) missing from history", want.len());
            }
        }
    }
    eprintln!("rounds done at {:?}", t0.elapsed());
    mount.stop();
    eprintln!("stopped at {:?}", t0.elapsed());

    let fsck = Command::new(env!("CARGO_BIN_EXE_fsck-lakefs")).arg(&lake_dir).output().expect("run fsck-lakefs");
    assert!(
        fsck.status.success(),
        "fsck-lakefs: {}\n{}{}",
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let lake = Lake::open(&lake_dir).expect("open");
    let head = lake.get_ref(&format!("{VOLUME}/main")).expect("ref").expect("head");
    assert!(lake.read_commit(&head).is_ok());
}
