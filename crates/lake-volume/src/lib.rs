//! lake-volume: LAKE-zone volumes: a working tree on the lake's ext4
//! (`LAKE/state/NAME/`) that the FUSE driver (lake-fuse) passes through, its
//! history on ref `NAME/main`, and the daemon that turns the driver's change
//! notices into commits. Built on the store, the FUSE driver and the catalog.
//!
//! - [`Volume`]: the directories, the ref, zones, and `commit_paths`;
//! - [`Daemon`]: what `lakefs mount` runs; implements [`VolumeHooks`];
//! - [`error`]: the volume's typed errors (branches and merges);
//! - [`committer`]: dirty set, batching, group commit for fsync, micro-snapshots;
//! - [`zones`]: which paths are LAKE, HYBRID or POSIX (`zones.toml`);
//! - [`branch`], [`merge`]: branches of a volume and merging them;
//! - [`recovery`]: bringing a volume back after a crash;
//! - [`restore`]: planning and applying `lakectl restore` (a path back to a
//!   past version, through the mount);
//! - [`serve`]: the mount daemon of `lakefs mount` and `mount.lakefs` (serving,
//!   stop signals, daemonizing);
//! - [`file_log`]: the versions of one file; [`locate`] and [`control`]: how
//!   lakectl finds a mount and talks to its daemon; [`links`]: which names
//!   share an inode, so a change through one is recorded under all.
//!
//! Mount-relative paths are bytes (`Vec<u8>`): a name need not be UTF-8
//! (`lakefs::names` shows and encodes them).
//!
//! Volume state (`LAKE/volumes/NAME/`): `zones.toml` (overrides), `open-files.json`
//! (files open for writing, for recovery), `clean` (present while unmounted cleanly).

pub mod branch;
pub mod committer;
pub mod control;
pub mod error;
pub mod file_log;
mod links;
pub mod locate;
pub mod merge;
mod priority;
pub mod recovery;
pub mod restore;
pub mod serve;
mod visible;
pub mod zones;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

pub use locate::{locate, Located, VolumeInfo};

use crate::zones::{VolumeZones, Zone};
use lake_fuse::caller::Caller;
use lake_fuse::hooks::{ViewEntry, VolumeHooks};
use lakefs::error::{Error, IoContext, Result};
use lakefs::id::ObjectId;
use lakefs::import::{ImportOptions, ImportStats, ScanOptions, StatCache};
use lakefs::lake::Lake;

/// Directory of working trees inside a lake (`LAKE/state/NAME`).
pub const STATE_DIR: &str = "state";
/// Directory of volume state inside a lake (`LAKE/volumes/NAME`).
pub const VOLUMES_DIR: &str = "volumes";
/// Present while the volume is not mounted after a clean unmount.
pub const CLEAN_MARKER: &str = "clean";
/// Files open for writing (JSON), rewritten while mounted.
pub const JOURNAL: &str = "open-files.json";
/// The per-volume zone overrides.
pub const ZONES_FILE: &str = "zones.toml";
/// Where crash recovery puts bytes newer than a file's last snapshot (inside the volume).
pub const LOST_FOUND: &str = "lost+found";
/// Commit extra key: when the commit's scan started (ns since the epoch), for stat reuse.
pub const SCANNED_KEY: &str = "scanned";

/// Inodes remembered for content reuse (renames) per mounted volume.
const STAT_CACHE_MAX: usize = 500_000;

/// A volume name: a short word usable in paths and ref names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// What one commit of the volume did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VolumeCommit {
    pub commit: ObjectId,
    pub old_tree: Option<ObjectId>,
    pub tree: ObjectId,
    /// Nothing changed: `commit` is the unchanged head.
    pub unchanged: bool,
    pub stats: ImportStats,
}

pub struct Volume {
    lake: Lake,
    name: String,
    work: PathBuf,
    state: PathBuf,
    reference: String,
    mountpoint: PathBuf,
    zones: RwLock<Arc<VolumeZones>>,
    cache: Arc<StatCache>,
    /// Names that share an inode (see [`links`]).
    links: Arc<links::Links>,
    /// One commit at a time (the committer's batches and control commits).
    commit_lock: Mutex<()>,
    /// One catalog pass at a time (the committer's deferred pass, flush, control commits).
    index_lock: Mutex<()>,
}

