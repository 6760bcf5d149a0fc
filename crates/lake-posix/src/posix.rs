//! The POSIX zone's history: commits of a running root's overlay upper layer,
//! made around package-manager runs, and how those commits are classified
//! (package changes vs. the administrator's own edits).
//!
//! Commit records (the commit's `trigger` and `extra` keys):
//! - `apt` / `dpkg` with `phase=pre`: the state just before a package run, which
//!   includes every local edit made since the last commit;
//! - `apt` / `dpkg` with `phase=post`: what the package run changed;
//! - `rollback` with `phase=pre` (uncommitted changes captured before a rollback)
//!   and `phase=result` (the rolled-back tree);
//! - anything else (`manual`, `install`, ...) is the administrator's.
//!
//! `cmdline` records the package manager's command line, `generation` the
//! generation that was running.

use std::path::{Path, PathBuf};

use crate::generation;
use crate::overlay_upper;
use lakefs::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::import::ImportOptions;
use lakefs::lake::Lake;
use lakefs::ops::{self, CommitOutcome, CommitRequest};
use lakefs::progress::Progress;

pub use crate::generation::POSIX_REF;
pub const SCOPE: &str = "zone:posix";

/// An overlay root whose changes can be committed: the merged view, its upper
/// layer, its lower layer, and the commit the lower layer is a checkout of.
#[derive(Clone, Debug)]
pub struct RunningRoot {
    pub merged: PathBuf,
    pub upper: PathBuf,
    pub lower: PathBuf,
    pub base: ObjectId,
    /// The generation the root runs (None for an overlay set up by hand).
    pub generation: Option<u32>,
}

impl RunningRoot {
    /// The root this system booted from the lake (`/` over generation N, as the
    /// initramfs recorded in [`generation::BOOTED_FILE`]), or None when the system
    /// did not boot from a lake.
    pub fn booted(lake: &Lake) -> Result<Option<RunningRoot>> {
        let Some(n) = generation::booted() else { return Ok(None) };
        let g = generation::get(lake, n)?.ok_or_else(|| {
            Error::Invalid(format!("the running system booted generation {n}, which the lake at {} does not list", lake.root().display()))
        })?;
        Ok(Some(RunningRoot {
            merged: PathBuf::from("/"),
            upper: generation::upper_dir(lake.root(), n),
            lower: generation::root_dir(lake.root(), n),
            base: g.commit,
            generation: Some(n),
        }))
    }
}

/// What a POSIX-zone commit records about why it was made.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub trigger: String,
    pub phase: Option<String>,
    pub cmdline: Option<String>,
    pub message: String,
    pub extra: Vec<(String, String)>,
}

/// Commits `root`'s changes (its upper layer) onto the POSIX ref. The tree is
/// the base commit's tree plus what the upper layer holds; the parent is the
/// ref's head. Nothing new is recorded when the tree equals the head's.
pub fn commit_running(lake: &Lake, root: &RunningRoot, rec: &Record, progress: &dyn Progress) -> Result<CommitOutcome> {
    let changed = overlay_upper::changed_paths(&root.upper, &root.lower, overlay_upper::POSIX_EXCLUDED)?;
    let base = lake.read_commit(&root.base)?;
    let mut extra = rec.extra.clone();
    if let Some(p) = &rec.phase {
        extra.push(("phase".into(), p.clone()));
    }
    if let Some(c) = &rec.cmdline {
        extra.push(("cmdline".into(), c.clone()));
    }
    if let Some(g) = root.generation {
        extra.push(("generation".into(), g.to_string()));
    }
    extra.sort();
    let req = CommitRequest {
        src: &root.merged,
        reference: POSIX_REF,
        message: &rec.message,
        scope: SCOPE,
        trigger: &rec.trigger,
        changed: Some(&changed),
        options: ImportOptions { loose: true },
        extra,
        allow_empty: false,
    };
    if lake.get_ref(POSIX_REF)?.is_none() {
        return Err(Error::Invalid(format!(
            "the lake at {} has no '{POSIX_REF}' yet: import the root file system first (lake-installer does)",
            lake.root().display()
        )));
    }
    ops::commit_dir_onto(lake, &req, Some(&base.tree), progress)
}

pub fn extra<'c>(c: &'c lakefs::commit::Commit, key: &str) -> Option<&'c str> {
    c.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// How a commit's changes came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// Made by a package run (dpkg wrote them).
    Package,
    /// The result of a rollback.
    Rollback,
    /// The administrator's: local edits, manual commits, the install.
    Local,
}

