//! The format fixture: a v1 lake made by an earlier build (testdata/format-v1/lake.tar.gz;
//! its regenerate.sh says how, and that it runs only on a deliberate format change)
//! must stay readable by today's tools: opened, verified (lakectl verify,
//! fsck.lakefs), its history listed, diffed and checked out, each compared with what
//! was recorded next to the tarball (expected/), and written to. A change that
//! breaks existing lakes fails here.
//!
//! Only the command-line tools are used, so the test does not depend on how the
//! crates are split. `LAKE_FIXTURE_BLESS=1` writes expected/ instead of comparing
//! (regenerate.sh does that right after making the tarball).

mod common;

use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::ok;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/format-v1");

struct Expected {
    dir: PathBuf,
    bless: bool,
}

impl Expected {
    fn new() -> Expected {
        Expected { dir: Path::new(FIXTURE).join("expected"), bless: std::env::var_os("LAKE_FIXTURE_BLESS").is_some() }
    }

    /// Compares `actual` with expected/NAME (or records it when blessing).
    fn check(&self, name: &str, actual: &str) {
        let path = self.dir.join(name);
        if self.bless {
            std::fs::create_dir_all(&self.dir).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (the fixture is incomplete; see regenerate.sh)", path.display()));
        assert!(
            actual == want,
            "the format-v1 fixture reads back differently: {name}\n--- expected ({})\n{want}\n--- today\n{actual}\n\
             An existing lake no longer reads as it did: fix the change, do not regenerate the fixture.",
            path.display()
        );
    }
}

/// Unpacks the fixture into a fresh directory; returns (tempdir, lake).
fn unpack() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .args(["--numeric-owner", "--same-owner", "--xattrs", "--xattrs-include=*", "-xzf"])
        .arg(Path::new(FIXTURE).join("lake.tar.gz"))
        .arg("-C")
        .arg(t.path())
        .status()
        .expect("run tar");
    assert!(st.success(), "unpacking {FIXTURE}/lake.tar.gz failed");
    let lake = t.path().join("lake");
    (t, lake)
}

fn json(lake: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    let out = ok(lake, &a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("lakectl {a:?}: {e}: {out}"))
}

/// A ref's history, one line per commit, newest first: what the commit objects hold.
fn history(lake: &Path, rev: &str) -> String {
    let mut s = String::new();
    for c in json(lake, &["log", rev]).as_array().unwrap() {
        let parents: Vec<&str> = c["parents"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        writeln!(
            s,
            "{} tree={} parents=[{}] time={} scope={} trigger={} message={:?} extra={}",
            c["id"].as_str().unwrap(),
            c["tree"].as_str().unwrap(),
            parents.join(","),
            c["time"],
            c["scope"].as_str().unwrap(),
            c["trigger"].as_str().unwrap(),
            c["message"].as_str().unwrap(),
            c["extra"]
        )
        .unwrap();
    }
    s
}

/// Every entry of the tree at `root`, sorted: kind, mode, owner, mtime, size,
/// content hash (and data extents of sparse files), link target, xattrs, and
/// hard-link groups within the tree. Names are printed byte-exact (\xHH).
fn manifest(root: &Path) -> String {
    let mut entries = Vec::new();
    let mut inodes = std::collections::BTreeMap::<(u64, u64), Vec<Vec<u8>>>::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let name = escape(rel.as_os_str().as_bytes());
        let mut line = format!("/{name} {:o} {}:{} mtime={}.{:09}", md.mode(), md.uid(), md.gid(), md.mtime(), md.mtime_nsec());
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        } else if ft.is_symlink() {
            write!(line, " -> {}", escape(std::fs::read_link(&p).unwrap().as_os_str().as_bytes())).unwrap();
        } else if ft.is_file() {
            let data = std::fs::read(&p).unwrap();
            write!(line, " size={} b3={}", data.len(), blake3::hash(&data).to_hex()).unwrap();
            let extents = data_extents(&p, md.len());
            if extents != [(0, md.len())] && md.len() > 0 {
                write!(line, " data={extents:?}").unwrap();
            }
        }
        if !ft.is_dir() {
            inodes.entry((md.dev(), md.ino())).or_default().push(rel.as_os_str().as_bytes().to_vec());
        }
        let mut xattrs: Vec<_> = xattr::list(&p).unwrap().collect();
        xattrs.sort();
        for x in xattrs {
            let v = xattr::get(&p, &x).unwrap().unwrap_or_default();
            write!(line, " xattr:{}={}", escape(x.as_bytes()), escape(&v)).unwrap();
        }
        entries.push((rel.as_os_str().as_bytes().to_vec(), line));
    }
    for group in inodes.values().filter(|g| g.len() > 1) {
        let mut names: Vec<String> = group.iter().map(|n| format!("/{}", escape(n))).collect();
        names.sort();
        for n in group {
            let e = entries.iter_mut().find(|(k, _)| k == n).unwrap();
            write!(e.1, " links=[{}]", names.join(",")).unwrap();
        }
    }
    entries.sort();
    entries.into_iter().map(|(_, l)| l + "\n").collect()
}

