//! Restore planning: the steps that make a path of a mounted volume equal to a
//! past version of it, and carrying them out through the mount.
//!
//! The version is the daemon's `tree` reply (only what the caller could read
//! then, as JSON: `kind`, `size`, `content`, `chunked`, `target`, `entries`,
//! `meta`); its bytes are read through `<mount>/.lake/at/<commit>/` as the
//! caller, so the kernel checks every read too. The working copy is changed
//! THROUGH the mount (ordinary writes, so the kernel's caches stay right); the
//! caller then asks the daemon to commit (`flush`, trigger `restore`).
//!
//! Paths are mount-relative bytes (`lakefs::names`).

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use lakefs::names::{self, escape};
use lakefs::ObjectId;
use serde_json::Value;

/// What can go wrong planning or applying a restore. Messages name the path and
/// the action, the OS error is the source (callers print the chain).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// Reading, listing, writing or renaming a path failed; `what` says which.
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The daemon's reply held something that is not a path or an object id.
    #[error("{what} in the daemon's reply")]
    BadReply {
        what: &'static str,
        #[source]
        source: lakefs::Error,
    },
    /// A step names a path the version's description does not hold.
    #[error("{} is not in the version's description", escape(.path))]
    NotInVersion { path: Vec<u8> },
}

type Result<T, E = RestoreError> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Io { what, source }
}

/// One step of a restore (mount-relative paths as bytes).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Step {
    Write {
        #[serde(with = "names::json")]
        path: Vec<u8>,
        size: u64,
    },
    Symlink {
        #[serde(with = "names::json")]
        path: Vec<u8>,
        #[serde(with = "names::json")]
        target: Vec<u8>,
    },
    Mkdir {
        #[serde(with = "names::json")]
        path: Vec<u8>,
    },
    Remove {
        #[serde(with = "names::json")]
        path: Vec<u8>,
    },
}

impl Step {
    /// The path the step changes.
    pub fn path(&self) -> &[u8] {
        match self {
            Step::Write { path, .. } | Step::Symlink { path, .. } | Step::Mkdir { path } | Step::Remove { path } => path,
        }
    }
}

/// Where the version being restored can be read: a directory laid out as the
/// volume was then (`<mount>/.lake/at/<commit>` in use).
#[derive(Clone, Debug)]
pub struct Past {
    at: PathBuf,
}

impl Past {
    /// The version `commit` (`b3:..`) of the volume mounted at `root`.
    pub fn at_commit(root: &Path, commit: &str) -> Self {
        Past { at: root.join(".lake").join("at").join(commit) }
    }

    /// A version laid out under `dir` (tests, or any copy of the tree).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Past { at: dir.into() }
    }

    fn path(&self, rel: &[u8]) -> PathBuf {
        self.at.join(names::path(rel))
    }
}

/// A path or name in the daemon's reply (JSON form: `lakefs::names::to_json`).
fn reply_path(v: &Value) -> Result<Vec<u8>> {
    names::from_json(v).map_err(|source| RestoreError::BadReply { what: "a path", source })
}

/// True if the file at `path` holds exactly the version's file `node` (at `rel`),
/// compared as they stream; holes that both have are not read.
fn same_file(past: &Past, rel: &[u8], path: &Path, node: &Value) -> Result<bool> {
    let Ok(md) = std::fs::symlink_metadata(path) else { return Ok(false) };
    if !md.is_file() || Some(md.len()) != node["size"].as_u64() {
        return Ok(false);
    }
    if node["chunked"].as_bool() == Some(false) {
        // A whole object is a small file (large ones are chunked); its id hashes its bytes.
        let id: ObjectId = node["content"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(|source| RestoreError::BadReply { what: "a content id", source })?;
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        return Ok(ObjectId::hash(&bytes) == id);
    }
    let then = past.path(rel);
    let open = |p: &Path| std::fs::File::open(p).map_err(io(format!("reading {}", p.display())));
    lakefs::sparse::same_bytes(&open(path)?, &open(&then)?, md.len()).map_err(io(format!(
        "comparing {} with {}",
        path.display(),
        then.display()
    )))
}

/// The steps that make mount-relative `rel` (at `abs`) equal to the version's
/// `node`. What the caller could not read then ("hidden"), and devices, fifos
/// and sockets ("other"), are left as they are; so are `.lake` and `views` at
/// the mount root (the driver's).
pub fn plan(past: &Past, rel: &[u8], abs: &Path, node: &Value) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    plan_into(past, rel, abs, node, &mut steps)?;
    Ok(steps)
}

