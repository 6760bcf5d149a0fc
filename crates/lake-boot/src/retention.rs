//! Removing generations together with their boot entries, one at a time or by
//! retention (keep the newest N). The entry goes first, so the boot loader
//! never offers a generation whose checkout is gone; kernels and initrds no
//! entry uses any more go last.

use std::path::PathBuf;

use lake_posix::generation::{self, Generation};
use lakefs::{Lake, ObjectId};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::esp::Esp;

/// One removed generation.
#[derive(Clone, Debug, Serialize)]
pub struct Removed {
    pub generation: u32,
    pub commit: ObjectId,
    pub pinned: bool,
    /// Its entries on the ESP (ESP paths).
    pub entries: Vec<String>,
    /// Its directory in the lake.
    pub dir: PathBuf,
}

/// What a removal or prune did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub removed: Vec<Removed>,
    /// `/lake/<hash>` directories on the ESP no entry used any more.
    pub boot_files_dropped: Vec<String>,
}

impl Report {
    pub fn generations(&self) -> Vec<u32> {
        self.removed.iter().map(|r| r.generation).collect()
    }
}

fn remove_one(lake: &Lake, esp: &Esp, n: u32) -> Result<Removed> {
    // Checked before the entry goes, so a refused removal changes nothing.
    let during = || format!("removing generation {n}");
    generation::check_removable(lake, n, generation::booted()).map_err(Error::lake(during()))?;
    let entries = esp.remove_generation(n)?;
    let g = generation::remove(lake, n).map_err(Error::lake(during()))?;
    Ok(Removed { generation: n, commit: g.commit, pinned: g.pinned, entries, dir: generation::dir(lake.root(), n) })
}

/// Removes generation `n` (refused for the default and the booted one), its
/// entries and the boot files nothing else uses. `keep_files` (ESP paths) are
/// kept even when no entry uses them.
pub fn remove(lake: &Lake, esp: &Esp, n: u32, keep_files: &[&str]) -> Result<Report> {
    let _lock = esp.lock()?;
    let removed = vec![remove_one(lake, esp, n)?];
    let boot_files_dropped = esp.drop_unreferenced(keep_files)?;
    Ok(Report { removed, boot_files_dropped })
}

/// The generations [`prune`] would remove, oldest first.
pub fn prune_plan(lake: &Lake, keep: u32, protect: &[u32]) -> Result<Vec<Generation>> {
    let during = || format!("planning to prune generations beyond the newest {keep}");
    let numbers = generation::prune_candidates(lake, keep, protect).map_err(Error::lake(during()))?;
    let all = generation::list(lake).map_err(Error::lake(during()))?;
    Ok(all.into_iter().filter(|g| numbers.contains(&g.number)).collect())
}

/// Removes the generations beyond the newest `keep`, except pinned ones, the
/// default, the booted one and `protect`; then the boot files nothing uses.
pub fn prune(lake: &Lake, esp: &Esp, keep: u32, protect: &[u32], keep_files: &[&str]) -> Result<Report> {
    let _lock = esp.lock()?;
    prune_locked(lake, esp, keep, protect, keep_files)
}

/// [`prune`] for a caller that holds the ESP lock.
pub(crate) fn prune_locked(lake: &Lake, esp: &Esp, keep: u32, protect: &[u32], keep_files: &[&str]) -> Result<Report> {
    let mut report = Report::default();
    for g in prune_plan(lake, keep, protect)? {
        report.removed.push(remove_one(lake, esp, g.number)?);
    }
    report.boot_files_dropped = esp.drop_unreferenced(keep_files)?;
    Ok(report)
}
