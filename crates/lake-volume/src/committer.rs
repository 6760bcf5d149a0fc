//! The committer: turns the driver's notices into commits of the volume.
//!
//! - Changes and closes go into a dirty set; a batch commits it `batch_delay`
//!   after its first entry, so an untar or a build becomes a handful of commits.
//! - fsync is a group commit: the caller waits for the next batch to start and
//!   finish (it holds the file); fsyncs arriving meanwhile share the batch after.
//! - Micro-snapshots: every tick, LAKE-zone files open for writing whose stat
//!   changed since their last snapshot are committed (trigger `snapshot`) once
//!   their type's interval has passed. HYBRID files are committed on close only,
//!   POSIX-zone paths never.
//! - A path that cannot be recorded (unreadable, vanished mid-read, ...) does
//!   not stall the volume: the batch is committed without it (it keeps its last
//!   recorded state), the path is listed as skipped (control `status`), and it
//!   is tried again when it changes next.
//! - The set of files open for writing is persisted (the journal) at most once a
//!   tick, so recovery knows which files were being written at a crash.
//! - Paths are bytes (any name the kernel accepts). A change to a POSIX-zone
//!   name of a file that also has LAKE-zone names marks those names.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::zones::Zone;
use lakefs::error::{Error, Result};
use lakefs::id::ObjectId;

use super::{DaemonOptions, Volume};

/// Why a path is in the dirty set; a batch's commit carries the strongest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    Snapshot,
    Change,
    Close,
    Fsync,
}

impl Cause {
    pub fn trigger(self) -> &'static str {
        match self {
            Cause::Snapshot => "snapshot",
            Cause::Change | Cause::Close => "close",
            Cause::Fsync => "fsync",
        }
    }
}

/// What a file's stat looked like at its last snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sig {
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
    ctime: i64,
    ctime_nsec: i64,
}

fn sig_of(md: &std::fs::Metadata) -> Sig {
    Sig { size: md.len(), mtime: md.mtime(), mtime_nsec: md.mtime_nsec(), ctime: md.ctime(), ctime_nsec: md.ctime_nsec() }
}

struct OpenFile {
    sig: Option<Sig>,
    last_snapshot: Instant,
}

#[derive(Default)]
pub(crate) struct State {
    dirty: BTreeMap<Vec<u8>, Cause>,
    first_pending: Option<Instant>,
    open: HashMap<Vec<u8>, OpenFile>,
    journal_dirty: bool,
    /// Run the next batch now (fsync, flush).
    urgent: bool,
    /// The next batch rescans the whole tree (after a zone reload).
    rescan: bool,
    started: u64,
    finished: u64,
    /// Outcome of recent batches: commit (None: nothing to commit) or error text.
    results: BTreeMap<u64, std::result::Result<Option<ObjectId>, Failed>>,
    stop: bool,
    final_result: Option<std::result::Result<(), String>>,
    /// Paths left out of commits because they could not be recorded, with the
    /// reason; held at their last recorded state until they change.
    skipped: BTreeMap<Vec<u8>, String>,
    /// Callers waiting for a commit (fsync, flush): the committer runs at normal
    /// priority while there are any.
    waiters: u32,
}