impl Volume {
    /// Opens volume `name` of the lake at `lake_root`, creating its working tree
    /// and state directories if missing. `mountpoint` is where it is (or would
    /// be) mounted: zone prefixes are mapped onto it.
    pub fn open(lake_root: &Path, name: &str, mountpoint: &Path) -> Result<Volume> {
        if !valid_name(name) {
            return Err(Error::Invalid(format!("invalid volume name '{name}': use letters, digits, - and _")));
        }
        let lake = Lake::open(lake_root)?;
        let work = lake_root.join(STATE_DIR).join(name);
        let state = lake_root.join(VOLUMES_DIR).join(name);
        // The lake's own directories are private; the working tree's root is the
        // volume's root directory (/home), with the mode of one.
        lakefs::privacy::create_dir_all(&state)?;
        if !work.exists() {
            lakefs::privacy::create_dir_all(&lake_root.join(STATE_DIR))?;
            std::fs::create_dir(&work).at(&work)?;
            lakefs::privacy::set_mode(&work, 0o755)?;
        }
        let zones = VolumeZones::load(&state.join(ZONES_FILE), mountpoint)?;
        Ok(Volume {
            lake,
            name: name.to_owned(),
            work,
            state,
            reference: format!("{name}/main"),
            mountpoint: mountpoint.to_owned(),
            zones: RwLock::new(Arc::new(zones)),
            cache: Arc::new(StatCache::new(STAT_CACHE_MAX)),
            links: Arc::default(),
            commit_lock: Mutex::new(()),
            index_lock: Mutex::new(()),
        })
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The working tree (what the FUSE driver passes through).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// `LAKE/volumes/NAME`.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The history ref, `NAME/main`.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    pub fn head(&self) -> Result<Option<ObjectId>> {
        self.lake.get_ref(&self.reference)
    }

