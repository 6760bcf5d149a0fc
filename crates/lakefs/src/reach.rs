//! Walking what refs reach: commits, trees, and the objects files use. Shared by
//! verify (to name the paths a bad object affects) and gc (to know what to keep).

use std::collections::{HashMap, HashSet};

use crate::error::Result;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::tree::{Content, Node};

/// Everything reachable from a set of commits.
#[derive(Default)]
pub struct Reachable {
    pub commits: HashSet<ObjectId>,
    pub trees: HashSet<ObjectId>,
    /// Packed objects: data, chunk lists, trees, commits.
    pub objects: HashSet<ObjectId>,
    /// Loose keys files would use if checked out by hard links.
    pub loose_keys: HashSet<ObjectId>,
    /// Whole-content ids (stored packed or loose).
    pub whole: HashSet<ObjectId>,
}

/// Roots: every ref and pin; with `all_commits`, every commit the index knows.
pub fn roots(lake: &Lake, all_commits: bool) -> Result<Vec<ObjectId>> {
    let db = lake.db();
    let mut r: Vec<ObjectId> = db.refs()?.into_iter().map(|x| x.1).collect();
    r.extend(db.pins()?);
    if all_commits {
        r.extend(db.all_commit_ids()?);
    }
    r.sort();
    r.dedup();
    Ok(r)
}

/// Marks everything reachable. Unreadable objects are reported through `bad`
/// (id and why) and not descended into, so one damaged tree does not stop the walk.
pub fn mark(lake: &Lake, roots: &[ObjectId], bad: &mut HashMap<ObjectId, String>) -> Result<Reachable> {
    let mut r = Reachable::default();
    let mut commits: Vec<ObjectId> = roots.to_vec();
    let mut trees: Vec<ObjectId> = Vec::new();
    while let Some(c) = commits.pop() {
        if !r.commits.insert(c) {
            continue;
        }
        r.objects.insert(c);
        match lake.read_commit(&c) {
            Ok(commit) => {
                commits.extend(commit.parents.iter().copied());
                trees.push(commit.tree);
            }
            Err(e) => {
                // A pinned id may name a tree rather than a commit.
                if lake.read_tree(&c).is_ok() {
                    r.commits.remove(&c);
                    trees.push(c);
                } else {
                    bad.entry(c).or_insert_with(|| e.to_string());
                }
            }
        }
    }
    while let Some(t) = trees.pop() {
        if !r.trees.insert(t) {
            continue;
        }
        r.objects.insert(t);
        let tree = match lake.read_tree(&t) {
            Ok(tree) => tree,
            Err(e) => {
                bad.entry(t).or_insert_with(|| e.to_string());
                continue;
            }
        };
        for e in tree.entries {
            match e.node {
                Node::Dir { tree, .. } => trees.push(tree),
                Node::File { content: Content::Whole(id), meta, .. } => {
                    r.whole.insert(id);
                    r.objects.insert(id);
                    r.loose_keys.insert(crate::loose::key(&id, &meta));
                }
                Node::File { content: Content::Chunked(list), .. } if r.objects.insert(list) => match lake.read_chunklist(&list) {
                    Ok(l) => r.objects.extend(l.chunk_ids()),
                    Err(e) => {
                        bad.entry(list).or_insert_with(|| e.to_string());
                    }
                },
                _ => {}
            }
        }
    }
    Ok(r)
}