pub(crate) struct Shared {
    pub(crate) vol: Volume,
    opts: DaemonOptions,
    st: Mutex<State>,
    /// Wakes the committer.
    wake: Condvar,
    /// Wakes waiters when a batch finishes.
    done: Condvar,
    /// (trigger, message) for the next batch, set by a flush that says why
    /// (restore, switch, merge).
    next_label: Mutex<Option<(String, String)>>,
    /// The committer and its hashing threads: idle priority unless someone waits.
    prio: std::sync::Arc<super::priority::Group>,
    /// The FUSE driver's passthrough flag for the mount this daemon serves (set
    /// once the mount is up; `status` reports it).
    pub(crate) passthrough: std::sync::OnceLock<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// Why a batch failed, for its waiters: the text, and whether the lake was full
/// (an fsync then says ENOSPC, not EIO).
#[derive(Clone, Debug)]
struct Failed {
    text: String,
    full: bool,
}

/// How many batch results are kept for waiters.
const KEEP_RESULTS: usize = 256;
/// Longest the catalog lags the head while changes keep coming (see `run`).
const INDEX_LAG: Duration = Duration::from_secs(30);

impl Shared {
    pub(crate) fn new(vol: Volume, opts: DaemonOptions) -> Shared {
        Shared {
            vol,
            opts,
            st: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            next_label: Mutex::new(None),
            prio: Default::default(),
            passthrough: std::sync::OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `rel` to the dirty set; true when it starts a new batch (the
    /// committer must learn when it is due).
    fn mark(st: &mut State, rel: &[u8], cause: Cause) -> bool {
        match st.dirty.get_mut(rel) {
            Some(e) => *e = (*e).max(cause),
            None => {
                st.dirty.insert(rel.to_owned(), cause);
            }
        }
        let first = st.first_pending.is_none();
        st.first_pending.get_or_insert_with(Instant::now);
        first
    }

    /// The zone of `rel` for the hooks. A file's create, attribute changes, open
    /// and close ask about the same path in a row (often on one request thread),
    /// so each thread remembers its last answer rather than matching the zone
    /// globs every time; keyed by the zone map too, so a reload is seen.
    fn hook_zone(&self, rel: &[u8]) -> Zone {
        /// The zone map, path and zone of the last question.
        type Last = Option<(std::sync::Arc<crate::zones::VolumeZones>, Vec<u8>, Zone)>;
        thread_local! {
            static LAST: std::cell::RefCell<Last> = const { std::cell::RefCell::new(None) };
        }
        let zones = self.vol.zones();
        LAST.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((z, p, zone)) = &*c {
                if std::sync::Arc::ptr_eq(z, &zones) && p == rel {
                    return *zone;
                }
            }
            let zone = zones.zone(rel);
            *c = Some((zones, rel.to_owned(), zone));
            zone
        })
    }

    /// Raises the committer to normal priority while a caller waits for a
    /// commit; the committer drops back to idle once no one waits.
    fn add_waiter(&self, st: &mut State) {
        st.waiters += 1;
        self.prio.raise();
    }

    /// A change to a POSIX-zone name: recorded only under the file's other,
    /// recorded names, if it is a hard link of some (a stat only then).
    fn posix_change(&self, rel: &[u8], cause: Cause) {
        if !self.vol.has_links() {
            return;
        }
        let Ok(md) = std::fs::symlink_metadata(self.vol.work_dir().join(lakefs::names::path(rel))) else { return };
        if md.is_dir() || md.nlink() < 2 {
            return;
        }
        let names = self.vol.names_of_inode((md.dev(), md.ino()));
        if names.is_empty() {
            return;
        }
        let mut st = self.lock();
        let mut first = false;
        for n in &names {
            first |= Self::mark(&mut st, n, cause);
        }
        drop(st);
        if first {
            self.wake.notify_one();
        }
    }

    pub(crate) fn changed(&self, rel: &[u8]) {
        if self.hook_zone(rel) == Zone::Posix {
            return self.posix_change(rel, Cause::Change);
        }
        // Writes to a file open for writing wait for its close or snapshot; but
        // when its name is gone (renamed or unlinked while open) the name's
        // removal is committed now and the entry forgotten (the new name is
        // reported as a change of its own).
        let mut st = self.lock();
        if !st.skipped.is_empty() {
            Self::unskip(&mut st, rel);
        }
        if st.open.contains_key(rel) {
            drop(st);
            // Writes land here often: only open files pay for this stat.
            if std::fs::symlink_metadata(self.vol.work_dir().join(lakefs::names::path(rel))).is_ok() {
                return;
            }
            st = self.lock();
            if st.open.remove(rel).is_some() {
                st.journal_dirty = true;
            }
        }
        // The committer sleeps until a batch is due; only the change that starts
        // a batch needs to wake it (one futex wake per batch, not per operation).
        let first = Self::mark(&mut st, rel, Cause::Change);
        drop(st);
        if first {
            self.wake.notify_one();
        }
    }

    pub(crate) fn opened_for_write(&self, rel: &[u8]) {
        if self.hook_zone(rel) == Zone::Posix {
            return;
        }
        let sig = std::fs::symlink_metadata(self.vol.work_dir().join(lakefs::names::path(rel))).ok().map(|m| sig_of(&m));
        let mut st = self.lock();
        if !st.open.contains_key(rel) {
            st.open.insert(rel.to_owned(), OpenFile { sig, last_snapshot: Instant::now() });
            st.journal_dirty = true;
        }
    }

    pub(crate) fn released(&self, rel: &[u8]) {
        if self.hook_zone(rel) == Zone::Posix {
            return self.posix_change(rel, Cause::Close);
        }
        let mut st = self.lock();
        // The driver reports the first writable open and the last writable close
        // of an inode, so one release ends the file's open state.
        if st.open.remove(rel).is_some() {
            st.journal_dirty = true;
        }
        let first = Self::mark(&mut st, rel, Cause::Close);
        drop(st);
        if first {
            self.wake.notify_one();
        }
    }

    /// Waits until batch `ticket` finished; returns its outcome.
    fn wait_for(&self, mut st: MutexGuard<'_, State>, ticket: u64) -> Result<Option<ObjectId>> {
        self.add_waiter(&mut st);
        while st.finished < ticket {
            if st.final_result.is_some() {
                st.waiters -= 1;
                return Err(Error::Invalid("the volume was unmounted before the commit".into()));
            }
            st = self.done.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.waiters -= 1;
        match st.results.get(&ticket) {
            Some(Ok(c)) => Ok(*c),
            Some(Err(Failed { full: true, .. })) => {
                Err(Error::DiskFull { path: self.vol.lake().root().to_owned(), during: "the commit a caller waits for".into() })
            }
            Some(Err(e)) => Err(Error::Invalid(format!("commit failed: {}", e.text))),
            None => Ok(None),
        }
    }

    pub(crate) fn fsync(&self, rel: &[u8]) -> Result<()> {
        // HYBRID files are committed on close only; POSIX ones never (the driver
        // makes the data durable either way).
        if self.hook_zone(rel) != Zone::Lake {
            return Ok(());
        }
        let mut st = self.lock();
        Self::mark(&mut st, rel, Cause::Fsync);
        st.urgent = true;
        let ticket = st.started + 1;
        self.wake.notify_one();
        self.wait_for(st, ticket).map(|_| ())
    }

    /// Commits what is pending now (and, with `rescan`, the whole tree); returns the head.
    pub(crate) fn flush(&self, rescan: bool, cause_override: Option<(String, String)>) -> Result<Option<ObjectId>> {
        let mut st = self.lock();
        if rescan {
            st.rescan = true;
        }
        // Files still open for writing are committed as they are now: the
        // kernel sends RELEASE after close(2) returned, so a file just written
        // and closed may still be open here.
        let open: Vec<Vec<u8>> = st.open.keys().cloned().collect();
        for rel in open {
            Self::mark(&mut st, &rel, Cause::Change);
        }
        if st.dirty.is_empty() && !st.rescan {
            drop(st);
            self.vol.index_logged();
            return self.vol.head();
        }
        if let Some(o) = cause_override {
            *self.next_label.lock().unwrap_or_else(|p| p.into_inner()) = Some(o);
        }
        st.urgent = true;
        let ticket = st.started + 1;
        self.wake.notify_one();
        let r = self.wait_for(st, ticket)?;
        // A flush is the point where search and views are current too.
        self.vol.index_logged();
        match r {
            Some(c) => Ok(Some(c)),
            None => self.vol.head(),
        }
    }

    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        // The unmount waits for the final batch: not at idle priority.
        self.prio.raise();
        self.wake.notify_one();
    }

    pub(crate) fn final_result(&self) -> Result<()> {
        match &self.lock().final_result {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(Error::Invalid(format!("final commit failed: {e}"))),
            None => Err(Error::Invalid("the committer did not finish".into())),
        }
    }

    /// Files open for writing now (mount-relative).
    pub(crate) fn open_files(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self.lock().open.keys().cloned().collect();
        v.sort();
        v
    }

    /// Adds due micro-snapshots to the dirty set. Stats run outside the lock.
    fn snapshots(&self) {
        let now = Instant::now();
        let zones = self.vol.zones();
        let due: Vec<(Vec<u8>, Option<Sig>)> = {
            let st = self.lock();
            st.open
                .iter()
                .filter(|(rel, f)| {
                    let secs = zones.snapshot_secs(rel);
                    secs > 0 && now.duration_since(f.last_snapshot) >= Duration::from_secs(secs)
                })
                .map(|(rel, f)| (rel.clone(), f.sig))
                .collect()
        };
        if due.is_empty() {
            return;
        }
        let fresh: Vec<(Vec<u8>, Option<Sig>, bool)> = due
            .into_iter()
            .map(|(rel, old)| {
                let new = std::fs::symlink_metadata(self.vol.work_dir().join(lakefs::names::path(&rel))).ok().map(|m| sig_of(&m));
                let changed = new != old;
                (rel, new, changed)
            })
            .collect();
        let mut st = self.lock();
        for (rel, sig, changed) in fresh {
            let Some(f) = st.open.get_mut(&rel) else { continue };
            f.last_snapshot = now;
            if changed {
                f.sig = sig;
                Self::mark(&mut st, &rel, Cause::Snapshot);
                // A snapshot is due now, not a batch delay later.
                st.urgent = true;
            }
        }
    }

    fn write_journal(&self) {
        let open = {
            let mut st = self.lock();
            if !st.journal_dirty {
                return;
            }
            st.journal_dirty = false;
            let mut v: Vec<Vec<u8>> = st.open.keys().cloned().collect();
            v.sort();
            v
        };
        if let Err(e) = super::recovery::write_journal(&self.vol, &open) {
            eprintln!("lakefs: volume {}: cannot write the open-files journal: {e}", self.vol.name());
            self.lock().journal_dirty = true;
        }
    }
}

impl Shared {
    fn take_label(&self) -> Option<(String, String)> {
        self.next_label.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// A change to `rel` makes it (its ancestors, what is below it) worth another try.
    fn unskip(st: &mut State, rel: &[u8]) {
        st.skipped.remove(rel);
        for a in lakefs::names::ancestors(rel) {
            st.skipped.remove(a);
        }
        let mut below = rel.to_vec();
        below.push(b'/');
        let gone: Vec<Vec<u8>> =
            st.skipped.range(below.clone()..).take_while(|(k, _)| k.starts_with(&below)).map(|(k, _)| k.clone()).collect();
        for k in gone {
            st.skipped.remove(&k);
        }
    }

    /// Paths left out of commits (mount-relative) and why.
    pub(crate) fn skipped(&self) -> BTreeMap<Vec<u8>, String> {
        self.lock().skipped.clone()
    }

    /// Paths the mount-time commit left out (see [`super::recovery::prepare`]).
    pub(crate) fn set_skipped(&self, skipped: Vec<(Vec<u8>, String)>) {
        self.lock().skipped.extend(skipped);
    }

    /// The control `commit`: one commit of exactly `paths` as they are now
    /// (open or not); other skipped paths stay held, the listed ones are tried
    /// again and leave the skipped set when recorded.
    pub(crate) fn commit_explicit(&self, paths: &[Vec<u8>], message: &str) -> Result<super::VolumeCommit> {
        let held: Vec<Vec<u8>> = {
            let mut st = self.lock();
            // A batch of the committer may hold the commit lock: it must not run at idle priority meanwhile.
            self.add_waiter(&mut st);
            st.skipped.keys().filter(|k| !paths.contains(k)).cloned().collect()
        };
        let out = self.vol.commit_holding(Some(paths), &held, "manual", message);
        let mut st = self.lock();
        st.waiters -= 1;
        if st.waiters == 0 && !st.stop {
            self.prio.lower();
        }
        let out = out?;
        for p in paths {
            st.skipped.remove(p);
        }
        Ok(out)
    }
}

/// The working-tree path an error is about (mount-relative), and the reason,
/// when it is about one path; errors about the lake or the system are not.
fn attributable(work: &std::path::Path, e: &Error) -> Option<(Vec<u8>, String)> {
    let (path, reason) = match e {
        Error::Io { path, source } => {
            // Out of space, memory or descriptors: the next try may do better, for every path.
            let global = [libc::ENOSPC, libc::EDQUOT, libc::ENOMEM, libc::EMFILE, libc::ENFILE, libc::EROFS];
            if source.raw_os_error().is_some_and(|n| global.contains(&n)) {
                return None;
            }
            (path, source.to_string())
        }
        Error::UnsupportedFileType { path } => (path, "unsupported file type".to_owned()),
        _ => return None,
    };
    let rel = path.strip_prefix(work).ok()?.as_os_str().as_bytes().to_vec();
    (!rel.is_empty()).then_some((rel, reason))
}

/// A volume commit (`paths`, or the whole tree) that leaves out, one by one,
/// the paths it cannot record, so the rest is committed now: each is logged,
/// held at its last recorded state and added to `added` with the reason.
pub(crate) fn commit_skipping(
    vol: &Volume,
    paths: Option<&[Vec<u8>]>,
    held: &[Vec<u8>],
    trigger: &str,
    message: &str,
    added: &mut Vec<(Vec<u8>, String)>,
) -> Result<super::VolumeCommit> {
    let mut held = held.to_vec();
    loop {
        let e = match vol.commit_unindexed(paths, &held, trigger, message) {
            Ok(out) => return Ok(out),
            Err(e) => e,
        };
        let Some((rel, reason)) = attributable(vol.work_dir(), &e) else { return Err(e) };
        if held.contains(&rel) {
            return Err(e);
        }
        eprintln!(
            "lakefs: volume {}: not recording {}: {reason} (the rest is committed; tried again when it changes)",
            vol.name(),
            lakefs::names::escape(&rel)
        );
        held.push(rel.clone());
        added.push((rel, reason));
    }
}

/// A batch that leaves out the paths it cannot record (see the module notes).
fn batch_skipping(
    sh: &Shared,
    paths: &BTreeMap<Vec<u8>, Cause>,
    rescan: bool,
    label: Option<(String, String)>,
) -> Result<Option<ObjectId>> {
    let held: Vec<Vec<u8>> = sh.lock().skipped.keys().cloned().collect();
    let mut added = Vec::new();
    let r = batch(sh, paths, rescan, label, &held, &mut added);
    let mut st = sh.lock();
    for (rel, reason) in added {
        // Changed again while this batch ran (a file replaced mid-read): tried in the next batch.
        if !st.dirty.contains_key(&rel) {
            st.skipped.insert(rel, reason);
        }
    }
    r
}

fn describe(paths: &BTreeMap<Vec<u8>, Cause>) -> String {
    let mut it = paths.keys();
    match (it.next(), paths.len()) {
        (None, _) => "rescan".into(),
        (Some(p), 1) => lakefs::names::escape(p),
        (Some(p), n) => format!("{} and {} more", lakefs::names::escape(p), n - 1),
    }
}

/// One batch: commits the dirty set (or the whole tree). Runs without the lock.
fn batch(
    sh: &Shared,
    paths: &BTreeMap<Vec<u8>, Cause>,
    rescan: bool,
    label: Option<(String, String)>,
    held: &[Vec<u8>],
    added: &mut Vec<(Vec<u8>, String)>,
) -> Result<Option<ObjectId>> {
    let cause = paths.values().copied().max().unwrap_or(Cause::Change);
    let (trigger, message) = label.unwrap_or_else(|| (cause.trigger().to_owned(), describe(paths)));
    let out = if rescan {
        commit_skipping(&sh.vol, None, held, &trigger, &message, added)?
    } else {
        let list: Vec<Vec<u8>> = paths.keys().cloned().collect();
        commit_skipping(&sh.vol, Some(&list), held, &trigger, &message, added)?
    };
    Ok((!out.unchanged).then_some(out.commit))
}

/// The committer thread's loop.
pub(crate) fn run(sh: &Shared) {
    // Idle class: the file operations this thread records win the CPUs and the
    // disk. Hashing and compressing run in a pool of our own whose threads join
    // the group too (the global rayon pool's would run at normal priority).
    sh.prio.join();
    let group = sh.prio.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("lakefs-hash-{i}"))
        .start_handler(move |_| group.join())
        .build()
        .map_err(|e| eprintln!("lakefs: volume {}: no hashing pool of its own ({e}); using the shared one", sh.vol.name()))
        .ok();
    let mut last_tick = Instant::now();
    // The catalog pass waits for a quiet moment (nothing pending), or INDEX_LAG
    // under a steady stream of changes; at start it catches up whatever a crash
    // or recovery left unindexed.
    let mut needs_index = true;
    let mut last_index = Instant::now();
    let index_if_needed = |needs: &mut bool, last: &mut Instant| {
        if !*needs {
            return;
        }
        match &pool {
            Some(p) => p.install(|| sh.vol.index_logged()),
            None => sh.vol.index_logged(),
        }
        *needs = false;
        *last = Instant::now();
    };
    loop {
        let mut st = sh.lock();
        // Sleep until the next tick, or the batch is due.
        loop {
            if st.stop {
                break;
            }
            let now = Instant::now();
            let due = st.urgent || st.rescan || st.first_pending.is_some_and(|t| now.duration_since(t) >= sh.opts.batch_delay);
            if due || now.duration_since(last_tick) >= sh.opts.tick {
                break;
            }
            let mut wait = sh.opts.tick.saturating_sub(now.duration_since(last_tick));
            if let Some(t) = st.first_pending {
                wait = wait.min(sh.opts.batch_delay.saturating_sub(now.duration_since(t)));
            }
            st = sh.wake.wait_timeout(st, wait.max(Duration::from_millis(1))).unwrap_or_else(|p| p.into_inner()).0;
        }
        let stopping = st.stop;
        drop(st);
        if Instant::now().duration_since(last_tick) >= sh.opts.tick || stopping {
            last_tick = Instant::now();
            sh.snapshots();
            sh.write_journal();
        }
        let mut st = sh.lock();
        if stopping {
            // Final batch: everything pending and every file still open.
            let open: Vec<Vec<u8>> = st.open.keys().cloned().collect();
            for rel in open {
                Shared::mark(&mut st, &rel, Cause::Close);
            }
        }
        let now = Instant::now();
        let due = stopping || st.urgent || st.rescan || st.first_pending.is_some_and(|t| now.duration_since(t) >= sh.opts.batch_delay);
        if !due || (st.dirty.is_empty() && !st.rescan) {
            st.urgent = false;
            if st.dirty.is_empty() {
                st.first_pending = None;
            }
            if stopping {
                drop(st);
                index_if_needed(&mut needs_index, &mut last_index);
                sh.lock().final_result = Some(Ok(()));
                sh.done.notify_all();
                return;
            }
            let quiet = st.dirty.is_empty();
            drop(st);
            if quiet || last_index.elapsed() >= INDEX_LAG {
                index_if_needed(&mut needs_index, &mut last_index);
            }
            continue;
        }
        let paths = std::mem::take(&mut st.dirty);
        let rescan = std::mem::take(&mut st.rescan);
        st.first_pending = None;
        st.urgent = false;
        st.started += 1;
        let n = st.started;
        drop(st);
        let label = sh.take_label();
        let r = match &pool {
            Some(p) => p.install(|| batch_skipping(sh, &paths, rescan, label)),
            None => batch_skipping(sh, &paths, rescan, label),
        };
        let mut st = sh.lock();
        st.finished = n;
        match &r {
            Ok(c) => {
                st.results.insert(n, Ok(*c));
            }
            Err(e) => {
                eprintln!("lakefs: volume {}: commit of {} failed: {e}", sh.vol.name(), describe(&paths));
                st.results.insert(n, Err(Failed { text: e.to_string(), full: matches!(e, Error::DiskFull { .. }) }));
                // Keep them for the next batch.
                for (p, c) in paths {
                    Shared::mark(&mut st, &p, c);
                }
                st.rescan |= rescan;
            }
        }
        while st.results.len() > KEEP_RESULTS {
            st.results.pop_first();
        }
        if matches!(r, Ok(Some(_))) {
            needs_index = true;
        }
        if stopping {
            drop(st);
            index_if_needed(&mut needs_index, &mut last_index);
            sh.lock().final_result = Some(r.map(|_| ()).map_err(|e| e.to_string()));
            sh.done.notify_all();
            return;
        }
        if st.waiters == 0 {
            sh.prio.lower();
        }
        drop(st);
        sh.done.notify_all();
    }
}
