//! The catalog of a LAKE-zone volume: file types, properties, full-text index and
//! saved-query views, kept in the lake's metadata database (docs/catalog.md).
//!
//! - [`types`]: type from magic bytes, content and extension;
//! - [`props`]: the properties views query (size, mtime, type, EXIF ...);
//! - [`schema`]: the tables; [`index`]: keeping them in step with commits;
//! - [`fts`]: the full-text index and search; [`query`]: the view query language;
//! - [`views`]: saved views and their directory entries.

pub mod fts;
pub mod index;
pub mod props;
pub mod query;
pub mod schema;
pub mod types;
pub mod views;

use crate::error::Result;
use crate::fuse::hooks::ViewEntry;
use crate::id::ObjectId;
use crate::lake::Lake;

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
pub fn index_commit(lake: &Lake, volume: &str, new: &ObjectId, indexed: &dyn Fn(&str) -> bool) -> Result<IndexStats> {
    index::index_commit(lake, volume, new, indexed)
}

/// Names of the volume's saved views.
pub fn view_names(lake: &Lake, volume: &str) -> Result<Vec<String>> {
    Ok(views::list(lake, volume)?.into_iter().map(|v| v.name).collect())
}

/// The entries of view `name`, or None when there is no such view.
pub fn view_entries(lake: &Lake, volume: &str, name: &str) -> Result<Option<Vec<ViewEntry>>> {
    views::entries(lake, volume, name)
}
