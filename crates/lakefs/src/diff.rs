//! Differences between two trees. Subtrees with equal ids are skipped without
//! being read, so a diff costs what changed, not the size of the trees.

use crate::error::Result;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::tree::{Entry, Node};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    /// Content (or kind) changed.
    Modified,
    /// Only mode, owner, times or xattrs changed.
    Metadata,
}

impl ChangeKind {
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
            ChangeKind::Metadata => 'm',
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Change {
    pub kind: ChangeKind,
    /// Path from the root, starting with '/'.
    pub path: String,
    /// Entry kind after the change (before it, for removals).
    pub entry: &'static str,
}

fn join(prefix: &str, name: &[u8]) -> String {
    format!("{prefix}/{}", String::from_utf8_lossy(name))
}

fn all(lake: &Lake, node: &Node, path: String, kind: ChangeKind, out: &mut Vec<Change>) -> Result<()> {
    out.push(Change { kind, path: path.clone(), entry: node.kind_name() });
    if let Node::Dir { tree, .. } = node {
        for e in lake.read_tree(tree)?.entries {
            all(lake, &e.node, join(&path, &e.name), kind, out)?;
        }
    }
    Ok(())
}

fn pair(lake: &Lake, a: &Node, b: &Node, path: String, out: &mut Vec<Change>) -> Result<()> {
    match (a, b) {
        (Node::Dir { meta: ma, tree: ta }, Node::Dir { meta: mb, tree: tb }) => {
            if ma != mb {
                out.push(Change { kind: ChangeKind::Metadata, path: path.clone(), entry: "dir" });
            }
            if ta != tb {
                trees(lake, Some(ta), Some(tb), &path, out)?;
            }
        }
        _ if a == b => {}
        _ if a.same_content(b) => out.push(Change { kind: ChangeKind::Metadata, path, entry: b.kind_name() }),
        (Node::Dir { .. }, _) | (_, Node::Dir { .. }) => {
            all(lake, a, path.clone(), ChangeKind::Removed, out)?;
            all(lake, b, path, ChangeKind::Added, out)?;
        }
        _ => out.push(Change { kind: ChangeKind::Modified, path, entry: b.kind_name() }),
    }
    Ok(())
}

/// Appends the changes from tree `a` to tree `b` (either may be absent) under `prefix`.
pub fn trees(lake: &Lake, a: Option<&ObjectId>, b: Option<&ObjectId>, prefix: &str, out: &mut Vec<Change>) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let load = |t: Option<&ObjectId>| -> Result<Vec<Entry>> {
        Ok(match t {
            Some(t) => lake.read_tree(t)?.entries,
            None => Vec::new(),
        })
    };
    let (ea, eb) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let ord = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                all(lake, &ea[i].node, join(prefix, &ea[i].name), ChangeKind::Removed, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                all(lake, &eb[j].node, join(prefix, &eb[j].name), ChangeKind::Added, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                pair(lake, &ea[i].node, &eb[j].node, join(prefix, &ea[i].name), out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

pub fn diff(lake: &Lake, a: &ObjectId, b: &ObjectId) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    trees(lake, Some(a), Some(b), "", &mut out)?;
    Ok(out)
}
