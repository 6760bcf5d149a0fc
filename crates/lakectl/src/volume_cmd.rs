//! LAKE-zone volume commands (a lakefs FUSE mount such as /home): per-file log,
//! restore, zones, commits of chosen paths, status.

use anyhow::{bail, Result};

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The file (or directory) in a lakefs mount to restore.
    pub path: std::path::PathBuf,
    /// The version to go back to: a time ('10 min ago', yesterday, 2026-11-20T10:00) or a commit id.
    #[arg(long, value_name = "WHEN")]
    pub to: String,
}

#[derive(clap::Subcommand)]
pub enum ZoneCmd {
    /// Move a path of a lakefs mount into another zone (posix, hybrid or lake).
    Set { path: std::path::PathBuf, zone: String },
}

pub fn restore(_a: &RestoreArgs, _json: bool) -> Result<()> {
    bail!("restore is not implemented yet")
}

pub fn zone(_c: &ZoneCmd, _json: bool) -> Result<()> {
    bail!("zone is not implemented yet")
}
