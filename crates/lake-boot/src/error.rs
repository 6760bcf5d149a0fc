//! Typed errors of lake-boot. Every variant names the file, directory or
//! generation it concerns and, where there is one, what to do about it.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    #[error("not enough space on the {what} at {path}: {free} free, {need} needed ({detail}); {hint}")]
    NoSpace { what: &'static str, path: PathBuf, free: String, need: String, detail: String, hint: String },
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
