//! The root file system to install: a directory, or a tar archive (any
//! compression GNU tar recognises) extracted exactly (owners, modes, xattrs,
//! device nodes, hard links) into a scratch directory first.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, IoContext, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsKind {
    Directory,
    Tar,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rootfs {
    pub path: PathBuf,
    pub kind: RootfsKind,
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Rootfs> {
        let md = std::fs::metadata(path).at(path)?;
        let kind = if md.is_dir() {
            RootfsKind::Directory
        } else if md.is_file() {
            RootfsKind::Tar
        } else {
            return Err(Error::Invalid(format!("--rootfs {}: neither a directory nor a tar archive", path.display())));
        };
        Ok(Rootfs { path: path.to_owned(), kind })
    }

    /// The directory to import: the rootfs itself, or `scratch` holding the
    /// extracted archive (`scratch` must be an empty or missing directory).
    pub fn materialize(&self, scratch: &Path) -> Result<PathBuf> {
        match self.kind {
            RootfsKind::Directory => Ok(self.path.clone()),
            RootfsKind::Tar => {
                extract_tar(&self.path, scratch)?;
                Ok(scratch.to_owned())
            }
        }
    }
}

/// `tar --xattrs --xattrs-include='*' --numeric-owner -xpf TAR -C DEST`.
pub fn extract_tar(tar: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).at(dest)?;
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-xpf"])
        .arg(tar)
        .arg("-C")
        .arg(dest)
        .output()
        .map_err(|source| Error::Spawn { program: "tar".into(), package: "tar", error: source })?;
    if !out.status.success() {
        return Err(Error::Command {
            what: format!("extracting {} into {}", tar.display(), dest.display()),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}