fn plan_into(past: &Past, rel: &[u8], abs: &Path, node: &Value, steps: &mut Vec<Step>) -> Result<()> {
    let cur = std::fs::symlink_metadata(abs).ok();
    match node["kind"].as_str().unwrap_or_default() {
        "file" if !same_file(past, rel, abs, node)? => {
            if cur.as_ref().is_some_and(|m| m.is_dir()) {
                steps.push(Step::Remove { path: rel.to_owned() });
            }
            steps.push(Step::Write { path: rel.to_owned(), size: node["size"].as_u64().unwrap_or_default() });
        }
        "symlink" => {
            let target = reply_path(&node["target"])?;
            let same = std::fs::read_link(abs).is_ok_and(|t| t.as_os_str().as_bytes() == target.as_slice());
            if !same {
                if cur.is_some() {
                    steps.push(Step::Remove { path: rel.to_owned() });
                }
                steps.push(Step::Symlink { path: rel.to_owned(), target });
            }
        }
        "dir" => {
            match &cur {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    steps.push(Step::Remove { path: rel.to_owned() });
                    steps.push(Step::Mkdir { path: rel.to_owned() });
                }
                None => steps.push(Step::Mkdir { path: rel.to_owned() }),
            }
            let entries: Vec<(Vec<u8>, &Value)> =
                node["entries"].as_array().into_iter().flatten().map(|e| Ok((reply_path(&e["name"])?, e))).collect::<Result<_>>()?;
            // Entries the caller could not read then are among them: left alone, not removed.
            let wanted: HashSet<&[u8]> = entries.iter().map(|(n, _)| n.as_slice()).collect();
            if cur.as_ref().is_some_and(|m| m.is_dir()) {
                let mut present: Vec<OsString> = std::fs::read_dir(abs)
                    .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
                    .map_err(io(format!("listing {}", abs.display())))?;
                present.sort();
                for n in present {
                    if !wanted.contains(n.as_bytes()) && !(rel.is_empty() && (n == ".lake" || n == "views")) {
                        steps.push(Step::Remove { path: names::join(rel, n.as_bytes()) });
                    }
                }
            }
            for (name, e) in &entries {
                plan_into(past, &names::join(rel, name), &abs.join(OsStr::from_bytes(name)), e, steps)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The paths the steps would remove (to ask which are POSIX-zone paths).
pub fn removals(steps: &[Step]) -> Vec<&[u8]> {
    steps.iter().filter_map(|s| if let Step::Remove { path } = s { Some(path.as_slice()) } else { None }).collect()
}

/// Drops the removals of `keep` (POSIX-zone paths have no history: never removed).
pub fn keep_paths(steps: &mut Vec<Step>, keep: &HashSet<Vec<u8>>) {
    steps.retain(|s| !matches!(s, Step::Remove { path } if keep.contains(path)));
}

/// The node at mount-relative `rel` below the version's `node` (`rel` starts at `base`).
fn node_at<'a>(node: &'a Value, base: &[u8], rel: &[u8]) -> Option<&'a Value> {
    let below = rel.strip_prefix(base)?;
    names::components(below)
        .try_fold(node, |n, c| n["entries"].as_array()?.iter().find(|e| names::from_json(&e["name"]).is_ok_and(|name| name == c)))
}

fn remove(path: &Path) -> Result<()> {
    let Ok(md) = std::fs::symlink_metadata(path) else { return Ok(()) };
    if md.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.map_err(io(format!("removing {}", path.display())))
}

/// Writes the version's bytes through the mount: a temp file beside it, renamed over.
fn write_version(past: &Past, root: &Path, rel: &[u8], node: &Value) -> Result<()> {
    let dest = root.join(names::path(rel));
    let dir = dest.parent().unwrap_or(root);
    let mut tmp_name = b".".to_vec();
    tmp_name.extend_from_slice(names::file_name(rel));
    tmp_name.extend_from_slice(format!(".lake-restore-{}", std::process::id()).as_bytes());
    let tmp = dir.join(OsString::from_vec(tmp_name));
    let src = past.path(rel);
    let (mode, uid, gid) = (node["meta"]["mode"].as_u64(), node["meta"]["uid"].as_u64(), node["meta"]["gid"].as_u64());
    let r = (|| -> Result<()> {
        let mut from = std::fs::File::open(&src).map_err(io(format!("reading {}", src.display())))?;
        let size = from.metadata().map_err(io(format!("stat {}", src.display())))?.len();
        let mut f = std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
        // The holes of a sparse file stay holes (`.lake/at` reports them to SEEK_DATA).
        lakefs::sparse::copy(&mut from, size, &mut f, |_| {}).map_err(io(format!("copying {} to {}", src.display(), tmp.display())))?;
        if let Some(mode) = mode {
            f.set_permissions(std::fs::Permissions::from_mode(mode as u32)).map_err(io(format!("chmod {}", tmp.display())))?;
        }
        f.sync_all().map_err(io(format!("writing {}", tmp.display())))?;
        // Owner as recorded when we may set it (root restoring someone's file).
        let md = f.metadata().map_err(io(format!("stat {}", tmp.display())))?;
        if let (Some(uid), Some(gid)) = (uid, gid) {
            if u64::from(md.uid()) != uid || u64::from(md.gid()) != gid {
                let _ = std::os::unix::fs::fchown(&f, Some(uid as u32), Some(gid as u32));
            }
        }
        std::fs::rename(&tmp, &dest).map_err(io(format!("renaming {} over {}", tmp.display(), dest.display())))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Carries out `steps` (planned from the version's `node` at mount-relative
/// `base`) on the mount at `root`, in order.
pub fn apply(past: &Past, root: &Path, base: &[u8], node: &Value, steps: &[Step]) -> Result<()> {
    for s in steps {
        match s {
            Step::Write { path, .. } => {
                let n = node_at(node, base, path).ok_or_else(|| RestoreError::NotInVersion { path: path.clone() })?;
                write_version(past, root, path, n)?
            }
            Step::Symlink { path, target } => std::os::unix::fs::symlink(OsStr::from_bytes(target), root.join(names::path(path)))
                .map_err(io(format!("creating symlink {}", escape(path))))?,
            Step::Mkdir { path } => {
                std::fs::create_dir_all(root.join(names::path(path))).map_err(io(format!("creating {}", escape(path))))?
            }
            Step::Remove { path } => remove(&root.join(names::path(path)))?,
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
