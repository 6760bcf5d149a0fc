//! The lake partition: a lake staged in a host directory (rootfs imported into
//! the POSIX zone as loose, hard-linkable objects, then deployed as pinned
//! generation 1), written into the partition with `mke2fs -d` at its offset.
//!
//! `mke2fs -d` keeps hard links (one inode per link group), so the checkout in
//! `deploy/1/root` stays a farm of hard links into `objects/` on the target.
//! It drops the nanoseconds of mtimes (e2fsprogs 1.47.0), which loose objects
//! carry in their key; `lakefs::substrate::format` puts them back with debugfs.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::gpt_layout::PartitionSpec;
use crate::units::{align_up, human, GIB, MIB};

pub const POSIX_SCOPE: &str = "zone:posix";
pub const TRIGGER: &str = "install";

#[derive(Clone, Debug, Serialize)]
pub struct Staged {
    #[serde(skip)]
    pub dir: PathBuf,
    /// The lake UUID (also the ext4 UUID).
    pub uuid: String,
    pub commit: String,
    pub generation: u32,
    pub import: lakefs::import::ImportStats,
    /// Allocated bytes of the staged lake (each inode counted once).
    pub bytes: u64,
    pub inodes: u64,
}

/// Creates a lake in `lake_dir` (empty or missing), imports `rootfs` on
/// `posix/main` and deploys it as pinned generation 1. With `commit_time`
/// (a reproducible build's SOURCE_DATE_EPOCH) the commit gets that time, so
/// its id depends on the content only.
pub fn stage(
    lake_dir: &Path,
    rootfs: &Path,
    message: &str,
    commit_time: Option<i64>,
    import_progress: &dyn lakefs::progress::Progress,
    deploy_progress: &dyn lakefs::progress::Progress,
) -> Result<Staged> {
    let lake = lakefs::Lake::create(lake_dir, &Default::default())
        .map_err(Error::lake(format!("creating the staging lake in {}", lake_dir.display())))?;
    let uuid = lake.superblock().uuid_string();
    let req = lakefs::ops::CommitRequest {
        src: rootfs,
        reference: lake_posix::generation::POSIX_REF,
        message,
        scope: POSIX_SCOPE,
        trigger: TRIGGER,
        changed: None,
        options: lakefs::import::ImportOptions { loose: true },
        extra: vec![("installer".into(), format!("lake-installer {}", env!("CARGO_PKG_VERSION")))],
        allow_empty: false,
    };
    let out = match commit_time {
        None => lakefs::ops::commit_dir(&lake, &req, import_progress),
        Some(t) => commit_at(&lake, &req, t, import_progress),
    }
    .map_err(Error::lake(format!("importing the root file system {}", rootfs.display())))?;
    let generation = lake_posix::generation::deploy(&lake, out.commit, true, deploy_progress)
        .map_err(Error::lake(format!("deploying commit {} as generation 1", out.commit)))?;
    drop(lake);
    let (bytes, inodes) = allocated(lake_dir)?;
    Ok(Staged {
        dir: lake_dir.to_owned(),
        uuid,
        commit: out.commit.to_string(),
        generation: generation.number,
        import: out.stats,
        bytes,
        inodes,
    })
}

/// `lakefs::ops::commit_dir` for the first commit of a fresh lake, with a
/// given commit time instead of the clock's.
fn commit_at(
    lake: &lakefs::Lake,
    req: &lakefs::ops::CommitRequest,
    time: i64,
    progress: &dyn lakefs::progress::Progress,
) -> lakefs::Result<lakefs::ops::CommitOutcome> {
    use lakefs::writer::{RefUpdate, WriteSession};
    let w = WriteSession::begin(lake)?;
    if let Some(have) = lake.get_ref(req.reference)? {
        return Err(lakefs::Error::Invalid(format!("the staging lake already has {} at {have}", req.reference)));
    }
    let (tree, root, stats) = lakefs::import::import_full(&w, req.src, &req.options, progress)?;
    let commit = lakefs::commit::Commit {
        tree,
        root,
        parents: vec![],
        scope: req.scope.to_owned(),
        time,
        time_nsec: 0,
        trigger: req.trigger.to_owned(),
        message: req.message.to_owned(),
        extra: req.extra.clone(),
    };
    let id = w.put_commit(&commit)?;
    let reason = format!("commit: {}", req.message);
    w.finish(&[(id, commit)], &[RefUpdate { name: req.reference.to_owned(), expected: None, new: id, reason }])?;
    Ok(lakefs::ops::CommitOutcome { commit: id, parent: None, tree, unchanged: false, stats })
}

/// Allocated bytes and inode count under `dir`, each inode once (hard links share).
pub fn allocated(dir: &Path) -> Result<(u64, u64)> {
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).at(&d)? {
            let e = e.at(&d)?;
            let md = e.metadata().at(e.path())?;
            if seen.insert(md.ino()) {
                bytes += md.blocks() * 512;
            }
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    Ok((bytes, seen.len() as u64 + 1))
}

/// A lower bound of the ext4 size the staged lake needs (content, inodes,
/// journal), and a comfortable disk size to suggest.
pub fn needed(staged: &Staged) -> (u64, u64) {
    let need = staged.bytes + staged.inodes * 256 + 64 * MIB;
    let suggest = align_up(need + need / 4 + 1024 * MIB, GIB);
    (need, suggest)
}

/// Refuses early (before anything is written) when the staged lake cannot fit.
pub fn check_fits(staged: &Staged, part: &PartitionSpec, boot_bytes: u64) -> Result<()> {
    let (need, suggest) = needed(staged);
    if part.size < need {
        return Err(Error::LakeTooSmall { have: human(part.size), need: human(staged.bytes), suggest: human(suggest + boot_bytes) });
    }
    Ok(())
}

/// Writes the staged lake as an ext4 file system labelled `lake` into `part` of
/// `target`; returns how many inodes needed their mtime nanoseconds restored.
pub fn write(target: &Path, part: &PartitionSpec, staged: &Staged) -> Result<u64> {
    lakefs::substrate::format(&lakefs::substrate::Format {
        target,
        offset: part.offset,
        size: Some(part.size),
        label: lakefs::substrate::LABEL,
        uuid: staged.uuid.clone(),
        populate: &staged.dir,
    })
    .map_err(Error::lake(format!(
        "writing the lake partition ({} at byte {}) of {}",
        human(part.size),
        part.offset,
        target.display()
    )))
}
