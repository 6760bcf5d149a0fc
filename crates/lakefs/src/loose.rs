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
use crate::error::{IoContext, Result};
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
    let (tmp, ()) = write_tmp(root, meta, fill)?;
    place(root, &tmp, key)
}

/// Writes a loose object whose key is known only once its content is (`fill`
/// returns the content id): the file is filled in scratch space, then
/// `keep(key)` says whether to rename it into place (false: an object with that
/// key exists, the copy is dropped). Returns the content id and what `fill` gave.
pub fn write_streamed<T>(
    root: &Path,
    meta: &Meta,
    fill: impl FnOnce(&mut File) -> Result<(ObjectId, T)>,
    keep: impl FnOnce(&ObjectId) -> bool,
) -> Result<(ObjectId, ObjectId, T)> {
    let (tmp, (id, extra)) = write_tmp(root, meta, fill)?;
    let k = key(&id, meta);
    if keep(&k) {
        place(root, &tmp, &k)?;
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
    Ok((id, k, extra))
}

fn write_tmp<T>(root: &Path, meta: &Meta, fill: impl FnOnce(&mut File) -> Result<T>) -> Result<(PathBuf, T)> {
    let tmp = root.join("tmp").join(format!("loose-{}", crate::util::random_hex(8)));
    let r = (|| {
        let mut f = File::create(&tmp).at(&tmp)?;
        let v = fill(&mut f)?;
        f.flush().at(&tmp)?;
        crate::fsmeta::apply_fd(&f, &tmp, meta)?;
        Ok(v)
    })();
    match r {
        Ok(v) => Ok((tmp, v)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn place(root: &Path, tmp: &Path, key: &ObjectId) -> Result<PathBuf> {
    let dest = path(root, key);
    let dir = dest.parent().unwrap_or(root);
    let r = crate::privacy::create_dir_all(dir).and_then(|_| std::fs::rename(tmp, &dest).at(&dest));
    if r.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    r.map(|_| dest)
}
