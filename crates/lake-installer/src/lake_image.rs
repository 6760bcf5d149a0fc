//! The lake as an ext4 image file, the install medium's `/lake/lake.img`: the
//! staged lake (generation 1 deployed, pinned, hot cache: what `install` puts
//! in a lake partition) written with `mke2fs -d` into a file about as small as
//! the content allows. Installing copies it into the lake partition and grows
//! it with resize2fs ([`crate::install`]), so nothing is imported again.
//!
//! `mke2fs -d` (e2fsprogs 1.47.0) walks the source in sorted order, but copies
//! each inode's atime and ctime and drops mtime nanoseconds. One debugfs script
//! afterwards puts the nanoseconds back (loose objects carry their mtime in
//! their key) and, for a reproducible build, sets every atime, ctime and crtime
//! (and the mtime of the lake's own bookkeeping files) to SOURCE_DATE_EPOCH;
//! `E2FSPROGS_FAKE_TIME` fixes the times mke2fs and debugfs write themselves.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::lake_partition::Staged;
use crate::repro::Repro;
use crate::units::{align_up, MIB};

/// ext4 block size of the image (and so of the installed lake).
pub const BLOCK: u64 = 4096;
/// Bytes per inode as mke2fs's default; groups added by resize2fs at install
/// time get as many inodes as the image's groups.
const INODE_RATIO: u64 = 16384;
const TRIES: u32 = 6;

#[derive(Clone, Debug, Serialize)]
pub struct LakeImage {
    pub path: PathBuf,
    /// Size of the image file (= the ext4 file system).
    pub bytes: u64,
    pub blocks: u64,
    pub free_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
    /// mke2fs runs until the content fit.
    pub attempts: u32,
    /// Inodes the debugfs pass touched.
    pub inodes_fixed: u64,
}

/// A first guess at the file system size for the staged lake: its allocated
/// bytes, plus inode tables, journal and allocation slack.
fn first_size(staged: &Staged) -> u64 {
    let data = staged.bytes + staged.bytes / 16;
    let inode_tables = (data / INODE_RATIO).max(staged.inodes * 5 / 4) * 256;
    align_up(data + inode_tables + 40 * MIB, 4 * MIB)
}

/// Writes `staged` into a new image file `out` (replaced if it exists).
pub fn write(staged: &Staged, out: &Path, repro: Option<&Repro>) -> Result<LakeImage> {
    let mut size = first_size(staged);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let _ = std::fs::remove_file(out);
        match mke2fs(staged, out, size, repro) {
            Ok(()) => break,
            Err(Error::Command { stderr, .. }) if attempts < TRIES && out_of_space(&stderr) => {
                size = align_up(size + size / 8, 4 * MIB);
            }
            Err(e) => {
                let _ = std::fs::remove_file(out);
                return Err(e);
            }
        }
    }
    let fixed = fix_times(staged, out, repro)?;
    let e2fsck = Command::new("e2fsck").args(["-f", "-n"]).arg(out).output().map_err(|e| spawn("e2fsck", e))?;
    if !e2fsck.status.success() {
        return Err(Error::Command {
            what: format!("checking the new lake image {} (e2fsck -f -n)", out.display()),
            status: e2fsck.status.to_string(),
            stderr: format!("{}{}", String::from_utf8_lossy(&e2fsck.stdout), String::from_utf8_lossy(&e2fsck.stderr)).trim().to_owned(),
        });
    }
    let sb = superblock(out)?;
    Ok(LakeImage {
        path: out.to_owned(),
        bytes: std::fs::metadata(out).at(out)?.len(),
        blocks: sb.blocks,
        free_blocks: sb.free_blocks,
        inodes: sb.inodes,
        free_inodes: sb.free_inodes,
        attempts,
        inodes_fixed: fixed,
    })
}

fn spawn(program: &str, e: std::io::Error) -> Error {
    Error::Spawn { program: program.into(), package: "e2fsprogs", error: e }
}

fn out_of_space(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no space left")
        || s.contains("could not allocate")
        || s.contains("not enough space")
        || s.contains("inode table") && s.contains("full")
}

fn mke2fs(staged: &Staged, out: &Path, size: u64, repro: Option<&Repro>) -> Result<()> {
    let mut ext = "root_owner=0:0,lazy_itable_init=0,nodiscard".to_string();
    let mut cmd = Command::new("mke2fs");
    if let Some(r) = repro {
        ext.push_str(&format!(",hash_seed={}", r.uuid("ext4 hash seed")));
        cmd.env("E2FSPROGS_FAKE_TIME", r.epoch.to_string());
    }
    let inodes = (size / INODE_RATIO).max(staged.inodes * 5 / 4 + 1024);
    cmd.args(["-q", "-F", "-t", "ext4", "-b", &BLOCK.to_string(), "-I", "256", "-N", &inodes.to_string(), "-m", "0"])
        .args(["-L", lakefs::substrate::LABEL, "-U", &staged.uuid, "-E", &ext, "-d"])
        .arg(&staged.dir)
        .arg(out)
        .arg(format!("{}k", size / 1024));
    let o = cmd.output().map_err(|e| spawn("mke2fs", e))?;
    if !o.status.success() {
        return Err(Error::Command {
            what: format!("writing the lake image {} ({} MiB, mke2fs -d)", out.display(), size / MIB),
            status: o.status.to_string(),
            stderr: format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_owned(),
        });
    }
    Ok(())
}

/// Whether an inode's mtime is content: loose objects (`objects/xx/<key>`,
/// whose key holds the mtime) and everything in a generation's checkout.
/// Everything else is the lake's own bookkeeping, written during the build.
fn mtime_is_content(rel: &Path) -> bool {
    let c: Vec<&[u8]> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.as_bytes()),
            _ => None,
        })
        .collect();
    matches!(c.as_slice(), [b"objects", _, _] | [b"deploy", _, b"root", ..])
}

