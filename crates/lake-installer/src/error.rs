//! Typed errors of the installer library.
//!
//! Rules: a variant for each thing a caller branches on or a user acts on (a
//! target that needs --yes or --size, a lake partition too small); the store's
//! and lake-boot's errors are kept with what was being done. Messages name the
//! device, image or file they concern. The installer is one binary over this
//! library, so its options may be named here; other tools' commands are not.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{during}: {error}")]
    Lake { during: String, error: lakefs::Error },
    #[error("writing the GPT of {target}: {error}")]
    Gpt { target: PathBuf, error: gpt::GptError },
    #[error("{what} on {target} (partition at byte {offset}): {error}")]
    Fat { what: String, target: PathBuf, offset: u64, error: std::io::Error },
    #[error("{target} (or a partition on it) is mounted at {at}; unmount it first")]
    Mounted { target: PathBuf, at: String },
    #[error("refusing to overwrite {target} without --yes: {reason}")]
    NeedsYes { target: PathBuf, reason: String },
    #[error("{target} does not exist: give --size (e.g. --size 8G) to create an image file of that size")]
    SizeRequired { target: PathBuf },
    #[error("{0}")]
    Layout(String),
    #[error("the lake partition ({have}) is too small for the staged lake ({need} of files, plus ext4 overhead); give a larger --size (at least {suggest})")]
    LakeTooSmall { have: String, need: String, suggest: String },
    #[error("{what} failed ({status}): {stderr}")]
    Command { what: String, status: String, stderr: String },
    #[error("cannot run {program}: {error}; is it installed ({package})?")]
    Spawn { program: String, package: &'static str, error: std::io::Error },
    /// ci/build-images.sh is not in the repository given.
    #[error("{} not found: run lake-installer build from the repository root (or pass --repo)", script.display())]
    ImageScriptMissing { script: PathBuf },
    /// The script exited non-zero: 1 a build or check failed, 2 a usage error.
    #[error("{} failed ({}); see {} for the full mkosi output", script.display(), match code { Some(2) => "usage error, exit 2".to_owned(), Some(c) => format!("exit {c}"), None => "killed by a signal".to_owned() }, logs.display())]
    ImageScript { script: PathBuf, code: Option<i32>, logs: PathBuf },
    /// The script succeeded but its stdout has no report the installer can read.
    #[error("{} --json gave no report the installer can read: {error}", script.display())]
    ImageScriptReport { script: PathBuf, error: String },
    /// The script's report names an output that is not there.
    #[error("{} finished but its {what} ({}) is missing", script.display(), path.display())]
    ImageScriptOutput { script: PathBuf, what: &'static str, path: PathBuf },
    #[error(transparent)]
    Boot(#[from] lake_boot::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }

    pub fn lake(during: impl Into<String>) -> impl FnOnce(lakefs::Error) -> Error {
        let during = during.into();
        move |error| Error::Lake { during, error }
    }
}

lakefs::io_context!(Error);
