//! Writing the difference between two trees into a live root (`rollback
//! --now`): the running system takes the new state without a reboot.
//!
//! Each changed file is written beside its final name and renamed over it, so a
//! program that opens the path sees the old file or the new one, never a
//! partial one (running programs keep the inode they hold). Removals go deepest
//! first, additions parents first; a directory that appears or disappears is
//! handled as a whole. Parent directories get their recorded metadata back at
//! the end (creating entries moved their mtimes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lakefs::checkout;
use lakefs::diff::{Change, ChangeKind};
use lakefs::error::{Error, IoContext, Result};
use lakefs::fsmeta;
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::{Meta, Node};

#[derive(Debug, Default, serde::Serialize)]
pub struct ApplyStats {
    pub written: u64,
    pub removed: u64,
    pub metadata: u64,
}

fn under(path: &str, dirs: &BTreeSet<String>) -> bool {
    dirs.iter().any(|d| path.strip_prefix(d.as_str()).is_some_and(|r| r.starts_with('/')))
}

fn abs(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => std::fs::remove_dir_all(path).at(path),
        Ok(_) => std::fs::remove_file(path).at(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Writes `node` at `dest` through a temporary sibling and a rename.
fn replace(lake: &Lake, node: &Node, dest: &Path, root: &Path) -> Result<()> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}.lake-new-{}", lakefs::util::random_hex(4)));
    let made = checkout::materialize(lake, node, &tmp, root);
    if let Err(e) = made {
        let _ = remove(&tmp);
        return Err(e);
    }
    if matches!(node, Node::Dir { .. }) {
        // rename(2) cannot replace a non-empty directory or a file with a directory.
        remove(dest)?;
    }
    std::fs::rename(&tmp, dest).at(dest)
}

/// Applies `changes` (from [`lakefs::diff`], old tree -> `to`) to `root`, reading
/// new nodes from `to` (root metadata `to_root`).
pub fn apply(lake: &Lake, to: &ObjectId, to_root: &Meta, changes: &[Change], root: &Path) -> Result<ApplyStats> {
    let mut st = ApplyStats::default();
    let mut whole: BTreeSet<String> = BTreeSet::new();
    let mut parents: BTreeSet<String> = BTreeSet::new();
    // Removals first, deepest first: a directory replaced by a file (or the
    // reverse) is a removal and an addition of the same path.
    let mut removals: Vec<&Change> = changes.iter().filter(|c| c.kind == ChangeKind::Removed).collect();
    removals.sort_by(|a, b| b.path.cmp(&a.path));
    let removed_dirs: BTreeSet<String> = removals.iter().filter(|c| c.entry == "dir").map(|c| c.path.clone()).collect();
    for c in &removals {
        if under(&c.path, &removed_dirs) {
            continue;
        }
        remove(&abs(root, &c.path))?;
        st.removed += 1;
        if let Some((parent, _)) = c.path.rsplit_once('/') {
            parents.insert(parent.to_owned());
        }
    }
    for c in changes.iter().filter(|c| c.kind != ChangeKind::Removed) {
        if under(&c.path, &whole) {
            continue;
        }
        if c.path == "/" {
            fsmeta::apply(root, to_root, false)?;
            st.metadata += 1;
            continue;
        }
        let node = lake.lookup(to, &c.path)?.ok_or_else(|| Error::NoSuchPath { path: c.path.clone(), commit: *to })?;
        let dest = abs(root, &c.path);
        match c.kind {
            ChangeKind::Metadata => {
                if let Some(meta) = node.meta() {
                    fsmeta::apply(&dest, meta, matches!(node, Node::Symlink { .. }))?;
                }
                st.metadata += 1;
            }
            _ => {
                replace(lake, &node, &dest, root)?;
                if matches!(node, Node::Dir { .. }) {
                    whole.insert(c.path.clone());
                }
                st.written += 1;
            }
        }
        if let Some((parent, _)) = c.path.rsplit_once('/') {
            parents.insert(parent.to_owned());
        }
    }
    // Deepest first, so setting a child's mtime does not move its parent's.
    for p in parents.iter().rev() {
        if p.is_empty() {
            fsmeta::apply(root, to_root, false)?;
        } else if let Some(Node::Dir { meta, .. }) = lake.lookup(to, p)? {
            fsmeta::apply(&abs(root, p), &meta, false)?;
        }
    }
    Ok(st)
}
