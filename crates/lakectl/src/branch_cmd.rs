//! Branches and merges of paths in a lakefs mount.

use anyhow::{bail, Result};

#[derive(clap::Subcommand)]
pub enum BranchCmd {
    /// Start a branch of a directory (or file) in a lakefs mount.
    Create {
        path: std::path::PathBuf,
        #[arg(long)]
        name: String,
    },
}

#[derive(clap::Args)]
pub struct MergeArgs {
    /// The branch to merge into the current one.
    pub name: String,
}

pub fn branch(_c: &BranchCmd, _json: bool) -> Result<()> {
    bail!("branch is not implemented yet")
}

pub fn merge(_a: &MergeArgs, _json: bool) -> Result<()> {
    bail!("merge is not implemented yet")
}