pub fn origin(c: &lakefs::commit::Commit) -> Origin {
    match (c.trigger.as_str(), extra(c, "phase")) {
        ("apt" | "dpkg", Some("post")) => Origin::Package,
        ("rollback", Some("result")) => Origin::Rollback,
        _ => Origin::Local,
    }
}

/// The newest package-run "pre" commit on `head`'s first-parent chain: the
/// state just before the last apt (or dpkg) run, i.e. `before:last-apt-upgrade`.
pub fn last_package_run(lake: &Lake, head: ObjectId) -> Result<Option<(ObjectId, ObjectId)>> {
    // (pre, post) of the newest run; a run whose post commit is missing (killed)
    // still has its pre commit.
    let mut cur = Some(head);
    let mut post = None;
    while let Some(id) = cur {
        let c = lake.read_commit(&id)?;
        match (c.trigger.as_str(), extra(&c, "phase")) {
            ("apt" | "dpkg", Some("pre")) => return Ok(Some((id, post.unwrap_or(id)))),
            ("apt" | "dpkg", Some("post")) if post.is_none() => post = Some(id),
            _ => {}
        }
        cur = c.parents.first().copied();
    }
    Ok(None)
}

/// Paths under `prefix` (e.g. "/etc") that local commits changed after
/// `target` up to `head` (first-parent chain; all of it when `target` is not on
/// it). Sorted, without paths below another listed path.
pub fn local_edits(lake: &Lake, head: ObjectId, target: ObjectId, prefix: &str) -> Result<Vec<String>> {
    let mut paths = std::collections::BTreeSet::new();
    let mut cur = Some(head);
    while let Some(id) = cur {
        if id == target {
            break;
        }
        let c = lake.read_commit(&id)?;
        let parent = c.parents.first().copied();
        if let (Origin::Local, Some(p)) = (origin(&c), parent) {
            let pc = lake.read_commit(&p)?;
            let a = lake.lookup(&pc.tree, prefix)?;
            let b = lake.lookup(&c.tree, prefix)?;
            let (ta, tb) = (dir_tree(a.as_ref()), dir_tree(b.as_ref()));
            let mut changes = Vec::new();
            lakefs::diff::trees(lake, ta.as_ref(), tb.as_ref(), prefix.trim_end_matches('/'), &mut changes)?;
            paths.extend(changes.into_iter().map(|ch| ch.path));
        }
        cur = parent;
    }
    Ok(minimal(paths.into_iter().collect()))
}

fn dir_tree(n: Option<&lakefs::tree::Node>) -> Option<ObjectId> {
    match n {
        Some(lakefs::tree::Node::Dir { tree, .. }) => Some(*tree),
        _ => None,
    }
}

/// Drops every path that lies below another path of the (sorted) list.
pub fn minimal(paths: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        if out.iter().any(|q| p.strip_prefix(q.as_str()).is_some_and(|r| r.starts_with('/'))) {
            continue;
        }
        out.push(p);
    }
    out
}

/// The name and parent pid of process `pid`, from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces or ')'.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_owned();
    let ppid = stat.get(close + 2..)?.split_whitespace().nth(1)?.parse().ok()?;
    Some((comm, ppid))
}

/// The outermost package-manager process of the nearest run among this
/// process's ancestors (apt, apt-get, aptitude, dpkg, unattended-upgrade): its
/// pid and command line. apt runs its hooks from a forked child of the same
/// name, which is gone by the time dpkg runs, so the walk goes on up through
/// parents of the same name.
pub fn package_manager() -> Option<(u32, String)> {
    const NAMES: [&str; 6] = ["apt", "apt-get", "aptitude", "dpkg", "unattended-upgr", "packagekitd"];
    let mut pid = std::os::unix::process::parent_id();
    for _ in 0..32 {
        if pid <= 1 {
            return None;
        }
        let (comm, ppid) = proc_stat(pid)?;
        if NAMES.contains(&comm.as_str()) {
            let mut parent = ppid;
            while parent > 1 {
                match proc_stat(parent) {
                    Some((name, up)) if name == comm => {
                        pid = parent;
                        parent = up;
                    }
                    _ => break,
                }
            }
            let raw = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")).ok()?;
            let args: Vec<String> =
                raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            return Some((pid, args.join(" ")));
        }
        pid = ppid;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_drops_nested_paths() {
        let v = minimal(vec!["/etc/a".into(), "/etc/a/b".into(), "/etc/ab".into(), "/etc/c".into()]);
        assert_eq!(v, vec!["/etc/a", "/etc/ab", "/etc/c"]);
    }
}