    pub fn zones(&self) -> Arc<VolumeZones> {
        self.zones.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn zone(&self, rel: &[u8]) -> Zone {
        self.zones().zone(rel)
    }

    /// Known names of inode `key` (device, inode) in the working tree, if it has several.
    pub(crate) fn names_of_inode(&self, key: (u64, u64)) -> Vec<Vec<u8>> {
        self.links.names_of(key)
    }

    /// Whether any file of the working tree is known to have several names.
    pub(crate) fn has_links(&self) -> bool {
        !self.links.is_empty()
    }

    /// Rereads the system zone map and the volume's overrides.
    pub fn reload_zones(&self) -> Result<()> {
        let z = VolumeZones::load(&self.state.join(ZONES_FILE), &self.mountpoint)?;
        *self.zones.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(z);
        Ok(())
    }

    /// One commit holding the current state of `paths` (mount-relative) on top of
    /// the head; the first commit of a volume is a full import. POSIX-zone paths
    /// are left out; every other name of a hard-linked file among them is
    /// committed too.
    pub fn commit_paths(&self, paths: &[Vec<u8>], trigger: &str, message: &str) -> Result<VolumeCommit> {
        self.commit_holding(Some(paths), &[], trigger, message)
    }

    /// A commit of the whole working tree (rescan; unchanged files are not read again).
    pub fn commit_all(&self, trigger: &str, message: &str) -> Result<VolumeCommit> {
        self.commit_holding(None, &[], trigger, message)
    }

    /// [`Volume::commit_paths`] (or with `None`, [`Volume::commit_all`]) that
    /// keeps `held` paths, and everything below them, as the head has them:
    /// paths that could not be recorded are not read again, nor recorded as removed.
    /// The catalog follows before it returns.
    pub fn commit_holding(&self, paths: Option<&[Vec<u8>]>, held: &[Vec<u8>], trigger: &str, message: &str) -> Result<VolumeCommit> {
        let out = self.commit_unindexed(paths, held, trigger, message)?;
        if !out.unchanged {
            self.index_logged();
        }
        Ok(out)
    }

    /// [`Volume::commit_holding`] without the catalog pass: the daemon's batches
    /// leave it to [`Volume::index_head`] when the volume is quiet, so a burst of
    /// changes (an untar) is indexed once, and an fsync never waits for tokenising.
    pub(crate) fn commit_unindexed(
        &self,
        paths: Option<&[Vec<u8>]>,
        held: &[Vec<u8>],
        trigger: &str,
        message: &str,
    ) -> Result<VolumeCommit> {
        let _g = self.commit_lock.lock().unwrap_or_else(|p| p.into_inner());
        // The other names of hard-linked files among the paths changed with them.
        let widened = self.links.widen(paths.unwrap_or(&[]));
        let paths = paths.map(|_| widened.as_slice());
        // A whole-tree scan settles every name.
        let root = [Vec::new()];
        let mut tries = 0;
        loop {
            match self.commit_once(paths, held, trigger, message) {
                // Someone else (lakectl on this lake) moved the ref: build on the new head.
                Err(Error::RefRace { .. }) if tries < 3 => tries += 1,
                r => {
                    if r.is_ok() {
                        self.links.settle(paths.unwrap_or(&root));
                    }
                    return r;
                }
            }
        }
    }

    /// Brings the catalog up to the head (from the tree it last indexed).
    pub fn index_head(&self) -> Result<()> {
        let _g = self.index_lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(head) = self.head()? else { return Ok(()) };
        let tree = self.lake.read_commit(&head)?.tree;
        let z = self.zones();
        lake_catalog::index_commit(&self.lake, &self.name, &tree, &|p: &[u8]| z.zone(p) == Zone::Lake)?;
        Ok(())
    }

    /// [`Volume::index_head`]; a failure is logged only: the catalog is derived
    /// data, the commits stand, and the next pass catches up.
    pub(crate) fn index_logged(&self) {
        if let Err(e) = self.index_head() {
            eprintln!("lakefs: volume {}: catalog update failed: {e}", self.name);
        }
    }

    fn commit_once(&self, paths: Option<&[Vec<u8>]>, held: &[Vec<u8>], trigger: &str, message: &str) -> Result<VolumeCommit> {
        let head = self.head()?;
        let head_commit = head.map(|h| self.lake.read_commit(&h)).transpose()?;
        let ex = self.zones();
        let links = self.links.clone();
        let scan = ScanOptions {
            exclude: Some(Arc::new(move |p: &[u8]| ex.zone(p) == Zone::Posix)),
            cache: Some(self.cache.clone()),
            reuse_base: head_commit.as_ref().map(|c| c.tree),
            base_scanned_ns: head_commit.as_ref().and_then(scanned_ns),
            // A commit holds the listed paths only (new parent directories too).
            exact: true,
            hold: hold_predicate(held),
            on_link: Some(Arc::new(move |p: &[u8], key| links.note(p, key))),
            ..Default::default()
        };
        let scope = format!("volume:{}", self.name);
        let scanned = lakefs::import::now_ns();
        let req = lakefs::ops::CommitRequest {
            src: &self.work,
            reference: &self.reference,
            message,
            scope: &scope,
            trigger,
            changed: if head.is_some() { paths } else { None },
            options: ImportOptions::default(),
            extra: vec![(SCANNED_KEY.to_owned(), scanned.to_string())],
            allow_empty: false,
        };
        let out = lakefs::ops::commit_dir_with(&self.lake, &req, None, &scan, &lakefs::progress::Silent)?;
        let old_tree = head_commit.as_ref().map(|c| c.tree);
        Ok(VolumeCommit { commit: out.commit, old_tree, tree: out.tree, unchanged: out.unchanged, stats: out.stats })
    }
}

/// True when `rel` is one of `held` or below one.
fn is_held(held: &std::collections::BTreeSet<Vec<u8>>, rel: &[u8]) -> bool {
    held.contains(rel) || lakefs::names::ancestors(rel).any(|a| held.contains(a))
}

fn hold_predicate(held: &[Vec<u8>]) -> Option<lakefs::import::PathFilter> {
    if held.is_empty() {
        return None;
    }
    let set: std::collections::BTreeSet<Vec<u8>> = held.iter().cloned().collect();
    Some(Arc::new(move |p: &[u8]| is_held(&set, p)))
}

/// The scan start recorded in a volume commit.
pub fn scanned_ns(c: &lakefs::commit::Commit) -> Option<i128> {
    c.extra.iter().find(|(k, _)| k == SCANNED_KEY).and_then(|(_, v)| v.parse().ok())
}

/// Tuning of the committer; the defaults are what `lakefs mount` uses.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// How long a change waits for others to join its commit.
    pub batch_delay: std::time::Duration,
    /// How often open files are checked for micro-snapshots (and the journal rewritten).
    pub tick: std::time::Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions { batch_delay: std::time::Duration::from_secs(2), tick: std::time::Duration::from_millis(500) }
    }
}

