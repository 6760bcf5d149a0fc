//! Typed errors of lake-boot.
//!
//! Rules: a variant for each thing a caller branches on or a user acts on (no
//! ESP, not enough space on the lake or the ESP); the store's errors are kept
//! with what was being done ([`Error::Lake`]). Messages name the file, directory
//! or generation they concern; which lakectl command frees space (`lakectl
//! generation prune`, `lakectl gc`) is the binaries' to say.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::NoSpace`] on the lake's file system.
pub const LAKE_FS: &str = "lake file system";
/// [`Error::NoSpace`] on the ESP.
pub const ESP: &str = "ESP";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{during}: {error}")]
    Lake { during: String, error: lakefs::Error },
    #[error(
        "no mounted ESP found (looked for a mount point holding loader/ at {tried}); mount the ESP \
         (e.g. `mount /dev/disk/by-parttypeuuid/c12a7328-f81f-11d2-ba4b-00a0c93ec93b.* /efi`) or pass --esp DIR"
    )]
    NoEsp { tried: String },
    #[error("--esp {path}: not a directory; give the directory the ESP is mounted on")]
    NotADirectory { path: PathBuf },
    /// `what`: [`LAKE_FS`] or [`ESP`]; the binaries say what to free or prune.
    #[error("not enough space on the {what} at {path}: {free} free, {need} needed ({detail})")]
    NoSpace { what: &'static str, path: PathBuf, free: String, need: String, detail: String },
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io { path: path.into(), error }
    }

    pub fn lake(during: impl Into<String>) -> impl FnOnce(lakefs::Error) -> Error {
        let during = during.into();
        move |error| Error::Lake { during, error }
    }
}

lakefs::io_context!(Error);
