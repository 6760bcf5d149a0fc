//! Typed errors of the volume layer (branches and merges first).
//!
//! Rules: a variant for each thing a caller branches on or a user acts on
//! (no such branch, a path outside every branch scope, a busy volume, a merge
//! in the way); the store's errors pass through unchanged ([`Error::Store`]).
//! Messages name the volume, branch or path; what to run about it (`lakectl
//! branch list`, `lakectl merge --abort`) is the
//! CLI's to say, not the library's. Where the volume speaks the store's error
//! (the FUSE hooks, control replies), it converts into it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] lakefs::Error),
    #[error("no branch '{name}' in volume '{volume}'")]
    NoSuchBranch { volume: String, name: String },
    #[error("'{path}' is in no scope with branches")]
    NoBranchScope { path: String },
    #[error("another branch or merge operation is running on volume '{volume}' ({}); retry when it is done", .lock.display())]
    Busy { volume: String, lock: PathBuf },
    #[error("branch '{name}' is the current branch of '{}'", if .scope.is_empty() { "/" } else { .scope.as_str() })]
    CurrentBranch { name: String, scope: String },
    #[error("'{scope}' is already merging '{theirs}' into '{ours}'")]
    MergeInProgress { scope: String, theirs: String, ours: String },
    #[error("'{scope}' is merging '{theirs}' into '{ours}' with unresolved conflicts ({})", .paths.join(", "))]
    UnresolvedMerge { scope: String, theirs: String, ours: String, paths: Vec<String> },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// An I/O error at `path`, as the store words it.
    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        Error::Store(lakefs::Error::io(path, e))
    }
}

impl From<Error> for lakefs::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => e,
            other => lakefs::Error::Invalid(other.to_string()),
        }
    }
}