/// A mounted volume: what the FUSE driver talks to.
pub struct Daemon {
    shared: Arc<committer::Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Daemon {
    /// Opens (creating if needed) volume `name` of the lake at `lake_root` for a
    /// mount on `mountpoint`: recovers from a crash if the last unmount was not
    /// clean, commits what changed while unmounted, starts the committer.
    pub fn start(lake_root: &Path, name: &str, mountpoint: &Path) -> Result<Arc<Daemon>> {
        Daemon::start_with(lake_root, name, mountpoint, DaemonOptions::default())
    }

    pub fn start_with(lake_root: &Path, name: &str, mountpoint: &Path, opts: DaemonOptions) -> Result<Arc<Daemon>> {
        let vol = Volume::open(lake_root, name, mountpoint)?;
        let skipped = recovery::prepare(&vol)?;
        let shared = Arc::new(committer::Shared::new(vol, opts));
        shared.set_skipped(skipped);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("lakefs-commit-{name}"))
            .spawn(move || committer::run(&s))
            .map_err(|e| Error::Invalid(format!("cannot start the committer thread: {e}")))?;
        Ok(Arc::new(Daemon { shared, thread: Mutex::new(Some(thread)) }))
    }

    pub fn volume(&self) -> &Volume {
        &self.shared.vol
    }

    /// Hands over the FUSE driver's passthrough flag (from `fuse::run`'s ready
    /// callback); the control `status` request reports it. The first call counts.
    pub fn set_passthrough(&self, flag: Arc<std::sync::atomic::AtomicBool>) {
        let _ = self.shared.passthrough.set(flag);
    }

    /// The directory the driver passes through.
    pub fn work_dir(&self) -> &Path {
        self.shared.vol.work_dir()
    }

    pub fn zone(&self, rel: &[u8]) -> Zone {
        self.shared.vol.zone(rel)
    }

    /// Commits everything pending and every file still open, then marks the
    /// volume cleanly unmounted. Call after the kernel released the mount.
    pub fn shutdown(&self) -> Result<()> {
        self.shared.stop();
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
        self.shared.final_result()?;
        recovery::mark_clean(&self.shared.vol)
    }
}

impl VolumeHooks for Daemon {
    fn lake(&self) -> &Lake {
        self.shared.vol.lake()
    }

    fn changed(&self, rel: &[u8]) {
        self.shared.changed(rel);
    }

    fn opened_for_write(&self, rel: &[u8]) {
        self.shared.opened_for_write(rel);
    }

    fn released(&self, rel: &[u8]) {
        self.shared.released(rel);
    }

    fn fsync(&self, rel: &[u8]) -> Result<()> {
        self.shared.fsync(rel)
    }

    fn control(&self, caller: &Caller, request: &[u8]) -> Vec<u8> {
        control::handle(&self.shared, caller, request)
    }

    fn info(&self) -> Vec<u8> {
        let v = &self.shared.vol;
        let info = VolumeInfo {
            lake: v.lake().root().to_owned(),
            volume: v.name().to_owned(),
            mountpoint: v.mountpoint().to_owned(),
            reference: v.reference().to_owned(),
            work: v.work_dir().to_owned(),
        };
        let mut b = serde_json::to_vec_pretty(&info).unwrap_or_default();
        b.push(b'\n');
        b
    }

