//! The lake partition: a lake staged in a host directory (rootfs imported into
//! the POSIX zone as loose, hard-linkable objects, then deployed as pinned
//! generation 1), written into the partition with `mke2fs -d` at its offset.
//!
//! `mke2fs -d` keeps hard links (one inode per link group), so the checkout in
//! `deploy/1/root` stays a farm of hard links into `objects/` on the target.
//! It drops the nanoseconds of mtimes (e2fsprogs 1.47.0), which loose objects
//! carry in their key; [`restore_mtime_nsec`] puts them back with debugfs.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

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
/// `posix/main` and deploys it as pinned generation 1.
pub fn stage(
    lake_dir: &Path,
    rootfs: &Path,
    message: &str,
    import_progress: &dyn lakefs::progress::Progress,
    deploy_progress: &dyn lakefs::progress::Progress,
) -> Result<Staged> {
    let lake = lakefs::Lake::create(lake_dir, &Default::default())
        .map_err(Error::lake(format!("creating the staging lake in {}", lake_dir.display())))?;
    let uuid = lake.superblock().uuid_string();
    let req = lakefs::ops::CommitRequest {
        src: rootfs,
        reference: lakefs::generation::POSIX_REF,
        message,
        scope: POSIX_SCOPE,
        trigger: TRIGGER,
        changed: None,
        options: lakefs::import::ImportOptions { loose: true },
        extra: vec![("installer".into(), format!("lake-installer {}", env!("CARGO_PKG_VERSION")))],
        allow_empty: false,
    };
    let out = lakefs::ops::commit_dir(&lake, &req, import_progress)
        .map_err(Error::lake(format!("importing the root file system {}", rootfs.display())))?;
    let generation = lakefs::generation::deploy(&lake, out.commit, true, deploy_progress)
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

/// Allocated bytes and inode count under `dir`, each inode once (hard links share).
fn allocated(dir: &Path) -> Result<(u64, u64)> {
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

/// Writes the staged lake as an ext4 file system labelled `lake` into `part` of `target`.
pub fn write(target: &Path, part: &PartitionSpec, staged: &Staged) -> Result<()> {
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

/// The `i_mtime_extra` field of an ext4 inode: nanoseconds and epoch bits (as the kernel encodes them).
pub fn ext4_time_extra(sec: i64, nsec: u32) -> u32 {
    let epoch = (((sec - i64::from(sec as i32)) >> 32) & 3) as u32;
    (nsec << 2) | epoch
}

/// Quotes a path for a debugfs command line (`"` doubled); None for names
/// a line-based debugfs script cannot carry (newlines).
fn debugfs_quote(path: &[u8]) -> Option<Vec<u8>> {
    if path.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return None;
    }
    let mut q = vec![b'"'];
    for b in path {
        if *b == b'"' {
            q.push(b'"');
        }
        q.push(*b);
    }
    q.push(b'"');
    Some(q)
}

/// Sets the mtime nanoseconds of every inode of the file system at `part` of
/// `target` that `mke2fs -d` truncated, from the staged lake it was made from.
/// Returns the number of inodes fixed. `script_dir` holds the debugfs script.
pub fn restore_mtime_nsec(target: &Path, part: &PartitionSpec, staged: &Staged, script_dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut seen = HashSet::new();
    let mut script = Vec::new();
    let mut fixed = 0u64;
    let mut skipped = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = staged.dir.join(&rel);
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let r = rel.join(e.file_name());
            let md = e.metadata().at(e.path())?;
            if md.is_dir() {
                stack.push(r.clone());
            }
            if md.mtime_nsec() == 0 || !seen.insert(md.ino()) {
                continue;
            }
            let mut path = b"/".to_vec();
            path.extend_from_slice(r.as_os_str().as_bytes());
            match (debugfs_quote(&path), u32::try_from(md.mtime_nsec())) {
                (Some(q), Ok(nsec)) => {
                    script.extend_from_slice(b"sif ");
                    script.extend_from_slice(&q);
                    script.extend_from_slice(format!(" mtime_extra {}\n", ext4_time_extra(md.mtime(), nsec)).as_bytes());
                    fixed += 1;
                }
                _ => skipped.push(String::from_utf8_lossy(&path).into_owned()),
            }
        }
    }
    if !skipped.is_empty() {
        return Err(Error::Invalid(format!(
            "cannot restore the mtime of {} path(s) through debugfs (names holding newlines), e.g. {:?}",
            skipped.len(),
            skipped[0]
        )));
    }
    if fixed == 0 {
        return Ok(0);
    }
    let script_path = script_dir.join("restore-mtime.debugfs");
    std::fs::write(&script_path, script).at(&script_path)?;
    let out = Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&script_path)
        .arg(format!("{}?offset={}", target.display(), part.offset))
        .output()
        .map_err(|source| Error::Spawn { program: "debugfs".into(), package: "e2fsprogs", error: source })?;
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .map(str::to_owned)
        .collect();
    if !out.status.success() || !errors.is_empty() {
        return Err(Error::Command {
            what: format!("debugfs restoring mtimes in the lake partition of {}", target.display()),
            status: out.status.to_string(),
            stderr: errors.into_iter().take(5).collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_extra_matches_the_kernel_encoding() {
        assert_eq!(ext4_time_extra(1_700_000_000, 0), 0);
        assert_eq!(ext4_time_extra(1_700_000_000, 5), 20);
        assert_eq!(ext4_time_extra(1_700_000_000, 999_999_999), 999_999_999 << 2);
        // After 2038 the epoch bits carry the 33rd second bit.
        assert_eq!(ext4_time_extra(1 << 31, 0), 1);
        // Before 1970 (a negative 32-bit value) no epoch bits are needed.
        assert_eq!(ext4_time_extra(-1, 0), 0);
        assert_eq!(debugfs_quote(b"/a \"b\"").as_deref(), Some(&b"\"/a \"\"b\"\"\""[..]));
        assert_eq!(debugfs_quote(b"/a\nb"), None);
    }
}
