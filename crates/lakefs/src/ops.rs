//! Whole operations built from the parts: commit a directory onto a ref.

use std::path::Path;

use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::import::{self, ImportOptions, ImportStats, ScanOptions};
use crate::lake::{is_ref_name, Lake};
use crate::progress::Progress;
use crate::writer::{RefUpdate, WriteSession};

pub struct CommitRequest<'a> {
    pub src: &'a Path,
    pub reference: &'a str,
    pub message: &'a str,
    pub scope: &'a str,
    pub trigger: &'a str,
    /// Only these paths (relative to `src`) changed since the ref's commit.
    pub changed: Option<&'a [String]>,
    pub options: ImportOptions,
    pub extra: Vec<(String, String)>,
    /// Record a commit even when the tree equals the parent's.
    pub allow_empty: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct CommitOutcome {
    pub commit: ObjectId,
    pub parent: Option<ObjectId>,
    pub tree: ObjectId,
    /// True when nothing changed and no new commit was made.
    pub unchanged: bool,
    pub stats: ImportStats,
}

pub fn commit_dir(lake: &Lake, req: &CommitRequest, progress: &dyn Progress) -> Result<CommitOutcome> {
    commit_dir_onto(lake, req, None, progress)
}

/// Like [`commit_dir`], but the change list applies to root tree `base` instead
/// of the ref's tree: a running root's upper layer holds the changes since its
/// generation's commit, which may be older than the ref's head.
pub fn commit_dir_onto(lake: &Lake, req: &CommitRequest, base: Option<&ObjectId>, progress: &dyn Progress) -> Result<CommitOutcome> {
    commit_dir_with(lake, req, base, &ScanOptions::default(), progress)
}

/// Like [`commit_dir_onto`], with exclusions and content reuse (LAKE-zone volumes).
pub fn commit_dir_with(
    lake: &Lake,
    req: &CommitRequest,
    base: Option<&ObjectId>,
    scan: &ScanOptions,
    progress: &dyn Progress,
) -> Result<CommitOutcome> {
    if !is_ref_name(req.reference) {
        return Err(Error::BadRefName(req.reference.to_owned()));
    }
    let w = WriteSession::begin(lake)?;
    let parent = lake.get_ref(req.reference)?;
    let parent_commit = parent.map(|p| lake.read_commit(&p)).transpose()?;
    let (tree, root, stats) = match (req.changed, &parent_commit) {
        (Some(changed), Some(pc)) => {
            import::import_changes_with(&w, req.src, base.unwrap_or(&pc.tree), changed, &req.options, scan, progress)?
        }
        (Some(_), None) => {
            return Err(Error::Invalid(format!(
                "ref '{}' has no commit yet: the first import must be a full one (drop the change list)",
                req.reference
            )))
        }
        (None, _) => import::import_full_with(&w, req.src, &req.options, scan, progress)?,
    };
    if let (Some(p), Some(pc)) = (parent, &parent_commit) {
        if !req.allow_empty && pc.tree == tree && pc.root == root {
            return Ok(CommitOutcome { commit: p, parent: Some(p), tree, unchanged: true, stats });
        }
    }
    let (time, time_nsec) = crate::util::now();
    let commit = Commit {
        tree,
        root,
        parents: parent.into_iter().collect(),
        scope: req.scope.to_owned(),
        time,
        time_nsec,
        trigger: req.trigger.to_owned(),
        message: req.message.to_owned(),
        extra: req.extra.clone(),
    };
    let id = w.put_commit(&commit)?;
    w.finish(
        &[(id, commit)],
        &[RefUpdate { name: req.reference.to_owned(), expected: parent, new: id, reason: format!("commit: {}", req.message) }],
    )?;
    Ok(CommitOutcome { commit: id, parent, tree, unchanged: false, stats })
}
