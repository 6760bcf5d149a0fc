//! Finding the lakefs mount a path is in: walk up to the directory whose
//! `.lake/info` exists (a virtual file the driver serves at the mount root).

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use lakefs::error::{Error, IoContext, Result};

/// The contents of `<mount>/.lake/info`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeInfo {
    pub lake: PathBuf,
    pub volume: String,
    pub mountpoint: PathBuf,
    #[serde(rename = "ref")]
    pub reference: String,
    /// The working tree the mount passes through.
    #[serde(default)]
    pub work: PathBuf,
}

/// A path inside a mounted volume.
#[derive(Clone, Debug)]
pub struct Located {
    pub info: VolumeInfo,
    /// The mount root as found (where `.lake/info` is).
    pub root: PathBuf,
    /// `path` relative to the mount root, '/'-separated bytes, no leading '/' ("" = the root).
    pub rel: Vec<u8>,
}

/// Absolute form of `path` with symlinks of its existing part resolved; the
/// part that does not exist (a deleted file) is appended as written.
fn absolute(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() { path.to_owned() } else { std::env::current_dir().at(".")?.join(path) };
    let mut missing: Vec<std::ffi::OsString> = Vec::new();
    let mut cur = abs.clone();
    loop {
        match std::fs::canonicalize(&cur) {
            Ok(mut c) => {
                for m in missing.iter().rev() {
                    c.push(m);
                }
                return Ok(c);
            }
            Err(_) => {
                let name = cur.file_name().map(|n| n.to_owned());
                match (name, cur.parent()) {
                    (Some(n), Some(p)) => {
                        missing.push(n);
                        cur = p.to_owned();
                    }
                    _ => return Ok(abs),
                }
            }
        }
    }
}

/// The volume `path` is in, or None when it is not inside a lakefs mount.
pub fn locate(path: &Path) -> Result<Option<Located>> {
    let abs = absolute(path)?;
    let mut dir = abs.clone();
    loop {
        let info = dir.join(".lake").join("info");
        // The mount's own `.lake` is not part of the volume; below it nothing is.
        if info.is_file() && !abs.starts_with(dir.join(".lake").join("info")) {
            let text = std::fs::read(&info).at(&info)?;
            let info: VolumeInfo =
                serde_json::from_slice(&text).map_err(|e| Error::Invalid(format!("{}: not volume info JSON: {e}", info.display())))?;
            let rel = abs.strip_prefix(&dir).unwrap_or(Path::new(""));
            let rel: Vec<&[u8]> = rel
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.as_bytes()),
                    _ => None,
                })
                .collect();
            return Ok(Some(Located { info, root: dir, rel: rel.join(&b'/') }));
        }
        if !dir.pop() {
            return Ok(None);
        }
    }
}

/// The root of a dead FUSE mount that `path` is in or at (its daemon exited:
/// every call on it fails with ENOTCONN, "Transport endpoint is not connected"),
/// or None.
pub fn dead_mount(path: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(path).ok()?;
    let mut dir = abs.as_path();
    let mut dead = None;
    loop {
        // statfs always asks the file system (attributes may come from the cache).
        match nix::sys::statfs::statfs(dir) {
            Err(nix::errno::Errno::ENOTCONN) => dead = Some(dir.to_owned()),
            // Above a dead mount everything answers; below a live one too.
            Ok(_) if dead.is_some() => return dead,
            _ => {}
        }
        dir = dir.parent()?;
    }
}

/// What to tell someone whose path is in a dead mount.
pub fn dead_mount_hint(root: &Path) -> String {
    format!(
        "{0} is a lakefs mount whose daemon has exited (Transport endpoint is not connected); \
         mount it again over the dead one (`mount -t lakefs /lake {0} -o name=home`, or `systemctl restart lakefs` on an installed system), \
         or detach it with `umount -l {0}`; the files are safe in the lake's working tree",
        root.display()
    )
}
