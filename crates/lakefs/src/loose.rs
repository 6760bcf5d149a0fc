//! Loose objects: whole files under `objects/`, each carrying the inode metadata of
//! the tree entries that use it, so that a checkout can be a farm of hard links
//! into the store (content stored once, as OSTree's bare repositories do).
//!
//! Hard links share one inode, so the loose key covers the content *and* what the
//! inode carries: mode, owner, mtime and xattrs. mtime is kept as it is (not zeroed
//! as OSTree does), so tools that check mtimes (Python byte-code caches, make) see
//! the real times; the price is that the same content with different mtimes is a
//! different loose object.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::encoding::Writer;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::tree::Meta;

pub const DIR: &str = "objects";
const MAGIC: &[u8; 8] = b"LKLOOS01";

pub fn key(content: &ObjectId, meta: &Meta) -> ObjectId {
    let mut w = Writer::with_magic(MAGIC);
    w.id(content);
    crate::tree::put_meta(&mut w, meta);
    ObjectId::hash(&w.buf)
}

pub fn path(root: &Path, key: &ObjectId) -> PathBuf {
    let hex = key.to_hex();
    root.join(DIR).join(&hex[..2]).join(&hex[2..])
}

/// Writes a loose object with `fill` providing the content, applies `meta`, and
/// renames it into place. Durability comes from the caller's `syncfs` before the
/// index transaction (one sync for a whole import instead of one per file).
///
/// An existing file at the destination is replaced, never trusted: only the index
/// says an object is complete (a power cut can leave an unsynced, empty file).
/// Callers skip objects the index already has.
pub fn write(root: &Path, key: &ObjectId, meta: &Meta, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<PathBuf> {
    let dest = path(root, key);
    let dir = dest.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).at(dir)?;
    let tmp = root.join("tmp").join(format!("loose-{}", crate::util::random_hex(8)));
    let r = (|| {
        let mut f = File::create(&tmp).at(&tmp)?;
        fill(&mut f)?;
        f.flush().at(&tmp)?;
        crate::fsmeta::apply_fd(&f, &tmp, meta)?;
        std::fs::rename(&tmp, &dest).at(&dest)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map(|_| dest)
}

/// Copies `src` into a new loose object (used by imports in loose mode).
pub fn write_from_file(root: &Path, key: &ObjectId, meta: &Meta, src: &Path) -> Result<PathBuf> {
    write(root, key, meta, |f| {
        let mut s = File::open(src).at(src)?;
        std::io::copy(&mut s, f).map_err(|e| Error::io(src, e))?;
        Ok(())
    })
}
