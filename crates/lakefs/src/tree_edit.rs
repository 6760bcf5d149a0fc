//! Splicing nodes into a tree: the new root tree that is `base` with some
//! paths replaced by given nodes or removed. Only the trees on the way from the
//! root to an edited path are read and rewritten, so the cost follows the edit,
//! not the tree. Rollback builds its result this way (an old tree with today's
//! local /etc edits spliced in, or today's tree with a few old paths restored).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::tree::{Entry, Meta, Node};
use crate::writer::WriteSession;

/// What to put at a path: a node, or nothing (remove it).
pub type Edit = Option<Node>;

/// Splits "/a/b/c" into non-empty components; rejects "." and "..".
pub fn components(path: &str) -> Result<Vec<Vec<u8>>> {
    let comps: Vec<Vec<u8>> = path.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect();
    if comps.iter().any(|c| c == b"." || c == b"..") {
        return Err(Error::Invalid(format!("path '{path}' contains '.' or '..'")));
    }
    Ok(comps)
}

#[derive(Default)]
struct Level {
    /// Edits that end at this level, by name.
    here: BTreeMap<Vec<u8>, Edit>,
    /// Edits further down, by the child directory they pass through.
    below: BTreeMap<Vec<u8>, Level>,
}

impl Level {
    fn insert(&mut self, comps: &[Vec<u8>], edit: Edit) {
        match comps {
            [] => {}
            [last] => {
                self.below.remove(last);
                self.here.insert(last.clone(), edit);
            }
            [first, rest @ ..] => {
                if self.here.contains_key(first) {
                    // An edit of the whole ancestor already decides this path.
                    return;
                }
                self.below.entry(first.clone()).or_default().insert(rest, edit);
            }
        }
    }
}

/// Applies `edits` (path, node-or-removal) to root tree `base` and returns the
/// new root tree id. Where an edit passes through a directory that `base` lacks,
/// the directory is created with the metadata `dir_meta(path)` gives (e.g. from
/// the tree the restored node comes from); a path through a non-directory is an
/// error. An edit of a directory wins over edits below it.
pub fn splice(
    w: &WriteSession,
    base: &ObjectId,
    edits: &[(String, Edit)],
    dir_meta: &dyn Fn(&str) -> Result<Option<Meta>>,
) -> Result<ObjectId> {
    let mut top = Level::default();
    // Shorter paths first, so a directory edit is known before edits below it.
    let mut sorted: Vec<(Vec<Vec<u8>>, &Edit)> = edits.iter().map(|(p, e)| Ok((components(p)?, e))).collect::<Result<_>>()?;
    sorted.sort_by_key(|(c, _)| c.len());
    for (comps, edit) in sorted {
        if comps.is_empty() {
            return Err(Error::Invalid("cannot splice the root directory itself".into()));
        }
        top.insert(&comps, edit.clone());
    }
    apply(w, Some(base), &top, "", dir_meta)
}

fn apply(
    w: &WriteSession,
    tree: Option<&ObjectId>,
    level: &Level,
    path: &str,
    dir_meta: &dyn Fn(&str) -> Result<Option<Meta>>,
) -> Result<ObjectId> {
    let lake = w.lake();
    let mut entries: BTreeMap<Vec<u8>, Node> = match tree {
        Some(t) => lake.read_tree(t)?.entries.into_iter().map(|e| (e.name, e.node)).collect(),
        None => BTreeMap::new(),
    };
    for (name, edit) in &level.here {
        match edit {
            Some(node) => {
                entries.insert(name.clone(), node.clone());
            }
            None => {
                entries.remove(name);
            }
        }
    }
    for (name, sub) in &level.below {
        let child_path = format!("{path}/{}", String::from_utf8_lossy(name));
        let (meta, subtree) = match entries.get(name) {
            Some(Node::Dir { meta, tree }) => (meta.clone(), Some(*tree)),
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "cannot restore below {child_path}: it is a {} here, not a directory",
                    other.kind_name()
                )))
            }
            None => {
                let meta = dir_meta(&child_path)?
                    .ok_or_else(|| Error::Invalid(format!("cannot restore below {child_path}: no such directory in either tree")))?;
                (meta, None)
            }
        };
        let tree = apply(w, subtree.as_ref(), sub, &child_path, dir_meta)?;
        entries.insert(name.clone(), Node::Dir { meta, tree });
    }
    let mut t = crate::tree::Tree { entries: entries.into_iter().map(|(name, node)| Entry { name, node }).collect() };
    t.sort();
    w.put_tree(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::{CreateOptions, Lake};

    fn file(w: &WriteSession, text: &[u8]) -> Node {
        let id = w.put(crate::pack::Kind::Data, text).expect("put");
        Node::File { meta: Meta { mode: 0o644, ..Default::default() }, size: text.len() as u64, content: crate::tree::Content::Whole(id) }
    }

    #[test]
    fn splice_replaces_removes_and_creates_dirs() {
        let d = tempfile::tempdir().expect("tempdir");
        let lake = Lake::create(&d.path().join("lake"), &CreateOptions::default()).expect("lake");
        // Each splice in its own session: a splice reads committed trees only.
        let session = || WriteSession::begin(&lake).expect("session");
        let dm = |_: &str| Ok(Some(Meta { mode: 0o755, ..Default::default() }));
        let w = session();
        let empty = w.put_tree(&crate::tree::Tree::default()).expect("tree");
        let (a, b) = (file(&w, b"a"), file(&w, b"b"));
        w.finish(&[], &[]).expect("finish");
        let run = |base: &ObjectId, edits: &[(String, Edit)], dm: &dyn Fn(&str) -> Result<Option<Meta>>| {
            let w = session();
            let r = splice(&w, base, edits, dm);
            w.finish(&[], &[]).expect("finish");
            r
        };
        let t1 = run(&empty, &[("/etc/a".into(), Some(a.clone())), ("/etc/sub/b".into(), Some(b.clone()))], &dm).expect("splice");
        assert_eq!(lake.lookup(&t1, "/etc/a").expect("lookup"), Some(a.clone()));
        assert_eq!(lake.lookup(&t1, "/etc/sub/b").expect("lookup"), Some(b.clone()));
        // Remove one, replace the other.
        let t2 = run(&t1, &[("/etc/a".into(), None), ("/etc/sub/b".into(), Some(a.clone()))], &dm).expect("splice");
        assert_eq!(lake.lookup(&t2, "/etc/a").expect("lookup"), None);
        assert_eq!(lake.lookup(&t2, "/etc/sub/b").expect("lookup"), Some(a.clone()));
        // A directory edit wins over edits below it, whatever their order.
        let t3 = run(&t2, &[("/etc/sub/x".into(), Some(b.clone())), ("/etc/sub".into(), None)], &dm).expect("splice");
        assert_eq!(lake.lookup(&t3, "/etc/sub").expect("lookup"), None);
        // Going through a file is an error, and so is a missing directory without metadata.
        assert!(run(&t1, &[("/etc/a/x".into(), Some(b.clone()))], &dm).is_err());
        let none = |_: &str| Ok(None);
        assert!(run(&empty, &[("/new/x".into(), Some(b.clone()))], &none).is_err());
        assert!(run(&empty, &[("/../x".into(), Some(b))], &dm).is_err());
    }
}