/// The data extents of a file (SEEK_DATA/SEEK_HOLE), merged: where its holes are.
fn data_extents(p: &Path, len: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{lseek, Whence};
    let f = std::fs::File::open(p).unwrap();
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0i64;
    while (pos as u64) < len {
        let Ok(start) = lseek(&f, pos, Whence::SeekData) else { break };
        let end = lseek(&f, start, Whence::SeekHole).unwrap();
        out.push((start as u64, (end - start) as u64));
        pos = end;
    }
    out
}

fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            0x21..=0x7e => s.push(c as char),
            _ => write!(s, "\\x{c:02x}").unwrap(),
        }
    }
    s
}

fn checkout(lake: &Path, rev: &str, dest: &Path) -> String {
    ok(lake, &["checkout", rev, dest.to_str().unwrap()]);
    manifest(dest)
}

#[test]
fn format_v1_fixture_reads_back_as_recorded() {
    let want = Expected::new();
    let (t, lake) = unpack();

    // Opened and verified: every object re-hashed, the lake's files private.
    let verify = json(&lake, &["verify"]);
    assert_eq!(verify["problems"], serde_json::json!([]), "lakectl verify of the fixture: {verify:#}");
    want.check("verify.json", &format!("{verify:#}\n"));
    let fsck = Command::new(common::sibling("fsck-lakefs")).arg(&lake).output().expect("run fsck.lakefs");
    assert!(
        fsck.status.success(),
        "fsck.lakefs of the fixture: {}\n{}{}",
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );

    // Refs, the commit objects of each history, the generation.
    want.check("refs.json", &format!("{:#}\n", json(&lake, &["refs"])));
    want.check("history-main.txt", &history(&lake, "main"));
    want.check("history-posix.txt", &history(&lake, "posix/main"));
    want.check("history-home.txt", &history(&lake, "home/main"));
    let gens = json(&lake, &["--zone", "posix", "generation", "list"]);
    let gens: String = gens["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{} {} pinned={}\n", g["number"], g["commit"].as_str().unwrap(), g["pinned"]))
        .collect();
    want.check("generations.txt", &gens);

    // Diffed, read and checked out, byte-exact.
    want.check("diff-main~1-main.txt", &ok(&lake, &["diff", "main~1", "main"]));
    assert_eq!(ok(&lake, &["cat", "hello.txt@main~1"]), "hello lake\n");
    want.check("main~1.manifest", &checkout(&lake, "main~1", &t.path().join("first")));
    want.check("main.manifest", &checkout(&lake, "main", &t.path().join("main")));
    let posix = checkout(&lake, "posix/main", &t.path().join("posix"));
    want.check("posix.manifest", &posix);
    want.check("home.manifest", &checkout(&lake, "home/main", &t.path().join("home")));
    // Generation 1's checkout inside the lake (hard links to the loose objects).
    assert_eq!(manifest(&lake.join("deploy/1/root")), posix, "deploy/1/root differs from posix/main");

    // Written to: today's writer appends to the old lake, which stays sound.
    let src = t.path().join("new");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("added.txt"), "added today\n").unwrap();
    ok(&lake, &["commit", src.to_str().unwrap(), "-m", "today"]);
    assert_eq!(ok(&lake, &["cat", "added.txt@main"]), "added today\n");
    assert_eq!(json(&lake, &["verify"])["problems"], serde_json::json!([]));
}
