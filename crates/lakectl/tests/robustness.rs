//! Robustness of lakectl and the lake under abuse: writers killed at random
//! moments, directories that are not lakes, lakes from the future, truncated
//! packs, a full disk, and hostile change lists.
//!
//! Every test drives the real binaries (`lakectl`, and `fsck-lakefs` from the
//! same target directory). Randomised tests print their seed; set
//! `LAKE_TEST_SEED=<n>` to replay one.
//!
//! Run: `cargo build --release --workspace && cargo test --release -p lakectl --test tests robustness::`

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

// ---------------------------------------------------------------- helpers

fn lakectl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lakectl"))
}

/// `fsck-lakefs` belongs to the lakefs crate, so `cargo test -p lakectl` does not build it.
fn fsck_lakefs() -> PathBuf {
    let p = lakectl().with_file_name("fsck-lakefs");
    assert!(
        p.is_file(),
        "{} is missing: it is a binary of the lakefs crate, which `cargo test -p lakectl` does not build. \
         Run `cargo build --release --workspace` first (or `cargo build --workspace` when testing without --release).",
        p.display()
    );
    p
}

fn seed(test: &str) -> u64 {
    let s = std::env::var("LAKE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::rng().random());
    eprintln!("{test}: seed {s} (replay with LAKE_TEST_SEED={s})");
    s
}

fn cmd(lake: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(lakectl());
    c.env_remove("LAKE").arg("--lake").arg(lake).arg("-q").args(args);
    c
}

fn run(lake: &Path, args: &[&str]) -> Output {
    cmd(lake, args).output().expect("cannot run lakectl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn describe(args: &[&str], out: &Output) -> String {
    format!("lakectl {args:?}: {}\n--- stdout:\n{}\n--- stderr:\n{}", out.status, text(&out.stdout), text(&out.stderr))
}

/// Runs lakectl, insists on success, returns stdout.
fn ok(lake: &Path, args: &[&str]) -> String {
    let out = run(lake, args);
    assert!(out.status.success(), "expected success: {}", describe(args, &out));
    text(&out.stdout)
}

/// Runs lakectl, insists on a clean failure (an exit code, not a signal or a panic), returns stderr.
fn fails(lake: &Path, args: &[&str]) -> String {
    let out = run(lake, args);
    assert!(!out.status.success(), "expected failure: {}", describe(args, &out));
    assert!(out.status.code().is_some(), "killed by a signal instead of failing: {}", describe(args, &out));
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "lakectl panicked: {}", describe(args, &out));
    assert!(err.contains("error"), "no error message on stderr: {}", describe(args, &out));
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn commit_id_of(stdout: &str) -> Option<String> {
    let last = stdout.lines().last()?.trim();
    let hex = last.strip_prefix("b3:")?;
    (hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit())).then(|| last.to_owned())
}

fn commit(lake: &Path, src: &Path, msg: &str, extra: &[&str]) -> String {
    let mut args = vec!["commit", s(src), "-m", msg];
    args.extend_from_slice(extra);
    let out = ok(lake, &args);
    commit_id_of(&out).unwrap_or_else(|| panic!("no commit id in the output of commit: {out:?}"))
}

/// (id, message) of the history of `rev`, newest first.
fn log(lake: &Path, rev: &str) -> Vec<(String, String)> {
    let out = ok(lake, &["log", "--json", rev]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("log --json is not JSON ({e}): {out}"));
    v.as_array()
        .unwrap_or_else(|| panic!("log --json is not an array: {out}"))
        .iter()
        .map(|c| (c["id"].as_str().expect("id").to_owned(), c["message"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

fn log_ids(lake: &Path, rev: &str) -> Vec<String> {
    log(lake, rev).into_iter().map(|c| c.0).collect()
}

fn cat(lake: &Path, path_at: &str) -> Vec<u8> {
    let out = run(lake, &["cat", path_at]);
    assert!(out.status.success(), "expected success: {}", describe(&["cat", path_at], &out));
    out.stdout
}

fn fsck_clean(lake: &Path, when: &str) {
    let out = Command::new(fsck_lakefs()).arg("-q").arg(lake).output().expect("cannot run fsck-lakefs");
    assert!(
        out.status.code() == Some(0),
        "fsck-lakefs {} {when}: exit {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        lake.display(),
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Files in `<lake>/packs` and the number of packs the index knows.
fn packs_on_disk_and_indexed(lake: &Path) -> (usize, usize) {
    let on_disk = fs::read_dir(lake.join("packs")).expect("packs dir").count();
    let st: serde_json::Value = serde_json::from_str(&ok(lake, &["stats", "--json"])).expect("stats --json");
    (on_disk, st["packs"].as_u64().expect("stats.packs") as usize)
}

/// Random bytes, half of the time compressible (so both stored forms of records occur).
fn random_content(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    if rng.random_bool(0.5) {
        rng.fill_bytes(&mut b);
    } else {
        const A: &[u8] = b"lake os content-addressed store \n0123456789";
        b.iter_mut().for_each(|x| *x = A[rng.random_range(0..A.len())]);
    }
    b
}

fn write_file(path: &Path, bytes: &[u8]) {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ent {
    Dir,
    File(Vec<u8>),
    Symlink(PathBuf),
    Other,
}

/// Every path under `root` (relative, '/'-separated) with its kind and content.
fn snapshot(root: &Path) -> BTreeMap<String, Ent> {
    fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, Ent>) {
        let dir = root.join(rel);
        for e in fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let key = r.to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(key, Ent::Dir);
                walk(root, &r, out);
            } else if ft.is_file() {
                out.insert(key, Ent::File(fs::read(e.path()).unwrap()));
            } else if ft.is_symlink() {
                out.insert(key, Ent::Symlink(fs::read_link(e.path()).unwrap()));
            } else {
                assert!(ft.is_fifo() || ft.is_socket() || ft.is_char_device() || ft.is_block_device());
                out.insert(key, Ent::Other);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn assert_same_tree(expected: &BTreeMap<String, Ent>, got: &BTreeMap<String, Ent>, what: &str) {
    let a: BTreeSet<_> = expected.keys().collect();
    let b: BTreeSet<_> = got.keys().collect();
    assert_eq!(a, b, "{what}: different sets of paths (missing: {:?}, extra: {:?})", a.difference(&b), b.difference(&a));
    for (k, v) in expected {
        assert!(got[k] == *v, "{what}: {k} differs");
    }
}

// ---------------------------------------------------------------- 1. kill -9 during commits

struct Source {
    root: PathBuf,
    files: Vec<String>,
    next: usize,
}

const DIRS: [&str; 7] = ["", "etc", "etc/conf.d", "usr/lib", "usr/lib/deep/er", "usr/share/doc", "var/cache"];
const TRACKED: &str = "etc/tracked";
const BIG: [&str; 2] = ["usr/lib/big-1.bin", "var/cache/big-2.bin"];

impl Source {
    fn create(root: &Path, rng: &mut StdRng) -> Source {
        let mut src = Source { root: root.to_owned(), files: Vec::new(), next: 0 };
        for d in DIRS {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for _ in 0..300 {
            src.add(rng);
        }
        for b in BIG {
            // ~2 MiB, not a round number: several chunks and a chunk list each.
            let n = (2 << 20) + rng.random_range(0..100_000);
            write_file(&root.join(b), &random_content(rng, n));
        }
        src
    }

    fn add(&mut self, rng: &mut StdRng) {
        let d = DIRS[rng.random_range(0..DIRS.len())];
        let rel = if d.is_empty() { format!("f{:04}", self.next) } else { format!("{d}/f{:04}", self.next) };
        self.next += 1;
        let n = rng.random_range(0..64 * 1024);
        write_file(&self.root.join(&rel), &random_content(rng, n));
        self.files.push(rel);
    }

    /// A few rewrites, one new file, one deleted file, a new tracked file (returned),
    /// and now and then a small in-place edit of a big file.
    fn mutate(&mut self, rng: &mut StdRng, iter: usize) -> Vec<u8> {
        for _ in 0..3 {
            let rel = self.files[rng.random_range(0..self.files.len())].clone();
            let n = rng.random_range(0..64 * 1024);
            write_file(&self.root.join(rel), &random_content(rng, n));
        }
        self.add(rng);
        let victim = self.files.swap_remove(rng.random_range(0..self.files.len()));
        fs::remove_file(self.root.join(victim)).unwrap();
        if iter.is_multiple_of(7) {
            let p = self.root.join(BIG[iter % 2]);
            let mut b = fs::read(&p).unwrap();
            let at = rng.random_range(0..b.len() - 4096);
            rng.fill_bytes(&mut b[at..at + 4096]);
            fs::write(&p, b).unwrap();
        }
        // Sometimes bigger than a chunk (256 KiB), so sometimes a chunked file.
        let mut tracked = format!("iter-{iter}\n").into_bytes();
        let n = rng.random_range(0..300 * 1024);
        tracked.extend(random_content(rng, n));
        write_file(&self.root.join(TRACKED), &tracked);
        tracked
    }
}

#[test]
fn crash_kill_commit_200_times() {
    const ITERATIONS: usize = 200;
    fsck_lakefs(); // fail early when it is missing
    let seed = seed("crash_kill_commit_200_times");
    let mut rng = StdRng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let mut src = Source::create(&tmp.path().join("src"), &mut rng);
    ok(&lake, &["init"]);

    // (iteration, commit id, bytes of TRACKED in it) of every commit lakectl reported.
    let mut reported: Vec<(usize, String, Vec<u8>)> = Vec::new();
    let tracked = src.mutate(&mut rng, 0);
    let id = commit(&lake, &src.root, "iter-0", &[]);
    reported.push((0, id, tracked));
    // One unkilled incremental-size commit, timed: the scale of the kill window.
    let tracked = src.mutate(&mut rng, 1);
    let t = Instant::now();
    let id = commit(&lake, &src.root, "iter-1", &[]);
    let measured = t.elapsed();
    reported.push((1, id, tracked));
    let mut window = measured.mul_f64(1.2).max(Duration::from_millis(5));
    eprintln!("an unkilled commit takes {measured:?}; kill window starts at {window:?}");

    let started = Instant::now();
    let (mut killed, mut completed, mut killed_with_orphan, mut killed_after_index) = (0usize, 0usize, 0usize, 0usize);
    let mut head = reported.last().unwrap().1.clone();
    for iter in 2..ITERATIONS + 2 {
        let tracked = src.mutate(&mut rng, iter);
        let msg = format!("iter-{iter}");
        let mut child = cmd(&lake, &["commit", s(&src.root), "-m", &msg])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn lakectl commit");
        std::thread::sleep(window.mul_f64(rng.random_range(0.0..1.0)));
        // The child is not reaped yet, so this cannot hit another process.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
        let status = child.wait().unwrap();
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        if status.success() {
            let id = commit_id_of(&out).unwrap_or_else(|| panic!("iteration {iter}: commit succeeded but printed no id: {out:?}"));
            reported.push((iter, id, tracked));
            completed += 1;
            window = window.mul_f64(0.97);
        } else if status.signal() == Some(libc_sigkill()) {
            killed += 1;
            window = window.mul_f64(1.01);
        } else {
            panic!("iteration {iter}: commit failed by itself ({status}):\n{out}\n{err}");
        }
        if !status.success() {
            let (disk, indexed) = packs_on_disk_and_indexed(&lake);
            assert!(disk >= indexed, "iteration {iter}: {indexed} packs indexed but only {disk} files in packs/");
            if disk > indexed {
                killed_with_orphan += 1;
            }
        }

        // (a) the lake opens and main has a history.
        let history = log(&lake, "main");
        let ids: BTreeSet<&str> = history.iter().map(|c| c.0.as_str()).collect();
        // (b) fsck finds nothing wrong, orphan packs or not.
        fsck_clean(&lake, &format!("after iteration {iter} ({})", if status.success() { "completed" } else { "killed" }));
        // (c) nothing reported is ever lost, and main only moves forward.
        for (n, id, _) in &reported {
            assert!(ids.contains(id.as_str()), "iteration {iter}: reported commit {id} of iteration {n} is no longer in main's history");
        }
        assert!(ids.contains(head.as_str()), "iteration {iter}: main's earlier head {head} left its history");
        let (last_iter, last_id, last_bytes) = reported.last().unwrap();
        if status.success() {
            assert_eq!(&history[0].0, last_id, "iteration {iter}: main is not at the commit just reported");
            assert_eq!(history[1].0, head, "iteration {iter}: the reported commit's parent is not main's previous head");
        } else {
            // A kill after the index transaction may have moved main to an unreported commit of this iteration.
            assert!(
                history[0].0 == head || (history[0].1 == msg && history.get(1).is_some_and(|c| c.0 == head)),
                "iteration {iter}: killed commit left main at {} ({:?}), expected {head} or a child of it named {msg}",
                history[0].0,
                history[0].1
            );
        }
        if !status.success() && history[0].0 != head {
            killed_after_index += 1;
        }
        head = history[0].0.clone();
        // (d) the newest reported commit still has the exact bytes it was given.
        let got = cat(&lake, &format!("/{TRACKED}@{last_id}"));
        assert!(got == *last_bytes, "iteration {iter}: /{TRACKED} of the commit of iteration {last_iter} ({last_id}) has different bytes");
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{ITERATIONS} iterations in {elapsed:.1?}: {killed} killed mid-commit ({killed_with_orphan} of them left an orphan pack, \
         {killed_after_index} moved main but died before printing), {completed} completed before the kill; final kill window {window:?}"
    );

    // One more writer cleans every orphan; everything reported is intact; the head checks out exactly.
    let tracked = src.mutate(&mut rng, ITERATIONS + 2);
    let id = commit(&lake, &src.root, "final", &[]);
    reported.push((ITERATIONS + 2, id, tracked));
    let (disk, indexed) = packs_on_disk_and_indexed(&lake);
    assert_eq!(disk, indexed, "orphan packs survived a successful writer: {disk} files in packs/, {indexed} indexed");
    fsck_clean(&lake, "at the end");
    let ids: BTreeSet<String> = log_ids(&lake, "main").into_iter().collect();
    for (n, id, bytes) in &reported {
        assert!(ids.contains(id), "reported commit {id} of iteration {n} lost");
        assert!(cat(&lake, &format!("/{TRACKED}@{id}")) == *bytes, "/{TRACKED} of iteration {n} ({id}) changed");
    }
    let out = tmp.path().join("out");
    ok(&lake, &["checkout", "main", s(&out)]);
    assert_same_tree(&snapshot(&src.root), &snapshot(&out), "checkout of the final commit");

    assert!(killed >= 10, "only {killed} of {ITERATIONS} commits were killed mid-way: the test did not exercise kills");
    assert!(completed >= 5, "only {completed} of {ITERATIONS} commits completed: the kill window is too short to test completion");
    assert!(
        killed_with_orphan >= 1,
        "no kill landed while a pack was being written ({killed} kills): the window never covered the pack-writing phase"
    );
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}

// ---------------------------------------------------------------- 2. not a lake

#[test]
fn not_a_lake_is_a_clear_error() {
    let mut rng = StdRng::seed_from_u64(seed("not_a_lake_is_a_clear_error"));
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let junk = tmp.path().join("junk");
    for i in 0..20 {
        let sub = if i % 3 == 0 { "sub/" } else { "" };
        let n = rng.random_range(0..5000);
        write_file(&junk.join(format!("{sub}file-{i}")), &random_content(&mut rng, n));
    }
    // Names a lake uses, as ordinary files and dirs: still not a lake.
    write_file(&junk.join("meta.db"), b"not sqlite");
    fs::create_dir_all(junk.join("packs")).unwrap();
    let src = tmp.path().join("src");
    write_file(&src.join("a"), b"a");

    for dir in [&empty, &junk] {
        let before = snapshot(dir);
        for args in [
            vec!["log"],
            vec!["log", "--json"],
            vec!["commit", s(&src), "-m", "x"],
            vec!["verify"],
            vec!["show", "main"],
            vec!["cat", "/a@main"],
            vec!["refs"],
            vec!["stats"],
            vec!["gc"],
        ] {
            let err = fails(dir, &args);
            assert!(err.contains(s(dir)), "{args:?} on {}: error does not name the directory: {err}", dir.display());
            assert!(err.contains("is not a lake"), "{args:?} on {}: error does not say 'is not a lake': {err}", dir.display());
            assert!(err.contains("lakectl init"), "{args:?} on {}: error does not suggest `lakectl init`: {err}", dir.display());
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: expected one line of error, got: {err}");
        }
        let out = Command::new(fsck_lakefs()).arg(dir).output().unwrap();
        assert_eq!(out.status.code(), Some(8), "fsck-lakefs on a non-lake: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("is not a lake"), "fsck-lakefs: {}", text(&out.stderr));
        assert_same_tree(&before, &snapshot(dir), &format!("{} after failed commands", dir.display()));
    }
    // A missing directory is not created either.
    let missing = tmp.path().join("missing");
    let err = fails(&missing, &["commit", s(&src), "-m", "x"]);
    assert!(err.contains("is not a lake"), "{err}");
    assert!(!missing.exists(), "a failed commit created {}", missing.display());
}

// ---------------------------------------------------------------- 3. format version and feature flags

#[test]
fn wrong_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let src = tmp.path().join("src");
    write_file(&src.join("hello"), b"hello, lake\n");
    ok(&lake, &["init"]);
    let id = commit(&lake, &src, "first", &[]);
    let sbp = lake.join("superblock");
    let original = fs::read(&sbp).unwrap();
    assert_eq!(original.len(), 128);
    assert_eq!(u32::from_le_bytes(original[8..12].try_into().unwrap()), 1, "this test expects a version-1 lake");

    // A newer format version.
    let mut v2 = original.clone();
    v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&sbp, &v2).unwrap();
    for args in [vec!["log"], vec!["commit", s(&src), "-m", "second", "--allow-empty"], vec!["verify"], vec!["cat", "/hello@main"]] {
        let err = fails(&lake, &args);
        assert!(err.contains("version 2"), "{args:?}: error does not name version 2: {err}");
        assert!(err.contains("upgrade"), "{args:?}: error does not say to upgrade: {err}");
        assert!(err.contains(s(&lake)), "{args:?}: error does not name the lake: {err}");
    }
    let out = Command::new(fsck_lakefs()).arg(&lake).output().unwrap();
    assert_eq!(out.status.code(), Some(8), "fsck-lakefs on a v2 lake: {}", text(&out.stderr));
    assert_eq!(fs::read(&sbp).unwrap(), v2, "a refused command rewrote the superblock");

    fs::write(&sbp, &original).unwrap();
    assert_eq!(log_ids(&lake, "main"), vec![id.clone()], "history changed while the lake was refused");
    assert_eq!(cat(&lake, "/hello@main"), b"hello, lake\n");

    // An unknown incompatible feature (bit 40), with a valid checksum.
    let mut inc = original.clone();
    let flags = u64::from_le_bytes(inc[32..40].try_into().unwrap()) | (1 << 40);
    inc[32..40].copy_from_slice(&flags.to_le_bytes());
    let sum = blake3::hash(&inc[..96]);
    inc[96..128].copy_from_slice(sum.as_bytes());
    fs::write(&sbp, &inc).unwrap();
    for args in [vec!["log"], vec!["commit", s(&src), "-m", "second", "--allow-empty"], vec!["verify"]] {
        let err = fails(&lake, &args);
        assert!(err.contains("incompatible features"), "{args:?}: error does not mention incompatible features: {err}");
        assert!(err.contains("0x10000000000"), "{args:?}: error does not name the unknown flag: {err}");
        assert!(!err.contains("checksum"), "{args:?}: the checksum was recomputed, yet: {err}");
    }
    // The same bit without recomputing the checksum is damage, not a feature.
    let mut damaged = inc.clone();
    damaged[96..128].copy_from_slice(&original[96..128]);
    fs::write(&sbp, &damaged).unwrap();
    let err = fails(&lake, &["log"]);
    assert!(err.contains("checksum"), "a superblock with a stale checksum: {err}");

    fs::write(&sbp, &original).unwrap();
    assert_eq!(log_ids(&lake, "main"), vec![id.clone()], "history changed while the lake was refused");
    let second = commit(&lake, &src, "second", &["--allow-empty"]);
    assert_eq!(log_ids(&lake, "main"), vec![second, id]);
    fsck_clean(&lake, "after restoring the superblock");
}

// ---------------------------------------------------------------- 4. truncated pack

/// A tree of `n` random files (one of them ~1 MiB, so chunked) under `root`.
fn random_tree(rng: &mut StdRng, root: &Path, tag: &str, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..n {
        let rel = format!("{}/{tag}-{i}", ["a", "b/c", "d"][i % 3]);
        let len = if i == 0 { (1 << 20) + 12345 } else { rng.random_range(1..40_000) };
        let b = random_content(rng, len);
        write_file(&root.join(&rel), &b);
        files.insert(rel, b);
    }
    files
}

fn pack_names(lake: &Path) -> BTreeSet<String> {
    fs::read_dir(lake.join("packs")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

fn truncate_half(path: &Path) -> (u64, u64) {
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len / 2).unwrap();
    (len, len / 2)
}

#[test]
fn truncated_pack_is_reported_and_nothing_else_lost() {
    let mut rng = StdRng::seed_from_u64(seed("truncated_pack_is_reported_and_nothing_else_lost"));
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let (src_a, src_b) = (tmp.path().join("A"), tmp.path().join("B"));
    let tree_a = random_tree(&mut rng, &src_a, "a", 40);
    let tree_b = random_tree(&mut rng, &src_b, "b", 40);
    ok(&lake, &["init"]);
    let a = commit(&lake, &src_a, "tree A", &[]);
    let packs_a = pack_names(&lake);
    std::thread::sleep(Duration::from_millis(20)); // distinct mtimes
    let b = commit(&lake, &src_b, "tree B", &["--ref", "other"]);
    let packs_ab = pack_names(&lake);
    let new: Vec<_> = packs_ab.difference(&packs_a).cloned().collect();
    assert_eq!(new.len(), 1, "committing B should add exactly one pack: {new:?}");
    let newest = packs_ab.iter().max_by_key(|n| fs::metadata(lake.join("packs").join(n)).unwrap().modified().unwrap()).unwrap();
    assert_eq!(newest, &new[0], "B's pack is not the newest by mtime");
    let pack_b = lake.join("packs").join(newest);
    let (from, to) = truncate_half(&pack_b);
    eprintln!("truncated {} from {from} to {to} bytes", pack_b.display());

    // verify: exit 1, names the pack, damaged objects, and only B's ref.
    let out = run(&lake, &["verify"]);
    let report = text(&out.stdout);
    let head: Vec<&str> = report.lines().take(8).collect();
    eprintln!("verify after truncation ({} lines), first lines:\n{}", report.lines().count(), head.join("\n"));
    assert_eq!(out.status.code(), Some(1), "verify of a truncated pack: {}", describe(&["verify"], &out));
    assert!(report.contains(newest.as_str()) && report.contains("truncated"), "verify does not name the truncated pack: {report}");
    let damaged: Vec<&str> = report.lines().filter(|l| l.starts_with("DAMAGED") && l.contains("b3:")).collect();
    assert!(damaged.len() >= 2, "verify names fewer than 2 damaged objects: {report}");
    let used_by: Vec<&str> = report.lines().filter_map(|l| l.trim().strip_prefix("used by ")).collect();
    assert!(!used_by.is_empty(), "verify names no ref or path using the damaged objects: {report}");
    for u in &used_by {
        assert!(u.starts_with("other"), "a damaged object is attributed to something other than ref 'other': {u}");
    }
    assert!(used_by.iter().any(|u| u.starts_with("other:/") || u.starts_with("other (")), "{report}");
    let out = run(&lake, &["verify", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify --json");
    let problems = v["problems"].as_array().expect("problems");
    assert!(problems.len() >= 3, "expected the pack and at least two objects: {v}");
    // fsck agrees.
    let out = Command::new(fsck_lakefs()).arg("-q").arg(&lake).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "fsck-lakefs on a truncated pack: {}", text(&out.stdout));

    // main is untouched: checkout equals tree A exactly.
    let out_a = tmp.path().join("outA");
    ok(&lake, &["checkout", "main", s(&out_a)]);
    let got = snapshot(&out_a);
    let files: BTreeMap<_, _> =
        got.iter().filter_map(|(k, v)| if let Ent::File(b) = v { Some((k.clone(), b.clone())) } else { None }).collect();
    assert_eq!(files.keys().collect::<Vec<_>>(), tree_a.keys().collect::<Vec<_>>(), "checkout of main has other files than A");
    for (k, b) in &tree_a {
        assert!(files[k] == *b, "checkout of main: {k} differs from tree A");
    }
    assert_eq!(log_ids(&lake, "main"), vec![a.clone()]);

    // B's files: a clear error, not a panic.
    for rel in tree_b.keys().take(5) {
        let err = fails(&lake, &["cat", &format!("/{rel}@other")]);
        assert!(err.contains("corrupt") || err.contains("truncated"), "cat of a file of B: {err}");
        let err = fails(&lake, &["cat", &format!("/{rel}@{b}")]);
        assert!(err.contains("corrupt") || err.contains("truncated"), "cat of a file of B by id: {err}");
    }

    // Truncating the data of a ref whose commit and trees survive (they are in a newer
    // pack): verify must name the files by path, and exactly those files must be unreadable.
    let src_c = tmp.path().join("C");
    let tree_c = random_tree(&mut rng, &src_c, "c", 60);
    commit(&lake, &src_c, "tree C", &["--ref", "third"]);
    let packs_c = pack_names(&lake);
    let data_pack: Vec<_> = packs_c.difference(&packs_ab).cloned().collect();
    assert_eq!(data_pack.len(), 1);
    // A new file in every directory: all of C's trees are rewritten into the next pack.
    for d in ["a", "b", "b/c", "d"] {
        write_file(&src_c.join(d).join("new-small-file"), b"small");
    }
    commit(&lake, &src_c, "tree C + 1", &["--ref", "third"]);
    truncate_half(&lake.join("packs").join(&data_pack[0]));
    let out = run(&lake, &["verify"]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let named: BTreeSet<String> = report.lines().filter_map(|l| l.trim().strip_prefix("used by third:/")).map(|p| p.to_owned()).collect();
    assert!(!named.is_empty(), "verify names no path of ref 'third' although half of its data is gone:\n{report}");
    for p in &named {
        assert!(tree_c.contains_key(p), "verify names {p}, which is not a file of C");
    }
    for (rel, bytes) in &tree_c {
        let out = run(&lake, &["cat", &format!("/{rel}@third")]);
        if named.contains(rel) {
            let err = text(&out.stderr);
            assert!(!out.status.success() && out.status.code().is_some(), "cat of damaged {rel}: {}", describe(&["cat"], &out));
            assert!(err.contains("corrupt") || err.contains("truncated"), "cat of damaged {rel}: {err}");
        } else {
            assert!(out.status.success(), "{rel} is not reported damaged but cannot be read: {}", text(&out.stderr));
            assert!(out.stdout == *bytes, "{rel} is not reported damaged but reads wrong bytes");
        }
    }
    assert_eq!(cat(&lake, "/a/new-small-file@third"), b"small");
    eprintln!("ref third: {} of {} files named damaged", named.len(), tree_c.len());
}

// ---------------------------------------------------------------- 5. full disk

/// A tmpfs mounted for the test's lifetime, unmounted on drop (also when the test panics).
struct TmpfsMount(PathBuf);

impl TmpfsMount {
    fn new(dir: &Path, size: &str) -> TmpfsMount {
        fs::create_dir_all(dir).unwrap();
        nix::mount::mount(Some("tmpfs"), dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some(format!("size={size}").as_str()))
            .unwrap_or_else(|e| panic!("cannot mount a tmpfs on {} ({e}); this test must run as root", dir.display()));
        TmpfsMount(dir.to_owned())
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        if nix::mount::umount2(&self.0, nix::mount::MntFlags::empty()).is_err() {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn free_bytes(p: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(p).unwrap();
    st.blocks_available() as u64 * st.fragment_size() as u64
}

#[test]
fn full_disk_gives_clear_error_and_loses_nothing() {
    let mut rng = StdRng::seed_from_u64(seed("full_disk_gives_clear_error_and_loses_nothing"));
    let tmp = tempfile::tempdir().unwrap();
    let mnt = TmpfsMount::new(&tmp.path().join("mnt"), "24m");
    let lake = mnt.0.join("lake");
    ok(&lake, &["init"]);

    let small = tmp.path().join("small");
    write_file(&small.join("etc/hostname"), b"lake\n");
    write_file(&small.join("etc/motd"), &random_content(&mut rng, 10_000));
    let first = commit(&lake, &small, "small", &[]);

    let big = tmp.path().join("big");
    for i in 0..10 {
        let mut b = vec![0u8; 4 << 20];
        rng.fill_bytes(&mut b); // incompressible
        write_file(&big.join(format!("blob-{i}")), &b);
    }
    let free_before = free_bytes(&mnt.0);
    let args = ["commit", s(&big), "-m", "too big"];
    let out = run(&lake, &args);
    let err = text(&out.stderr);
    eprintln!("commit of 40 MiB into a 24 MiB file system: {}\n{err}", out.status);
    assert!(!out.status.success(), "a 40 MiB commit into 24 MiB succeeded? {}", describe(&args, &out));
    assert!(out.status.code().is_some() && !err.contains("panicked"), "{}", describe(&args, &out));
    assert!(err.contains("full") && err.contains("no space left"), "error does not say the lake is full: {err}");
    assert!(err.contains("nothing was committed"), "error does not say nothing was committed: {err}");
    assert_eq!(err.trim().lines().count(), 1, "expected a one-line error: {err}");

    let (disk, indexed) = packs_on_disk_and_indexed(&lake);
    eprintln!("after the failure: {disk} pack files, {indexed} indexed; {} bytes free (was {free_before})", free_bytes(&mnt.0));
    assert_eq!(disk, indexed, "the failed commit left its partial pack behind");
    assert!(free_bytes(&mnt.0) + (1 << 20) >= free_before, "the failed commit did not give its space back");
    assert_eq!(log_ids(&lake, "main"), vec![first.clone()], "main moved or lost its commit after the failed commit");
    fsck_clean(&lake, "after the disk-full commit");

    write_file(&small.join("etc/hostname"), b"lake-2\n");
    let second = commit(&lake, &small, "small 2", &[]);
    let (disk, indexed) = packs_on_disk_and_indexed(&lake);
    assert_eq!(disk, indexed, "orphan packs in packs/ after a successful commit");
    write_file(&small.join("etc/hostname"), b"lake-3\n");
    let third = commit(&lake, &small, "small 3", &[]);
    assert_eq!(log_ids(&lake, "main"), vec![third.clone(), second, first.clone()]);
    assert_eq!(cat(&lake, "/etc/hostname@main"), b"lake-3\n");
    fsck_clean(&lake, "after the small commits");

    // Nearly full: leave only a little room, so that the pack or the index transaction
    // runs out. Each commit must either fully succeed or fail cleanly, saying "full".
    // (Room for SQLite's 32 KiB WAL index is left: below that the lake cannot even be
    // opened, see `completely_full_lake_still_opens`.)
    let mut head = third;
    let outcomes = squeeze(&mut rng, &mnt.0, &lake, &small, &[64, 72, 80, 96, 112, 128, 144, 160, 192, 256, 384, 512], &mut head);
    eprintln!("nearly-full commits: {}", outcomes.join(" "));
    assert!(outcomes.iter().any(|o| o.contains("full")), "no nearly-full commit ran out of space: {outcomes:?}");
    assert!(outcomes.iter().any(|o| o.ends_with("ok")), "no nearly-full commit succeeded: {outcomes:?}");
    write_file(&small.join("etc/hostname"), b"lake-4\n");
    let last = commit(&lake, &small, "after the squeeze", &[]);
    let (disk, indexed) = packs_on_disk_and_indexed(&lake);
    assert_eq!(disk, indexed, "orphan packs in packs/ after a successful commit");
    let ids = log_ids(&lake, "main");
    assert_eq!(ids[0], last);
    assert!(ids.contains(&first) && ids.contains(&head));
    fsck_clean(&lake, "at the end");
    drop(mnt);
}

/// For each room size: fill the file system to leave that much free, commit a small
/// change, remove the filler. A commit must succeed fully (main at the printed id, on
/// top of `head`) or fail cleanly saying "full" (main unchanged); fsck stays clean.
fn squeeze(rng: &mut StdRng, mnt: &Path, lake: &Path, src: &Path, rooms_kib: &[u64], head: &mut String) -> Vec<String> {
    let mut outcomes = Vec::new();
    for (i, room_kib) in rooms_kib.iter().copied().enumerate() {
        let filler = mnt.join("filler");
        let n = free_bytes(mnt).saturating_sub(room_kib * 1024);
        let _ = fs::write(&filler, vec![0x5a; n as usize]); // ENOSPC at the very end is fine
        write_file(&src.join(format!("var/new-{room_kib}-{i}")), &random_content(rng, 40_000));
        let args = ["commit", s(src), "-m", "nearly full"];
        let out = run(lake, &args);
        fs::remove_file(&filler).unwrap();
        let ids = log_ids(lake, "main");
        if out.status.success() {
            let id = commit_id_of(&text(&out.stdout)).expect("commit id");
            assert_eq!(ids[0], id, "room {room_kib} KiB: commit reported {id} but main is at {}", ids[0]);
            assert_eq!(&ids[1], head);
            *head = id;
            outcomes.push(format!("{room_kib}K:ok"));
        } else {
            let err = text(&out.stderr);
            assert!(out.status.code().is_some() && !err.contains("panicked"), "room {room_kib} KiB: {}", describe(&args, &out));
            assert!(err.contains("is full"), "room {room_kib} KiB: error does not say the lake is full: {err}");
            assert_eq!(&ids[0], head, "room {room_kib} KiB: a failed commit moved main");
            // A failed commit may leave its (never indexed) pack for the next writer to delete;
            // see `failed_commit_gives_its_space_back`. Count them; the next commit must clean them.
            let (disk, indexed) = packs_on_disk_and_indexed(lake);
            assert!(disk >= indexed);
            let during = if err.contains("metadata database") { "db" } else { "pack" };
            let left = if disk > indexed { format!(",{} orphan", disk - indexed) } else { String::new() };
            outcomes.push(format!("{room_kib}K:full({during}{left})"));
        }
        fsck_clean(lake, &format!("after a commit with {room_kib} KiB of room"));
    }
    outcomes
}

/// A commit that fails for lack of space must give the space back ("nothing was
/// committed"), not leave its partial pack until the next writer runs.
///
/// Known lakefs bug (see the robustness report): `PackWriter::seal_current`
/// (crates/lakefs/src/pack.rs) takes the current pack out of `self.current` before the
/// final flush/fsync; when that flush fails (ENOSPC for a commit whose new data fits in
/// the 1 MiB write buffer), the file is in neither `current` nor `finished`, so
/// `abandon()` cannot delete it. Likewise `finish()` hands `finished` to the caller, so a
/// failed index transaction (`WriteSession::finish_inner`) leaves its packs too.
#[test]
fn failed_commit_gives_its_space_back() {
    let mut rng = StdRng::seed_from_u64(seed("failed_commit_gives_its_space_back"));
    let tmp = tempfile::tempdir().unwrap();
    let mnt = TmpfsMount::new(&tmp.path().join("mnt"), "8m");
    let lake = mnt.0.join("lake");
    ok(&lake, &["init"]);
    let src = tmp.path().join("src");
    write_file(&src.join("a"), b"a");
    commit(&lake, &src, "first", &[]);
    let filler = mnt.0.join("filler");
    fs::write(&filler, vec![0x5a; (free_bytes(&mnt.0) - 200 * 1024) as usize]).unwrap();
    let mut b = vec![0u8; 500_000];
    rng.fill_bytes(&mut b);
    write_file(&src.join("b"), &b);
    let err = fails(&lake, &["commit", s(&src), "-m", "too big for the room left"]);
    assert!(err.contains("is full"), "{err}");
    let (disk, indexed) = packs_on_disk_and_indexed(&lake);
    fs::remove_file(&filler).unwrap();
    assert_eq!(disk, indexed, "the failed commit left {} partial pack(s) in packs/", disk - indexed);
}

/// A lake whose file system is completely full must still open: reading it needs no
/// space, and the DiskFull error comes with lakectl's hint to run `lakectl gc`.
///
/// Known lakefs bug (see the robustness report): `Db::open` (crates/lakefs/src/meta.rs)
/// opens SQLite in WAL mode, which must create the 32 KiB `meta.db-shm` WAL index on
/// every open; with no room that fails with SQLITE_IOERR_SHMSIZE (extended code 4874),
/// which `db_error` does not map to `Error::DiskFull`, so every command, even `log` and
/// `gc`, fails with "disk I/O error: Error code 4874".
#[test]
fn completely_full_lake_still_opens() {
    let mut rng = StdRng::seed_from_u64(seed("completely_full_lake_still_opens"));
    let tmp = tempfile::tempdir().unwrap();
    let mnt = TmpfsMount::new(&tmp.path().join("mnt"), "8m");
    let lake = mnt.0.join("lake");
    ok(&lake, &["init"]);
    let src = tmp.path().join("src");
    write_file(&src.join("etc/hostname"), b"lake\n");
    let first = commit(&lake, &src, "first", &[]);
    let filler = mnt.0.join("filler");
    let _ = fs::write(&filler, vec![0x5a; free_bytes(&mnt.0) as usize + 4096]);
    assert!(free_bytes(&mnt.0) < 4096, "the file system is not full");
    let stderr_of = |args: &[&str]| text(&run(&lake, args).stderr);
    assert_eq!(log_ids(&lake, "main"), vec![first.clone()], "log of a full lake: {}", stderr_of(&["log"]));
    assert_eq!(cat(&lake, "/etc/hostname@main"), b"lake\n");
    write_file(&src.join("etc/motd"), &random_content(&mut rng, 30_000));
    let err = fails(&lake, &["commit", s(&src), "-m", "no room"]);
    assert!(err.contains("is full"), "commit into a full lake: {err}");
    assert!(!err.contains("disk I/O error"), "commit into a full lake: {err}");
    fs::remove_file(&filler).unwrap();
    assert_eq!(log_ids(&lake, "main"), vec![first]);
    fsck_clean(&lake, "after the full-disk commands");
}

// ---------------------------------------------------------------- 6. hostile change lists

#[test]
fn malformed_change_list_paths_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let src = tmp.path().join("src");
    write_file(&src.join("etc/hostname"), b"lake\n");
    write_file(&src.join("home/ann/notes"), b"notes\n");
    ok(&lake, &["init"]);
    let first = commit(&lake, &src, "first", &[]);
    // Something a '..' would reach: a sibling of the source.
    write_file(&tmp.path().join("etc/secret"), b"outside the source\n");
    write_file(&src.join("etc/hostname"), b"changed\n");

    let list = tmp.path().join("changed");
    for bad in ["../etc", "../etc/secret", "etc/../../etc", "./../etc", "/../etc", "home/ann/../../../etc/secret", "..", "etc/.."] {
        fs::write(&list, format!("etc/hostname\n{bad}\n")).unwrap();
        let err = fails(&lake, &["commit", "--changed", s(&list), s(&src), "-m", "evil"]);
        assert!(err.contains(bad) && err.contains(".."), "change-list line {bad:?}: the error does not quote it: {err}");
        assert_eq!(log_ids(&lake, "main"), vec![first.clone()], "change-list line {bad:?}: main moved");
        // Also from standard input.
        let mut child = cmd(&lake, &["commit", "--changed", "-", s(&src), "-m", "evil"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), format!("{bad}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success() && text(&out.stderr).contains(".."), "stdin list {bad:?}: {}", describe(&[], &out));
        assert_eq!(log_ids(&lake, "main"), vec![first.clone()], "stdin list {bad:?}: main moved");
    }
    assert_eq!(cat(&lake, "/etc/hostname@main"), b"lake\n");

    // A listed path through a symlink that leaves the source records the symlink, not what it points at.
    std::os::unix::fs::symlink(tmp.path().join("etc"), src.join("escape")).unwrap();
    fs::write(&list, "escape/secret\netc/hostname\n").unwrap();
    let second = commit(&lake, &src, "through a symlink", &["--changed", s(&list)]);
    assert_eq!(log_ids(&lake, "main"), vec![second, first]);
    let err = fails(&lake, &["cat", "/escape/secret@main"]);
    assert!(!err.contains("outside the source"), "{err}");
    let ls = ok(&lake, &["ls", "-l", "/@main"]);
    assert!(ls.contains("escape"), "the symlink is not in the commit: {ls}");
    assert_eq!(cat(&lake, "/etc/hostname@main"), b"changed\n");
    fsck_clean(&lake, "after the change-list tests");
}
