//! Whether every commit's tree could be checked out safely (what `verify` and
//! `fsck.lakefs` report): no directories nested deeper than
//! [`crate::checkout::MAX_DEPTH`], and hard links whose targets are plain paths
//! to linkable entries of the same tree. Entry names are checked by the tree
//! decoder itself. Subtrees are summarised once (depth, whether they hold hard
//! links), so only the rare roots with hard links are walked whole.

use std::collections::HashMap;

use crate::checkout::MAX_DEPTH;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::tree::Node;

#[derive(Clone, Copy)]
struct Summary {
    depth: usize,
    links: bool,
}

pub struct TreeChecker<'a> {
    lake: &'a Lake,
    memo: HashMap<ObjectId, Summary>,
    roots: HashMap<ObjectId, std::result::Result<(), String>>,
}

impl<'a> TreeChecker<'a> {
    pub fn new(lake: &'a Lake) -> Self {
        TreeChecker { lake, memo: HashMap::new(), roots: HashMap::new() }
    }

    /// Ok, or why root tree `root` would be refused by a checkout (an unreadable
    /// tree is an error of its own, reported by verify's object checks).
    pub fn check_root(&mut self, root: &ObjectId) -> Result<std::result::Result<(), String>> {
        if let Some(r) = self.roots.get(root) {
            return Ok(r.clone());
        }
        let r = match self.summary(root, 0) {
            Err(Error::UnsafeTree { path, why }) => Err(format!("{path}: {why}")),
            Err(e) => return Err(e),
            Ok(s) if s.links => match crate::checkout::validate(self.lake, root) {
                Err(Error::UnsafeTree { path, why }) => Err(format!("{path}: {why}")),
                Err(e) => return Err(e),
                Ok(()) => Ok(()),
            },
            Ok(_) => Ok(()),
        };
        self.roots.insert(*root, r.clone());
        Ok(r)
    }

    fn summary(&mut self, tree: &ObjectId, at: usize) -> Result<Summary> {
        if let Some(s) = self.memo.get(tree) {
            if at + s.depth > MAX_DEPTH {
                return Err(Error::UnsafeTree {
                    path: format!("(a directory {at} levels down)"),
                    why: format!("directories nested deeper than {MAX_DEPTH} levels"),
                });
            }
            return Ok(*s);
        }
        if at >= MAX_DEPTH {
            return Err(Error::UnsafeTree {
                path: format!("(a directory {at} levels down)"),
                why: format!("directories nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let t = self.lake.read_tree(tree)?;
        let mut s = Summary { depth: 1, links: false };
        for e in &t.entries {
            match &e.node {
                Node::Dir { tree: sub, .. } => {
                    let c = self.summary(sub, at + 1)?;
                    s.depth = s.depth.max(c.depth + 1);
                    s.links |= c.links;
                }
                Node::Hardlink { .. } => s.links = true,
                _ => {}
            }
        }
        self.memo.insert(*tree, s);
        Ok(s)
    }
}
