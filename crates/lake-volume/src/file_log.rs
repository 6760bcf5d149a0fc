//! The history of one path of a volume: the commits where its entry changed.
//! A hard link is followed to the file it names in the same tree, so every
//! name of a linked file shows the versions of its content.

use lakefs::error::Result;
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::Node;

/// One version of a path, newest first in [`file_log`]'s answer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileVersion {
    pub commit: ObjectId,
    pub time: i64,
    pub time_nsec: u32,
    pub trigger: String,
    pub message: String,
    /// file, dir, symlink, ...; "deleted" when the path stopped existing here.
    pub kind: String,
    /// Size of a file version.
    pub size: Option<u64>,
    /// Only metadata (mode, owner, times, xattrs) differs from the version before.
    pub metadata_only: bool,
    #[serde(skip)]
    pub node: Option<Node>,
}

/// Follows the path down from a root tree. `prev` holds the trees the last
/// lookup passed through and its answer: where the walk meets one of those trees
/// again, the answer is the same, so a long history costs one tree read per
/// commit that changed the path's directory, not a walk per commit.
struct Walker<'a> {
    comps: Vec<&'a [u8]>,
    prev: Option<(Vec<ObjectId>, Option<Node>)>,
}

impl Walker<'_> {
    /// The path's node in `root`, a hard link resolved to its file (looked up
    /// each time: the file it names may change while the link's trees do not).
    fn lookup(&mut self, lake: &Lake, root: &ObjectId) -> Result<Option<Node>> {
        match self.entry(lake, root)? {
            Some(Node::Hardlink { target }) => lake.lookup(root, &target),
            n => Ok(n),
        }
    }

    fn entry(&mut self, lake: &Lake, root: &ObjectId) -> Result<Option<Node>> {
        if self.comps.is_empty() {
            return Ok(Some(Node::Dir { meta: Default::default(), tree: *root }));
        }
        let mut trees = Vec::with_capacity(self.comps.len());
        let mut tree = *root;
        let mut found = None;
        for (i, c) in self.comps.iter().enumerate() {
            if let Some((ptrees, pnode)) = &self.prev {
                if ptrees.get(i) == Some(&tree) {
                    return Ok(pnode.clone());
                }
            }
            trees.push(tree);
            let t = lake.read_tree(&tree)?;
            let Some(e) = t.get(c) else { break };
            if i + 1 == self.comps.len() {
                found = Some(e.node.clone());
                break;
            }
            match &e.node {
                Node::Dir { tree: sub, .. } => tree = *sub,
                _ => break,
            }
        }
        self.prev = Some((trees, found.clone()));
        Ok(found)
    }
}

/// Versions of mount-relative `rel` (bytes) on `reference` (first-parent
/// history), newest first: every commit whose entry differs from the one before
/// it, including deletions. At most `max` versions.
pub fn file_log_limit(lake: &Lake, reference: &str, rel: &[u8], max: usize) -> Result<Vec<FileVersion>> {
    let mut walker = Walker { comps: lakefs::names::components(rel).collect(), prev: None };
    let Some(head) = lake.get_ref(reference)? else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let mut cur = Some(head);
    let mut newer: Option<(ObjectId, lakefs::commit::Commit, Option<Node>)> = None;
    while let Some(id) = cur {
        let c = lake.read_commit(&id)?;
        let node = walker.lookup(lake, &c.tree)?;
        if let Some((nid, nc, nnode)) = newer.take() {
            if nnode != node {
                out.push(version(nid, &nc, nnode.as_ref(), node.as_ref()));
                if out.len() >= max {
                    return Ok(out);
                }
            }
        }
        cur = c.parents.first().copied();
        newer = Some((id, c, node));
    }
    if let Some((nid, nc, Some(n))) = newer {
        out.push(version(nid, &nc, Some(&n), None));
    }
    Ok(out)
}

/// All versions of `rel` (see [`file_log_limit`]).
pub fn file_log(lake: &Lake, reference: &str, rel: &[u8]) -> Result<Vec<FileVersion>> {
    file_log_limit(lake, reference, rel, usize::MAX)
}

fn version(id: ObjectId, c: &lakefs::commit::Commit, node: Option<&Node>, older: Option<&Node>) -> FileVersion {
    let size = match node {
        Some(Node::File { size, .. }) => Some(*size),
        _ => None,
    };
    FileVersion {
        commit: id,
        time: c.time,
        time_nsec: c.time_nsec,
        trigger: c.trigger.clone(),
        message: c.message.clone(),
        kind: node.map_or("deleted", |n| n.kind_name()).to_owned(),
        size,
        metadata_only: matches!((node, older), (Some(a), Some(b)) if a.same_content(b)),
        node: node.cloned(),
    }
}
