//! lake-cli-docs: the man pages and shell completions of the Lake OS tools,
//! generated from their clap definitions, so they cannot drift from `--help`.
//!
//! Every tool's `main()` calls [`maybe_generate`] first. Unless the environment
//! variable [`ENV`] (`LAKE_GENERATE_DOCS=DIR`) is set it does nothing; when it is,
//! the tool writes its documentation under DIR and exits 0 (1 if writing fails):
//!
//! ```text
//! DIR/man/man1/lakectl.1          the tool's page (section 8 for system tools: man/man8/)
//! DIR/man/man1/lakectl-commit.1   one page per subcommand, nested ones too (lakectl-branch-list.1)
//! DIR/completions/bash/lakectl    named as bash-completion's completions/ directory wants
//! DIR/completions/zsh/_lakectl
//! DIR/completions/fish/lakectl.fish
//! ```
//!
//! ci/gen-docs.sh runs each built tool this way; ci/install.sh, ci/build-deb.sh
//! and ci/build-images.sh install the result.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// `LAKE_GENERATE_DOCS=DIR`: write the docs under DIR and exit.
pub const ENV: &str = "LAKE_GENERATE_DOCS";

/// The manual section a tool's pages go in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Section 1, user commands (lakectl, lakefs).
    Commands,
    /// Section 8, system administration (mkfs.lakefs, fsck.lakefs, mount.lakefs, lake-installer).
    Admin,
}

impl Section {
    fn number(self) -> &'static str {
        match self {
            Section::Commands => "1",
            Section::Admin => "8",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// If `LAKE_GENERATE_DOCS=DIR` is set, write `cmd`'s man pages and completions
/// under DIR (see the crate docs), print the files written, and exit; else return.
pub fn maybe_generate(cmd: Command, section: Section) {
    let Some(dir) = std::env::var_os(ENV) else { return };
    let name = cmd.get_name().to_string();
    match generate(cmd, section, Path::new(&dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{name}: {ENV}={}: {e}", Path::new(&dir).display());
            std::process::exit(1);
        }
    }
}

/// Write `cmd`'s man pages (one per visible subcommand, recursively) and its
/// bash, zsh and fish completions under `dir`; returns the files written.
pub fn generate(cmd: Command, section: Section, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    let man_dir = dir.join("man").join(format!("man{}", section.number()));
    create_dir(&man_dir)?;
    // No `help` subcommand page: `lakectl help X` only shows what `lakectl-X(1)` does.
    let mut man_cmd = cmd.clone().disable_help_subcommand(true);
    // Building names the subcommands (display name lakectl-commit, bin name `lakectl commit`).
    man_cmd.build();
    write_man_pages(&man_cmd, section, &man_dir, &mut written)?;

    let name = cmd.get_name().to_string();
    for (shell, file) in [(Shell::Bash, name.clone()), (Shell::Zsh, format!("_{name}")), (Shell::Fish, format!("{name}.fish"))] {
        let shell_dir = dir.join("completions").join(shell.to_string());
        create_dir(&shell_dir)?;
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), &name, &mut script);
        let path = shell_dir.join(file);
        write_file(&path, &script)?;
        written.push(path);
    }
    Ok(written)
}

fn write_man_pages(cmd: &Command, section: Section, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), Error> {
    let man = clap_mangen::Man::new(cmd.clone()).section(section.number()).manual("Lake OS");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page).map_err(|source| Error::Write { path: path.clone(), source })?;
    write_file(&path, &page)?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_pages(sub, section, dir, written)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Write { path: dir.to_path_buf(), source })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    fs::write(path, bytes).map_err(|source| Error::Write { path: path.to_path_buf(), source })
}
