//! lake-catalog: the catalog of a LAKE-zone volume: file types, properties,
//! full-text index and saved-query views, kept in the lake's metadata database
//! (docs/catalog.md). Depends on the store only; the volume keeps it in step
//! with its commits and serves its views.
//!
//! - [`error`]: the catalog's typed errors;
//! - [`types`]: type from magic bytes, content and extension;
//! - [`props`]: the properties views query (size, mtime, type, EXIF ...);
//! - [`schema`]: the tables; [`index`]: keeping them in step with commits;
//! - [`fts`]: the full-text index and search; [`query`]: the view query language;
//! - [`views`]: saved views and their directory entries.

pub mod error;
pub mod fts;
pub mod index;
pub mod props;
pub mod query;
pub mod schema;
pub mod types;
pub mod views;

use crate::error::Result;
use lakefs::id::ObjectId;
use lakefs::lake::Lake;

/// What one indexing pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct IndexStats {
    /// Files whose rows were written (added or changed content).
    pub files: u64,
    /// Of those, files that went into the full-text index.
    pub text_files: u64,
    pub removed: u64,
}

/// Brings the catalog of `volume` to tree `new` (the root tree of a commit of the
/// volume), from the tree it last indexed, which the catalog keeps itself;
/// `indexed(path)` says whether a mount-relative path gets the catalog (LAKE
/// zone) or not (HYBRID, POSIX).
pub fn index_commit(lake: &Lake, volume: &str, new: &ObjectId, indexed: &dyn Fn(&[u8]) -> bool) -> Result<IndexStats> {
    Ok(index::index_commit(lake, volume, new, indexed)?)
}

/// Rebuilds the catalog of `volume` from tree `new` alone (not from what it last indexed).
pub fn reindex(lake: &Lake, volume: &str, new: &ObjectId, indexed: &dyn Fn(&[u8]) -> bool) -> Result<IndexStats> {
    Ok(index::reindex(lake, volume, new, indexed)?)
}

/// The tree the catalog of `volume` describes (None: nothing indexed yet).
pub fn indexed_tree(lake: &Lake, volume: &str) -> Result<Option<ObjectId>> {
    let db = lake.db();
    if !schema::exists(&db)? {
        return Ok(None);
    }
    Ok(index::indexed_tree(&db, volume)?)
}

/// Names of the volume's saved views.
pub fn view_names(lake: &Lake, volume: &str) -> Result<Vec<String>> {
    Ok(views::list(lake, volume)?.into_iter().map(|v| v.name).collect())
}

/// The entries of view `name`, or None when there is no such view.
pub fn view_entries(lake: &Lake, volume: &str, name: &str) -> Result<Option<Vec<views::Entry>>> {
    views::entries(lake, volume, name)
}
