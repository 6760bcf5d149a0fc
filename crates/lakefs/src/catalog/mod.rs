//! The catalog of a LAKE-zone volume: file types, properties, full-text index and
//! saved-query views, kept in the lake's metadata database.

use crate::error::Result;
use crate::fuse::hooks::ViewEntry;
use crate::id::ObjectId;
use crate::lake::Lake;

/// What one indexing pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IndexStats {
    pub files: u64,
    pub text_files: u64,
    pub removed: u64,
}

/// Brings the catalog of `volume` from tree `old` to tree `new` (root trees of
/// two commits of the volume); `indexed(path)` says whether a mount-relative path
/// gets the catalog (LAKE zone) or not (HYBRID, POSIX).
pub fn index_commit(
    _lake: &Lake,
    _volume: &str,
    _old: Option<&ObjectId>,
    _new: &ObjectId,
    _indexed: &dyn Fn(&str) -> bool,
) -> Result<IndexStats> {
    Ok(IndexStats::default())
}

/// Names of the volume's saved views.
pub fn view_names(_lake: &Lake, _volume: &str) -> Result<Vec<String>> {
    Ok(Vec::new())
}

/// The entries of view `name`, or None when there is no such view.
pub fn view_entries(_lake: &Lake, _volume: &str, _name: &str) -> Result<Option<Vec<ViewEntry>>> {
    Ok(None)
}
