//! Rollback of the POSIX zone: a new commit whose tree is an older one.
//!
//! Rolling back never rewrites history: the result is a new commit on top of
//! the head (so rolling forward is the same operation with a newer target), and
//! it becomes a new generation. What the result holds:
//! - the whole target tree, except that files under /etc that the
//!   administrator changed after the target (commits whose origin is
//!   [`Origin::Local`](crate::posix::Origin)) keep their current state, unless
//!   `include_etc` is set; those paths are listed as `kept`;
//! - or, with `paths` / `globs`, the current tree with only the matching paths
//!   put back as they were at the target.
//!
//! [`plan`] writes the result's trees and computes the preview (files and
//! packages that change, /etc files kept); [`record`] makes the commit.

use crate::dpkg::PackageChange;
use crate::posix::{self, POSIX_REF};
use lakefs::commit::Commit;
use lakefs::diff::Change;
use lakefs::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::{Meta, Node};
use lakefs::tree_edit;
use lakefs::writer::{RefUpdate, WriteSession};

/// The prefix whose local edits survive a rollback.
pub const ETC: &str = "/etc";

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub target: Option<ObjectId>,
    /// Restore only these paths (files or whole directories), e.g. "/etc/fstab".
    pub paths: Vec<String>,
    /// Restore only the changed paths matching these globs, e.g. "/usr/share/doc/**".
    pub globs: Vec<String>,
    /// Roll /etc back too, local edits included.
    pub include_etc: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    pub head: ObjectId,
    pub target: ObjectId,
    /// Root tree and root metadata of the result.
    pub tree: ObjectId,
    #[serde(skip)]
    pub root: Meta,
    /// File-level changes from the head to the result.
    pub changes: Vec<Change>,
    pub packages: Vec<PackageChange>,
    /// /etc paths whose local edits are kept (empty with `include_etc`).
    pub kept: Vec<String>,
    /// True when the result equals the head: nothing to do.
    pub noop: bool,
}

/// Follows a hard-link entry to the file it names in `tree`, so a restored
/// path never points at a name the result may not have.
fn resolve_link(lake: &Lake, tree: &ObjectId, node: Option<Node>) -> Result<Option<Node>> {
    match node {
        Some(Node::Hardlink { target }) => {
            let p = String::from_utf8_lossy(&target).into_owned();
            Ok(Some(lake.lookup(tree, &p)?.ok_or_else(|| Error::Invalid(format!("hard link to /{p}, which the tree lacks")))?))
        }
        n => Ok(n),
    }
}

fn edits_from(lake: &Lake, tree: &ObjectId, paths: &[String]) -> Result<Vec<(String, tree_edit::Edit)>> {
    paths.iter().map(|p| Ok((p.clone(), resolve_link(lake, tree, lake.lookup(tree, p)?)?))).collect()
}

/// Directory metadata for directories a splice must create: from `tree`.
fn dir_meta_in<'a>(lake: &'a Lake, tree: &'a ObjectId) -> impl Fn(&str) -> Result<Option<Meta>> + 'a {
    move |p: &str| Ok(lake.lookup(tree, p)?.and_then(|n| if let Node::Dir { meta, .. } = n { Some(meta) } else { None }))
}

/// Plans a rollback of the POSIX ref's head to `req.target`. Writes the
/// result's trees (unreferenced until [`record`]; gc drops them if it never
/// comes) and computes the preview.
pub fn plan(lake: &Lake, req: &Request) -> Result<Plan> {
    let head = lake.get_ref(POSIX_REF)?.ok_or_else(|| Error::Invalid(format!("the lake has no '{POSIX_REF}' history to roll back")))?;
    let target = req.target.ok_or_else(|| Error::Invalid("no rollback target given".into()))?;
    let (hc, tc) = (lake.read_commit(&head)?, lake.read_commit(&target)?);
    let selective = !req.paths.is_empty() || !req.globs.is_empty();
    let (tree, root, kept) = if selective {
        let mut wanted: Vec<String> = req.paths.iter().map(|p| format!("/{}", p.trim_matches('/'))).collect();
        if !req.globs.is_empty() {
            let mut b = globset::GlobSetBuilder::new();
            for g in &req.globs {
                let glob = globset::GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| Error::Invalid(format!("bad --filter glob '{g}': {e}")))?;
                b.add(glob);
            }
            let set = b.build().map_err(|e| Error::Invalid(format!("bad --filter globs: {e}")))?;
            let changed = lakefs::diff::diff(lake, &hc.tree, &tc.tree)?;
            wanted.extend(changed.into_iter().map(|c| c.path).filter(|p| set.is_match(p) || set.is_match(p.trim_start_matches('/'))));
        }
        wanted.sort();
        wanted.dedup();
        let wanted = posix::minimal(wanted);
        if wanted.is_empty() {
            return Err(Error::Invalid("no path matches the given --file/--filter between the two commits".into()));
        }
        let edits = edits_from(lake, &tc.tree, &wanted)?;
        let w = WriteSession::begin(lake)?;
        let t = tree_edit::splice(&w, &hc.tree, &edits, &dir_meta_in(lake, &tc.tree))?;
        w.finish(&[], &[])?;
        (t, hc.root.clone(), Vec::new())
    } else if req.include_etc {
        (tc.tree, tc.root.clone(), Vec::new())
    } else {
        let kept = posix::local_edits(lake, head, target, ETC)?;
        // Only edits whose current state differs from the target's are kept.
        let mut differing = Vec::new();
        for p in kept {
            if lake.lookup(&hc.tree, &p)? != lake.lookup(&tc.tree, &p)? {
                differing.push(p);
            }
        }
        if differing.is_empty() {
            (tc.tree, tc.root.clone(), differing)
        } else {
            let edits = edits_from(lake, &hc.tree, &differing)?;
            let w = WriteSession::begin(lake)?;
            let t = tree_edit::splice(&w, &tc.tree, &edits, &dir_meta_in(lake, &hc.tree))?;
            w.finish(&[], &[])?;
            (t, tc.root.clone(), differing)
        }
    };
    let mut changes = Vec::new();
    if hc.root != root {
        changes.push(Change { kind: lakefs::diff::ChangeKind::Metadata, path: "/".into(), entry: "dir" });
    }
    changes.extend(lakefs::diff::diff(lake, &hc.tree, &tree)?);
    let packages = crate::dpkg::diff_trees(lake, &hc.tree, &tree)?;
    let noop = changes.is_empty();
    Ok(Plan { head, target, tree, root, changes, packages, kept, noop })
}

/// Records the planned result as a commit on the POSIX ref (parent: the head
/// the plan was made from; fails if the ref moved since).
pub fn record(lake: &Lake, plan: &Plan, message: &str) -> Result<ObjectId> {
    let (time, time_nsec) = lakefs::util::now();
    let commit = Commit {
        tree: plan.tree,
        root: plan.root.clone(),
        parents: vec![plan.head],
        scope: posix::SCOPE.into(),
        time,
        time_nsec,
        trigger: "rollback".into(),
        message: message.to_owned(),
        extra: vec![("phase".into(), "result".into()), ("target".into(), plan.target.to_string())],
    };
    let w = WriteSession::begin(lake)?;
    let id = w.put_commit(&commit)?;
    w.finish(
        &[(id, commit)],
        &[RefUpdate { name: POSIX_REF.into(), expected: Some(plan.head), new: id, reason: format!("rollback: {message}") }],
    )?;
    Ok(id)
}