    fn tree_at(&self, when: &str) -> Result<Option<(ObjectId, lakefs::tree::Meta)>> {
        let v = &self.shared.vol;
        match lakefs::rev::resolve(v.lake(), when, v.reference()) {
            Ok(id) => {
                let c = v.lake().read_commit(&id)?;
                Ok(Some((c.tree, c.root)))
            }
            Err(Error::UnknownRevision(_) | Error::NothingAtTime { .. } | Error::AmbiguousRevision { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn recent_times(&self) -> Vec<String> {
        recent_times(&self.shared.vol, 50).unwrap_or_default()
    }

    fn views(&self) -> Vec<String> {
        let v = &self.shared.vol;
        lake_catalog::view_names(v.lake(), v.name()).unwrap_or_default()
    }

    fn view_entries(&self, caller: &Caller, name: &str) -> Option<Vec<ViewEntry>> {
        visible::view_entries(&self.shared, caller, name).ok().flatten()
    }
}

/// Whether the file at `path` holds exactly `content`, compared as the content
/// streams (a large file is never held in memory); the holes of a sparse chunk
/// list are checked against the file's data extents only (SEEK_DATA), so an
/// equal 16 GiB sparse file is not read through.
pub(crate) fn file_holds(lake: &Lake, path: &Path, content: &lakefs::tree::Content) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).at(path)?;
    let size = f.metadata().at(path)?.len();
    let list = match content {
        lakefs::tree::Content::Chunked(list) => lake.read_chunklist(list)?,
        whole => return stream_equal(lake, f, path, whole),
    };
    if list.size() != size {
        return Ok(false);
    }
    let extents = lakefs::sparse::data_extents(&f, size);
    let mut buf = Vec::new();
    let mut pos = 0u64;
    for piece in &list.pieces {
        let end = pos + piece.len();
        let equal = match piece {
            lakefs::chunklist::Piece::Chunk(id, len) => {
                let want = lake.read_object(id)?.1;
                buf.resize(*len as usize, 0);
                f.read_exact_at(&mut buf, pos).is_ok() && buf == want
            }
            lakefs::chunklist::Piece::Hole(_) => zeros_in(&f, &extents, pos, end, &mut buf).at(path)?,
        };
        if !equal {
            return Ok(false);
        }
        pos = end;
    }
    Ok(true)
}

/// Whether bytes `from..to` of `f` are all zeros, reading only where its data
/// extents lie (the rest is holes).
fn zeros_in(f: &std::fs::File, extents: &[(u64, u64)], from: u64, to: u64, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    for &(off, len) in extents {
        let (mut at, end) = (off.max(from), (off + len).min(to));
        while at < end {
            let k = (end - at).min(1 << 20) as usize;
            buf.resize(k, 0);
            f.read_exact_at(buf, at)?;
            if buf.iter().any(|b| *b != 0) {
                return Ok(false);
            }
            at += k as u64;
        }
    }
    Ok(true)
}

/// [`file_holds`] for content read in one stream.
fn stream_equal(lake: &Lake, f: std::fs::File, path: &Path, content: &lakefs::tree::Content) -> Result<bool> {
    use std::io::{BufReader, Read, Write};
    struct Compare {
        f: BufReader<std::fs::File>,
        equal: bool,
        buf: Vec<u8>,
    }
    impl Write for Compare {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.equal {
                self.buf.resize(b.len(), 0);
                self.equal = self.f.read_exact(&mut self.buf).is_ok() && self.buf == b;
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Compare { f: BufReader::with_capacity(1 << 20, f), equal: true, buf: Vec::new() };
    lake.write_content(content, &mut c)?;
    // Nothing may follow the content.
    Ok(c.equal && c.f.read(&mut [0u8; 1]).at(path)? == 0)
}

/// Local times (to the second) of the newest `max` commits, distinct, newest first.
pub fn recent_times(v: &Volume, max: usize) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = v.head()?;
    while let Some(id) = cur {
        if out.len() >= max {
            break;
        }
        let c = v.lake().read_commit(&id)?;
        if let Ok(ts) = jiff::Timestamp::from_second(c.time) {
            let s = ts.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%dT%H:%M:%S").to_string();
            if out.last() != Some(&s) {
                out.push(s);
            }
        }
        cur = c.parents.first().copied();
    }
    Ok(out)
}

#[cfg(test)]
mod robust_tests;
#[cfg(test)]
mod tests;
