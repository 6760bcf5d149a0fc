//! Saved-query views and full-text search over a lakefs mount's catalog.

use anyhow::{bail, Result};

#[derive(clap::Subcommand)]
pub enum ViewCmd {
    /// Save a query as a view, shown as the directory <mount>/views/NAME/.
    Create {
        name: String,
        #[arg(long)]
        query: String,
    },
}

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Words to look for in text files.
    pub text: String,
}

pub fn view(_c: &ViewCmd, _json: bool) -> Result<()> {
    bail!("view is not implemented yet")
}

pub fn search(_a: &SearchArgs, _json: bool) -> Result<()> {
    bail!("search is not implemented yet")
}
