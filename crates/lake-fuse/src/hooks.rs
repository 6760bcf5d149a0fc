//! What the FUSE driver tells a LAKE-zone volume about, and asks of it.
//!
//! The driver (this module's siblings) is a passthrough file system over the
//! volume's working directory; it knows nothing of history, zones or views. The
//! volume (`lake_volume`) implements this trait: it turns change notices into
//! commits and answers the virtual paths under `.lake/` and `views/`.
//!
//! Paths are mount-relative bytes, without a leading '/': `alice/notes.txt`. A
//! name is whatever the kernel accepted (not necessarily UTF-8): see
//! `lakefs::names` for how it is shown and sent as JSON.

use super::caller::Caller;
use lakefs::error::Result;
use lakefs::id::ObjectId;
use lakefs::lake::Lake;

/// One entry of a saved-query view directory (`<mount>/views/NAME/ENTRY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewEntry {
    /// The entry's name inside the view directory (unique within the view).
    pub name: String,
    /// Mount-relative path of the file it shows, in the catalog's text form
    /// (`lakefs::names::escape`d: a name that is not UTF-8 is written `\xHH`).
    pub path: String,
}

pub trait VolumeHooks: Send + Sync + 'static {
    /// The lake the volume's history lives in (for reading `.lake/at/` trees).
    fn lake(&self) -> &Lake;
    /// `rel` changed: content, metadata, created, removed or renamed (both names are reported).
    fn changed(&self, rel: &[u8]);
    /// A file was opened with write access.
    fn opened_for_write(&self, rel: &[u8]);
    /// The last writable handle of a file was released (close).
    fn released(&self, rel: &[u8]);
    /// fsync/fdatasync of `rel`: returns once a commit holding its content is durable.
    fn fsync(&self, rel: &[u8]) -> Result<()>;
    /// A request written to `<mount>/.lake/control` (JSON) by `caller`; returns the
    /// JSON reply, which holds only what that caller may see.
    fn control(&self, caller: &Caller, request: &[u8]) -> Vec<u8>;
    /// Contents of the read-only file `<mount>/.lake/info` (JSON: lake, volume, mountpoint, ref).
    fn info(&self) -> Vec<u8>;
    /// Resolves the `<when>` of `<mount>/.lake/at/<when>/` to a commit's root tree
    /// (tree id and the root directory's metadata); None when nothing matches.
    fn tree_at(&self, when: &str) -> Result<Option<(ObjectId, lakefs::tree::Meta)>>;
    /// Names offered under `.lake/at/` when it is listed (recent commit times).
    fn recent_times(&self) -> Vec<String>;
    /// Names of saved views (`<mount>/views/`).
    fn views(&self) -> Vec<String>;
    /// The entries of one view that `caller` may see (files it may read, in directories
    /// it may list); None when there is no such view.
    fn view_entries(&self, caller: &Caller, name: &str) -> Option<Vec<ViewEntry>>;
}
