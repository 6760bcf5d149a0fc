//! Shared by the FUSE tests: hooks that record what the driver reports, and a
//! mounted temp working tree that is always unmounted again.

#![allow(dead_code)]

use std::path::PathBuf;

pub use lake_testkit::fuse::is_mounted;
pub use lake_testkit::require_fuse;
use std::sync::{Arc, Condvar, Mutex};

use lake_fuse as fuse;
use lake_fuse::caller::Caller;
use lake_fuse::hooks::{ViewEntry, VolumeHooks};
use lake_fuse::{MountOptions, Mounted};
use lakefs::error::Result;
use lakefs::id::ObjectId;
use lakefs::lake::{CreateOptions, Lake};
use lakefs::names::escape;
use lakefs::tree::Meta;

/// Records every hook call as "kind:path" (the path escaped, `lakefs::names`:
/// `caf\xe9` for a name that is not UTF-8); serves a fixed past tree under
/// `.lake/at/then/` and one view `pics` holding `a.jpg -> alice/a.jpg`.
/// fsyncs of paths and control requests starting with "slow" wait for the gate.
pub struct Recorder {
    pub lake: Lake,
    pub calls: Mutex<Vec<String>>,
    pub then: Mutex<Option<(ObjectId, Meta)>>,
    /// fsync of paths starting with "slow" waits until this is true.
    pub gate: (Mutex<bool>, Condvar),
}

impl Recorder {
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    pub fn open_gate(&self) {
        *self.gate.0.lock().unwrap() = true;
        self.gate.1.notify_all();
    }
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
    }
    fn push(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
}

impl VolumeHooks for Recorder {
    fn lake(&self) -> &Lake {
        &self.lake
    }
    fn changed(&self, rel: &[u8]) {
        self.push(format!("changed:{}", escape(rel)));
    }
    fn opened_for_write(&self, rel: &[u8]) {
        self.push(format!("open:{}", escape(rel)));
    }
    fn released(&self, rel: &[u8]) {
        self.push(format!("released:{}", escape(rel)));
    }
    fn fsync(&self, rel: &[u8]) -> Result<()> {
        self.push(format!("fsync:{}", escape(rel)));
        if rel.starts_with(b"slow") {
            let mut open = self.gate.0.lock().unwrap();
            while !*open {
                open = self.gate.1.wait(open).unwrap();
            }
        }
        Ok(())
    }
    fn control(&self, _caller: &Caller, request: &[u8]) -> Vec<u8> {
        self.push(format!("control:{}", String::from_utf8_lossy(request)));
        if request.starts_with(b"slow") {
            let mut open = self.gate.0.lock().unwrap();
            while !*open {
                open = self.gate.1.wait(open).unwrap();
            }
        }
        format!("{{\"ok\":true,\"len\":{}}}", request.len()).into_bytes()
    }
    fn info(&self) -> Vec<u8> {
        b"{\"volume\":\"test\"}".to_vec()
    }
    fn tree_at(&self, when: &str) -> Result<Option<(ObjectId, Meta)>> {
        Ok(if when == "then" { self.then.lock().unwrap().clone() } else { None })
    }
    fn recent_times(&self) -> Vec<String> {
        vec!["then".into()]
    }
    fn views(&self) -> Vec<String> {
        vec!["pics".into()]
    }
    fn view_entries(&self, _caller: &Caller, name: &str) -> Option<Vec<ViewEntry>> {
        (name == "pics").then(|| vec![ViewEntry { name: "a.jpg".into(), path: "alice/a.jpg".into() }])
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub mnt: PathBuf,
    pub hooks: Arc<Recorder>,
    opts: MountOptions,
    mounted: Option<Mounted>,
}

impl Fixture {
    /// A lake, a working tree and a mount of it; `passthrough` chooses FUSE passthrough.
    pub fn new(passthrough: bool) -> Fixture {
        Fixture::with_options(passthrough, "")
    }

    /// [`Fixture::new`] with more `-o` options (`noatime`, ...).
    pub fn with_options(passthrough: bool, options: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::create(&dir.path().join("lake"), &CreateOptions::default()).unwrap();
        let work = dir.path().join("work");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&work).unwrap();
        std::fs::create_dir(&mnt).unwrap();
        let hooks =
            Arc::new(Recorder { lake, calls: Mutex::new(Vec::new()), then: Mutex::new(None), gate: (Mutex::new(false), Condvar::new()) });
        let mut opts = MountOptions::default();
        opts.apply(options).unwrap();
        opts.passthrough = passthrough;
        opts.fsname = "lakefs-test".into();
        let mounted = fuse::spawn(&work, &mnt, hooks.clone(), &opts).unwrap();
        Fixture { dir, work, mnt, hooks, opts, mounted: Some(mounted) }
    }

    /// Unmounts and mounts the working tree again with a new driver (a daemon restart).
    pub fn remount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().unwrap();
        }
        self.mounted = Some(fuse::spawn(&self.work, &self.mnt, self.hooks.clone(), &self.opts).unwrap());
    }

    pub fn passthrough(&self) -> bool {
        self.mounted.as_ref().map(|m| m.passthrough()).unwrap_or(false)
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn w(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(m) = self.mounted.take() {
            let _ = m.unmount();
        }
        // Belt and braces: never leave a mount behind a failed test.
        if is_mounted(&self.mnt) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}
