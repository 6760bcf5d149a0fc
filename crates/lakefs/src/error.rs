//! Typed errors of the lake library.
//!
//! Rules: a variant for each thing a caller branches on or a user acts on (not a
//! lake, a full disk, a missing or corrupt object, an unknown revision); `Invalid`
//! only for what nobody branches on. Messages name the path, object or revision
//! that is wrong; which command to run about it (`lakectl gc`, `lakectl init`) is
//! the binaries' to say: each renders its hints from these variants.

use std::path::PathBuf;

use crate::id::ObjectId;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a lake (no superblock file {superblock})")]
    NotALake { path: PathBuf, superblock: &'static str },
    #[error("{path}: bad lake superblock: {why}")]
    BadSuperblock { path: PathBuf, why: String },
    #[error("{path}: lake format version {found} is not supported (this lakefs reads versions up to {supported}); upgrade lakefs")]
    UnsupportedVersion { path: PathBuf, found: u32, supported: u32 },
    #[error("{path}: lake uses incompatible features {flags:#x} that this lakefs does not know; upgrade lakefs to open it")]
    UnknownIncompat { path: PathBuf, flags: u64 },
    #[error("{path}: lake uses read-only-compatible features {flags:#x} unknown to this lakefs; it can only be opened read-only")]
    UnknownRoCompat { path: PathBuf, flags: u64 },
    #[error("{path}: permission denied: {why}")]
    PermissionDenied { path: PathBuf, why: String },
    #[error("{path} already holds a lake; refusing to overwrite it")]
    AlreadyALake { path: PathBuf },
    #[error("the lake at {path} is full (no space left on device) while {during}; nothing was committed")]
    DiskFull { path: PathBuf, during: String },
    #[error("metadata database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("object {0} is missing from the lake")]
    MissingObject(ObjectId),
    #[error("object {id} is corrupt: {why}")]
    CorruptObject { id: ObjectId, why: String },
    #[error("pack {path} is damaged: {why}")]
    CorruptPack { path: PathBuf, why: String },
    #[error("cannot decode {what}: {why}")]
    Decode { what: &'static str, why: String },
    #[error("unknown revision '{0}': not a ref, a commit id, nor a time (e.g. 'yesterday', '2h ago', 'tuesday', '2025-06-01T10:00:00Z', 'before:2025-06-01')")]
    UnknownRevision(String),
    #[error("revision '{rev}' is ambiguous: {why}")]
    AmbiguousRevision { rev: String, why: String },
    #[error("no commit on '{reference}' at or before {when}")]
    NothingAtTime { reference: String, when: String },
    #[error("path '{path}' does not exist in commit {commit}")]
    NoSuchPath { path: String, commit: ObjectId },
    #[error("invalid ref name '{0}': use letters, digits and - _ . / (not starting with '-' or '/', no '..')")]
    BadRefName(String),
    #[error("ref '{name}' moved to {actual} while this command ran (expected {expected}); retry")]
    RefRace { name: String, expected: String, actual: String },
    #[error("{path}: unsupported file type")]
    UnsupportedFileType { path: PathBuf },
    /// A tree that a checkout refuses (a crafted lake): names the entry and why.
    #[error("unsafe tree entry '{path}': {why}; refusing to use it (the lake may have been crafted: check where it came from)")]
    UnsafeTree { path: String, why: String },
    #[error("checkout target {path} is not empty; choose an empty or new directory")]
    TargetNotEmpty { path: PathBuf },
    /// A named thing of a layer above the store that is not there (`what`:
    /// "generation"); the binaries say where to list what there is.
    #[error("{what} {name} does not exist")]
    NotFound { what: &'static str, name: String },
    /// meta.db is gone while the packs remain: the lake is damaged.
    #[error("{path}: metadata database is missing; the lake is damaged")]
    MissingDb { path: PathBuf },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns, turning ENOSPC into [`Error::DiskFull`]
    /// so the user learns the lake is full rather than a bare errno.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return Error::DiskFull { path, during: "writing".into() };
        }
        Error::Io { path, source }
    }
}

/// Defines, in the calling module, `IoContext`: `.at(path)` on a
/// `std::io::Result` turns its error into `$err` naming the path, through
/// `$err::io(path, error)` (each crate words its own I/O errors: the store turns
/// ENOSPC into [`Error::DiskFull`], the ESP code does not). One definition for
/// every crate's error type instead of a copy in each.
#[macro_export]
macro_rules! io_context {
    ($err:ty) => {
        /// Adds a path to `std::io::Result`s.
        pub trait IoContext<T> {
            fn at(self, path: impl Into<std::path::PathBuf>) -> std::result::Result<T, $err>;
        }

        impl<T> IoContext<T> for std::io::Result<T> {
            fn at(self, path: impl Into<std::path::PathBuf>) -> std::result::Result<T, $err> {
                self.map_err(|e| <$err>::io(path, e))
            }
        }
    };
}

crate::io_context!(Error);
