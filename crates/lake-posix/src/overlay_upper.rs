//! What changed in a running root: the paths an overlayfs upper layer holds.
//!
//! The booted root is overlay(lower = a generation's checkout, upper). Every
//! change since boot is in the upper directory, so listing it (not the whole
//! root) gives the change list an incremental import needs; the import then
//! reads each listed path through the merged root, which already shows
//! whiteouts as absent files and opaque directories with only their new
//! children. Walking the upper layer is what makes a commit cost what changed.
//!
//! Rules for what goes on the list (paths relative to the root):
//! - every non-directory (a file copied up or created, a symlink, a whiteout);
//! - a directory that is new (absent from the lower) or opaque (replaced): the
//!   import scans it whole;
//! - a directory that exists below and has no entries in the upper: it was
//!   copied up for a metadata change (chmod, chown, xattr), or children were
//!   made and removed again; listing it rescans it, which records its metadata;
//! - other directories only lead to their children (the import refreshes the
//!   metadata of every directory it passes through), and so does a directory
//!   with an excluded path inside.
//!
//! Excluded prefixes (the zone boundary) are skipped entirely.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use lakefs::error::{IoContext, Result};

/// Paths the POSIX zone never records: API and scratch file systems, mount
/// points of other zones, and apt's download cache.
pub const POSIX_EXCLUDED: &[&str] = &["dev", "proc", "sys", "run", "tmp", "var/tmp", "lake", "efi", "home", "var/cache/apt/archives"];

/// The xattr overlayfs sets on a directory that replaces the lower one.
const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

fn is_opaque(path: &Path) -> bool {
    OPAQUE_XATTRS.iter().any(|x| matches!(xattr::get(path, x), Ok(Some(v)) if v.as_slice() == b"y"))
}

fn excluded(rel: &[u8], excludes: &[&str]) -> bool {
    excludes.iter().any(|e| lakefs::names::within(rel, e.as_bytes()) && !e.is_empty())
}

/// Lists the changed paths under `upper` (relative, '/'-separated bytes,
/// sorted), given the `lower` directory it sits on.
pub fn changed_paths(upper: &Path, lower: &Path, excludes: &[&str]) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    walk(upper, lower, b"", excludes, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(upper: &Path, lower: &Path, rel: &[u8], excludes: &[&str], out: &mut Vec<Vec<u8>>) -> Result<()> {
    let dir = upper.join(lakefs::names::path(rel));
    let mut names: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(&dir).at(&dir)? {
        names.push(e.at(&dir)?.file_name().as_bytes().to_vec());
    }
    names.sort();
    for name in names {
        let child = lakefs::names::join(rel, &name);
        if excluded(&child, excludes) {
            continue;
        }
        let up = upper.join(lakefs::names::path(&child));
        let md = std::fs::symlink_metadata(&up).at(&up)?;
        if !md.is_dir() {
            out.push(child);
            continue;
        }
        let below = std::fs::symlink_metadata(lower.join(lakefs::names::path(&child)));
        let new_or_replaced = !below.is_ok_and(|m| m.is_dir()) || is_opaque(&up);
        let empty = std::fs::read_dir(&up).at(&up)?.next().is_none();
        // A whole-directory scan would not know the exclusions inside it.
        let holds_excluded = excludes.iter().any(|e| lakefs::names::within(e.as_bytes(), &child) && e.as_bytes() != child.as_slice());
        if (new_or_replaced || empty) && !holds_excluded {
            out.push(child);
        } else {
            walk(upper, lower, &child, excludes, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_leaves_new_dirs_and_metadata_only_dirs() {
        let d = tempfile::tempdir().expect("tempdir");
        let (up, low) = (d.path().join("upper"), d.path().join("lower"));
        for p in ["usr/bin", "etc/old", "etc/meta", "tmp"] {
            std::fs::create_dir_all(low.join(p)).expect("mkdir");
        }
        for p in ["usr/bin", "etc/old", "etc/meta", "etc/newdir/sub", "tmp", "var/tmp"] {
            std::fs::create_dir_all(up.join(p)).expect("mkdir");
        }
        std::fs::write(up.join("usr/bin/tool"), b"x").expect("write");
        std::fs::write(up.join("etc/newdir/sub/f"), b"x").expect("write");
        std::fs::write(up.join("etc/old/changed"), b"x").expect("write");
        std::fs::write(up.join("tmp/junk"), b"x").expect("write");
        std::fs::write(up.join("var/tmp/junk"), b"x").expect("write");
        std::os::unix::fs::symlink("tool", up.join("usr/bin/link")).expect("symlink");
        let got = changed_paths(&up, &low, POSIX_EXCLUDED).expect("walk");
        let want: Vec<&[u8]> = vec![b"etc/meta", b"etc/newdir", b"etc/old/changed", b"usr/bin/link", b"usr/bin/tool"];
        assert_eq!(got, want);
        assert!(excluded(b"var/tmp/x", POSIX_EXCLUDED) && !excluded(b"var/tmpfoo", POSIX_EXCLUDED));
    }
}
