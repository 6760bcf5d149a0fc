//! Bringing a volume back at mount time.
//!
//! A clean unmount leaves the `clean` marker. Without it the daemon died while
//! mounted: files that were open for writing (the journal) go back to their
//! last committed version (their last micro-snapshot or fsync), and their newer
//! bytes move to `lost+found/<time>/<path>` inside the volume; then everything
//! else that changed is committed with trigger `recovery`. So nothing recorded
//! is lost and nothing is silently dropped. Either way the working tree is
//! compared with the head first (changes made while unmounted are committed);
//! stat reuse keeps that to a walk plus the trees. A path that cannot be read
//! does not stop the mount: it is left out (kept as recorded) and handed to
//! the committer's skipped set.

use crate::zones::Zone;
use lakefs::error::{Error, IoContext, Result};
use lakefs::id::ObjectId;
use lakefs::tree::Node;

use super::committer::commit_skipping;
use super::{Volume, CLEAN_MARKER, JOURNAL, LOST_FOUND};

/// Paths as `lakefs::names::to_json` writes them (strings, or `{"bytes": ..}`
/// for names that are not UTF-8), so older journals of plain strings still read.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
struct Journal {
    #[serde(with = "lakefs::names::json_list")]
    open: Vec<Vec<u8>>,
}

/// Rewrites the journal of files open for writing (atomically).
pub(crate) fn write_journal(vol: &Volume, open: &[Vec<u8>]) -> Result<()> {
    let j = Journal { open: open.to_vec() };
    let b = serde_json::to_vec_pretty(&j).map_err(|e| Error::Invalid(format!("journal: {e}")))?;
    lakefs::util::write_atomic(&vol.state_dir().join(JOURNAL), &b)
}

/// Files the journal says were open for writing (empty when there is none).
pub fn read_journal(vol: &Volume) -> Result<Vec<Vec<u8>>> {
    let p = vol.state_dir().join(JOURNAL);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice::<Journal>(&b)
            .map(|j| j.open)
            .map_err(|e| Error::Invalid(format!("{}: damaged journal: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

pub(crate) fn mark_clean(vol: &Volume) -> Result<()> {
    write_journal(vol, &[])?;
    let m = vol.state_dir().join(CLEAN_MARKER);
    lakefs::util::write_atomic(&m, b"clean unmount\n")
}

/// What a recovery did (paths mount-relative, as bytes).
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Files put back at their last committed version (newer bytes in lost+found).
    pub restored: Vec<Vec<u8>>,
    /// Files never committed that were open at the crash: moved to lost+found whole.
    pub moved: Vec<Vec<u8>>,
    /// `lost+found/<time>` (mount-relative) when anything went there.
    pub lost_found: Option<String>,
    /// The recovery commit, if anything changed.
    pub commit: Option<ObjectId>,
    /// Paths left out of the recovery commit because they could not be read, and why.
    pub not_recorded: Vec<(Vec<u8>, String)>,
}

/// Runs at mount: first import, crash recovery, or a rescan; then arms the
/// marker (removed: a crash from now on is detected). Returns the paths left
/// out because they could not be read, and why.
pub(crate) fn prepare(vol: &Volume) -> Result<Vec<(Vec<u8>, String)>> {
    let marker = vol.state_dir().join(CLEAN_MARKER);
    let mut skipped = Vec::new();
    if vol.head()?.is_none() {
        let msg = format!("initial import of volume {}", vol.name());
        commit_skipping(vol, None, &[], "manual", &msg, &mut skipped)?;
    } else if !marker.exists() {
        let r = recover(vol)?;
        skipped.clone_from(&r.not_recorded);
        if !r.restored.is_empty() || !r.moved.is_empty() || r.commit.is_some() {
            eprintln!(
                "lakefs: volume {} was not unmounted cleanly: {} open file(s) back at their last snapshot, {} never-committed file(s) moved{}{}",
                vol.name(),
                r.restored.len(),
                r.moved.len(),
                r.lost_found.as_deref().map(|l| format!(", newer bytes in {l}")).unwrap_or_default(),
                r.commit.map(|c| format!("; recovery commit {c}")).unwrap_or_default()
            );
        }
    } else {
        commit_skipping(vol, None, &[], "recovery", "changes made while the volume was not mounted", &mut skipped)?;
    }
    write_journal(vol, &[])?;
    match std::fs::remove_file(&marker) {
        Ok(()) => lakefs::util::fsync_dir(vol.state_dir())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&marker, e)),
    }
    Ok(skipped)
}

fn stamp() -> String {
    jiff::Zoned::now().strftime("%Y-%m-%dT%H-%M-%S").to_string()
}

/// Crash recovery (see the module notes). Runs before the mount is up.
pub fn recover(vol: &Volume) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let head = vol.head()?.ok_or_else(|| Error::Invalid(format!("volume {} has no history to recover to", vol.name())))?;
    let tree = vol.lake().read_commit(&head)?.tree;
    let work = vol.work_dir();
    let lf_rel = format!("{LOST_FOUND}/{}", stamp());
    for rel in read_journal(vol)? {
        if vol.zone(&rel) == Zone::Posix || rel.split(|c| *c == b'/').any(|c| c == b".." || c.is_empty()) {
            continue;
        }
        let path = work.join(lakefs::names::path(&rel));
        let md = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => m,
            // Removed or replaced by a non-file since: the rescan commits that.
            _ => continue,
        };
        let node = vol.lake().lookup(&tree, &rel)?;
        let keep = match &node {
            Some(Node::File { content, size, .. }) => md.len() == *size && super::file_holds(vol.lake(), &path, content)?,
            _ => false,
        };
        if keep {
            continue;
        }
        let dest = work.join(&lf_rel).join(lakefs::names::path(&rel));
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d).at(d)?;
        }
        std::fs::rename(&path, &dest).at(&path)?;
        report.lost_found = Some(lf_rel.clone());
        match node {
            Some(Node::File { meta, content, .. }) => {
                // Holes of a sparse file stay holes.
                let mut f = std::fs::File::create(&path).at(&path)?;
                vol.lake().write_content_to_file(&content, &mut f, &path)?;
                f.sync_all().at(&path)?;
                drop(f);
                lakefs::fsmeta::apply(&path, &meta, false)?;
                report.restored.push(rel);
            }
            _ => report.moved.push(rel),
        }
    }
    let msg = match &report.lost_found {
        Some(lf) => format!(
            "crash recovery: {} open file(s) back at their last snapshot, {} never committed; newer bytes in {lf}",
            report.restored.len(),
            report.moved.len()
        ),
        None => "crash recovery: changes since the last commit".to_owned(),
    };
    let out = commit_skipping(vol, None, &[], "recovery", &msg, &mut report.not_recorded)?;
    report.commit = (!out.unchanged).then_some(out.commit);
    Ok(report)
}
