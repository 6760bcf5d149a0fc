//! Who may read a lake's own files: its owner only (root on an installed system).
//!
//! Packs and loose objects hold every file's bytes, `/etc/shadow` and other users'
//! mode-600 files included, and meta.db names every path; so the lake directory
//! is mode 0700 and its own files 0600, whatever the umask. What a lake *holds*
//! keeps the modes it records: working trees (`state/NAME`), a generation's
//! overlay directories and the loose objects that checkouts hard-link to are
//! reached through their checkouts' paths, never through the lake directory.
//!
//! Lakes made before this rule (mode 0755, files 0644) are tightened once by the
//! first writer (superblock compat bit `PRIVATE`, set when done), and
//! `fsck.lakefs` reports them (`-y` fixes them). A lake opened up on purpose
//! after that (say, group-readable for a backup user) is left as it is.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};

/// Mode of the lake directory and of the directories of its own files.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the lake's own files.
pub const FILE_MODE: u32 = 0o600;

/// One of the lake's own files or directories that others may reach.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Exposed {
    pub path: PathBuf,
    pub mode: u32,
}

/// Top-level entries whose contents keep their own modes (checked themselves, not below).
const KEEP_MODES_BELOW: &[&str] = &[crate::loose::DIR, "state"];

/// The lake's own files and directories, in no particular order: the lake
/// directory, its top-level entries, packs, volume bookkeeping, the deploy
/// directories with their hot caches (not the generations' trees).
fn own_paths(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_owned()];
    for e in std::fs::read_dir(root).at(root)? {
        let e = e.at(root)?;
        let name = e.file_name();
        if name == "lost+found" {
            continue;
        }
        let p = e.path();
        out.push(p.clone());
        let Some(name) = name.to_str() else { continue };
        if KEEP_MODES_BELOW.contains(&name) || !e.file_type().at(&p)?.is_dir() {
            continue;
        }
        if name == crate::lake::DEPLOY_DIR {
            // deploy/N/ and its hot cache; root/, upper/, work/ keep their modes.
            for g in std::fs::read_dir(&p).at(&p)? {
                let g = g.at(&p)?.path();
                out.push(g.clone());
                if g.is_dir() && g.join("hotcache").exists() {
                    out.push(g.join("hotcache"));
                }
            }
            continue;
        }
        walk_all(&p, &mut out)?;
    }
    Ok(out)
}

fn walk_all(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).at(dir)? {
        let e = e.at(dir)?;
        let p = e.path();
        let is_dir = e.file_type().at(&p)?.is_dir();
        out.push(p.clone());
        if is_dir {
            walk_all(&p, out)?;
        }
    }
    Ok(())
}

/// The lake's own files and directories that group or others may read, write or enter.
pub fn exposed(root: &Path) -> Result<Vec<Exposed>> {
    let mut out = Vec::new();
    for p in own_paths(root)? {
        let md = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(crate::error::Error::io(&p, e)),
        };
        if md.file_type().is_symlink() {
            continue;
        }
        let mode = md.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            out.push(Exposed { path: p, mode });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Removes group and other access from every exposed path; returns what it changed.
pub fn tighten(root: &Path) -> Result<Vec<Exposed>> {
    let found = exposed(root)?;
    for e in &found {
        set_mode(&e.path, e.mode & !0o077)?;
    }
    Ok(found)
}

pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).at(path)
}

/// Creates directory `path` (not its parents) readable by its owner only.
pub fn create_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(DIR_MODE).create(path).at(path)?;
    // The umask may have taken bits from 0700; never adds any.
    set_mode(path, DIR_MODE)
}

/// Creates `path` and missing parents, each created one readable by its owner only.
pub fn create_dir_all(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(path).at(path)
}

/// Open options for a new private file of the lake (0600 whatever the umask).
pub fn new_file() -> std::fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_tightens_what_others_can_reach_but_not_what_the_lake_holds() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("lake");
        std::fs::create_dir(&root).expect("mkdir");
        for dir in ["packs", "objects/ab", "state/home/alice", "deploy/1/root/etc", "volumes/home"] {
            std::fs::create_dir_all(root.join(dir)).expect("mkdir");
        }
        for f in [
            "meta.db",
            "packs/pack-1.pack",
            "objects/ab/cdef",
            "state/home/alice/notes",
            "deploy/1/hotcache",
            "deploy/1/root/etc/passwd",
            "volumes/home/zones.toml",
        ] {
            std::fs::write(root.join(f), b"x").expect("write");
            set_mode(&root.join(f), 0o644).expect("chmod");
        }
        set_mode(&root, 0o755).expect("chmod");
        let found: Vec<PathBuf> =
            exposed(&root).expect("exposed").into_iter().map(|e| e.path.strip_prefix(&root).expect("inside").to_owned()).collect();
        for want in [
            "",
            "meta.db",
            "packs",
            "packs/pack-1.pack",
            "deploy",
            "deploy/1",
            "deploy/1/hotcache",
            "volumes/home/zones.toml",
            "objects",
            "state",
        ] {
            assert!(found.contains(&PathBuf::from(want)), "{want:?} is reported: {found:?}");
        }
        for kept in ["objects/ab/cdef", "state/home/alice/notes", "deploy/1/root/etc/passwd"] {
            assert!(!found.contains(&PathBuf::from(kept)), "{kept} keeps the mode it records: {found:?}");
        }
        tighten(&root).expect("tighten");
        assert!(exposed(&root).expect("exposed").is_empty());
        let mode = |p: &str| std::fs::metadata(root.join(p)).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode("meta.db"), 0o600);
        assert_eq!(mode(""), 0o700);
        assert_eq!(mode("state/home/alice/notes"), 0o644, "held files untouched");
    }
}