/// One debugfs script over every inode of the staged tree (each once).
fn fix_times(staged: &Staged, out: &Path, repro: Option<&Repro>) -> Result<u64> {
    let mut seen = HashSet::new();
    // mke2fs -d leaves the root directory 0755; it is the lake directory, root's only.
    let root_mode = std::fs::metadata(&staged.dir).at(&staged.dir)?.mode();
    let mut script = format!("sif / mode 0{root_mode:o}\n").into_bytes();
    let mut fixed = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = staged.dir.join(&rel);
        let mut names: Vec<_> =
            std::fs::read_dir(&dir).at(&dir)?.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>().at(&dir)?;
        names.sort();
        let mut entries: Vec<(PathBuf, std::fs::Metadata)> = Vec::new();
        if rel.as_os_str().is_empty() {
            entries.push((PathBuf::new(), std::fs::symlink_metadata(&dir).at(&dir)?));
        }
        for n in names {
            let r = rel.join(&n);
            let md = std::fs::symlink_metadata(staged.dir.join(&r)).at(staged.dir.join(&r))?;
            if md.is_dir() {
                stack.push(r.clone());
            }
            entries.push((r, md));
        }
        for (r, md) in entries {
            if !seen.insert(md.ino()) {
                continue;
            }
            let mut path = b"/".to_vec();
            path.extend_from_slice(r.as_os_str().as_bytes());
            let q = lakefs::substrate::debugfs_quote(&path).ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot set the times of {:?} through debugfs (a name holding a newline)",
                    String::from_utf8_lossy(&path)
                ))
            })?;
            let mut sif = |field: &str, value: String| {
                script.extend_from_slice(b"sif ");
                script.extend_from_slice(&q);
                script.extend_from_slice(format!(" {field} {value}\n").as_bytes());
            };
            let content = mtime_is_content(&r);
            let before = fixed;
            if content && md.mtime_nsec() != 0 {
                sif("mtime_extra", lakefs::substrate::ext4_time_extra(md.mtime(), md.mtime_nsec() as u32).to_string());
                fixed += 1;
            }
            if let Some(rp) = repro {
                let e = rp.epoch;
                let extra = lakefs::substrate::ext4_time_extra(e, 0).to_string();
                if !content {
                    sif("mtime", format!("@{e}"));
                    sif("mtime_extra", extra.clone());
                }
                for f in ["atime", "ctime", "crtime"] {
                    sif(f, format!("@{e}"));
                    sif(&format!("{f}_extra"), extra.clone());
                }
                if fixed == before {
                    fixed += 1;
                }
            }
        }
    }
    if script.is_empty() {
        return Ok(0);
    }
    let env: Vec<(&str, String)> = repro.map(|r| ("E2FSPROGS_FAKE_TIME", r.epoch.to_string())).into_iter().collect();
    lakefs::substrate::run_debugfs_script(&out.display().to_string(), &script, &env).map_err(|(status, stderr)| Error::Command {
        what: format!("setting inode times in {} (debugfs)", out.display()),
        status,
        stderr,
    })?;
    Ok(fixed)
}

/// Counts from the ext4 superblock (`dumpe2fs -h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ext4Counts {
    pub blocks: u64,
    pub free_blocks: u64,
    pub inodes: u64,
    pub free_inodes: u64,
    pub block_size: u64,
}

/// Reads the ext4 superblock of `dev` (a path, optionally `?offset=N`).
pub fn superblock(dev: &Path) -> Result<Ext4Counts> {
    let o = Command::new("dumpe2fs").arg("-h").arg(dev).output().map_err(|e| spawn("dumpe2fs", e))?;
    if !o.status.success() {
        return Err(Error::Command {
            what: format!("reading the ext4 superblock of {}", dev.display()),
            status: o.status.to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        });
    }
    Ok(parse_dumpe2fs(&String::from_utf8_lossy(&o.stdout)))
}

pub fn parse_dumpe2fs(text: &str) -> Ext4Counts {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().trim_start_matches(':').trim().parse::<u64>().ok()))
            .unwrap_or(0)
    };
    Ext4Counts {
        blocks: get("Block count:"),
        free_blocks: get("Free blocks:"),
        inodes: get("Inode count:"),
        free_inodes: get("Free inodes:"),
        block_size: get("Block size:"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_mtimes_are_objects_and_checkouts() {
        assert!(mtime_is_content(Path::new("objects/ab/abcdef")));
        assert!(mtime_is_content(Path::new("deploy/1/root")));
        assert!(mtime_is_content(Path::new("deploy/1/root/etc/passwd")));
        assert!(!mtime_is_content(Path::new("objects/ab")));
        assert!(!mtime_is_content(Path::new("deploy/1/hotcache")));
        assert!(!mtime_is_content(Path::new("meta.db")));
        assert!(!mtime_is_content(Path::new("")));
    }

    #[test]
    fn reads_dumpe2fs_counts() {
        let t = "Inode count:              45056\nBlock count:              180224\nFree blocks:              20\nFree inodes:              30000\nBlock size:               4096\n";
        assert_eq!(parse_dumpe2fs(t), Ext4Counts { blocks: 180224, free_blocks: 20, inodes: 45056, free_inodes: 30000, block_size: 4096 });
        assert_eq!(lakefs::substrate::debugfs_quote(b"/a \"b\"").as_deref(), Some(&b"\"/a \"\"b\"\"\""[..]));
        assert_eq!(lakefs::substrate::debugfs_quote(b"/a\nb"), None);
    }
}
