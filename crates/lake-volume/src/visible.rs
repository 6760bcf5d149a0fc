//! What a caller is shown of the catalog and the history (docs/security.md):
//! the control requests `search`, `view-*`, `log` and `tree`, and the filtered parts
//! of `status`.
//!
//! The working tree decides for the catalog (the kernel's answer, through
//! [`as_caller`]): a file is shown when the caller may read it now, through
//! directories it may search, and, for names the caller did not give, list. Past
//! trees decide for the history (the same rules over the recorded metadata,
//! [`Caller::may`]), as `.lake/at/<when>/` does: a version is shown when the caller
//! could have read it then. What is not shown is answered as if it did not exist.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::committer::Shared;
use super::file_log;
use lake_catalog::{fts, views};
use lake_fuse::caller::{as_caller, Caller, R, X};
use lakefs::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::names;
use lakefs::tree::{Meta, Node};

/// `{"op":"search","words":"..","limit":N,"under":"rel"}`: the best `limit` hits the
/// caller may read, under `under`, with snippets cut from the file as it reads now;
/// paths in their JSON form (`names::to_json`).
pub(crate) fn search(sh: &Shared, caller: &Caller, words: &str, limit: usize, under: &[u8]) -> Result<Value> {
    let v = &sh.vol;
    // Before the rows: a pass that lands in between only makes the check stricter.
    let scan = indexed_scan(sh)?;
    let found = fts::matches(v.lake(), v.name(), words, None)?;
    let terms = fts::query_terms(words);
    let hits = as_caller(caller, v.work_dir(), under, |look| {
        look.indexed_at(scan);
        let mut hits = Vec::new();
        for (path, content, rank) in found {
            if hits.len() >= limit {
                break;
            }
            // Catalog rows hold the escaped form; the working tree has the bytes.
            let rel = names::from_escaped(&path);
            let body = match look.read(&rel, fts::MAX_BODY as usize) {
                Some(b) => b,
                // Root sees every hit, a file gone since the commit with its snippet as committed.
                None if caller.is_root() && look.visible(&rel) => {
                    let mut b = Vec::new();
                    v.lake().write_content(&content, &mut b)?;
                    b
                }
                None => continue,
            };
            let snippet = fts::snippet(&String::from_utf8_lossy(&body), &terms, fts::SNIPPET_WORDS);
            hits.push(json!({ "path": names::to_json(&rel), "snippet": snippet, "rank": rank }));
        }
        Ok::<_, Error>(hits)
    })
    .transpose()?
    .unwrap_or_default();
    Ok(json!({ "hits": hits }))
}

/// The entries of view `name` that `caller` is shown (None: no such view).
pub(crate) fn view_entries(sh: &Shared, caller: &Caller, name: &str) -> Result<Option<Vec<lake_fuse::hooks::ViewEntry>>> {
    let v = &sh.vol;
    let Some(info) = views::get(v.lake(), v.name(), name)? else {
        return Ok(None);
    };
    let entries = views::entry_names(matching(sh, caller, &info.query)?);
    Ok(Some(entries.into_iter().map(|e| lake_fuse::hooks::ViewEntry { name: e.name, path: e.path }).collect()))
}

/// The files matching view query `query` that `caller` is shown (escaped, as the catalog has them).
fn matching(sh: &Shared, caller: &Caller, query: &str) -> Result<Vec<String>> {
    let scan = indexed_scan(sh)?;
    let found = views::matches(sh.vol.lake(), sh.vol.name(), query)?;
    Ok(shown(sh, caller, found, |p: &String| Cow::Owned(names::from_escaped(p)), Some(scan)))
}

/// When the working tree was scanned for the commit whose tree the catalog holds
/// (ns since the epoch): a file changed after it may not be what its row says.
/// Without such a commit among the newest ones, nothing is taken as unchanged.
fn indexed_scan(sh: &Shared) -> Result<i128> {
    let lake = sh.vol.lake();
    let Some(tree) = lake_catalog::indexed_tree(lake, sh.vol.name())? else {
        return Ok(i128::MIN);
    };
    let mut cur = sh.vol.head()?;
    for _ in 0..INDEXED_SEARCH {
        let Some(id) = cur else { break };
        let c = lake.read_commit(&id)?;
        if c.tree == tree {
            return Ok(super::scanned_ns(&c).unwrap_or(i128::from(c.time) * 1_000_000_000));
        }
        cur = c.parents.first().copied();
    }
    Ok(i128::MIN)
}

/// How far back from the head the catalog's commit is looked for (it follows the
/// head within seconds; see the committer).
const INDEXED_SEARCH: usize = 256;

/// Those of `items` that `caller` is shown, in order: `path` gives each one's file
/// (mount-relative bytes); with `indexed`, the scan time of the catalog they come
/// from (see `Look::indexed_at`).
pub(crate) fn shown<T: Send>(
    sh: &Shared,
    caller: &Caller,
    items: Vec<T>,
    path: impl Fn(&T) -> Cow<'_, [u8]> + Send,
    indexed: Option<i128>,
) -> Vec<T> {
    as_caller(caller, sh.vol.work_dir(), b"", move |look| {
        if let Some(scan) = indexed {
            look.indexed_at(scan);
        }
        items.into_iter().filter(|i| look.visible(&path(i))).collect()
    })
    .unwrap_or_default()
}

/// The `view-*` requests. Views are the volume's: every user sees their names and
/// queries; the entries are the caller's. A view is replaced or deleted only by who
/// made it, or root.
pub(crate) fn view_op(sh: &Shared, caller: &Caller, op: &str, req: &Value) -> Result<Value> {
    let (lake, volume) = (sh.vol.lake(), sh.vol.name());
    let name = || req["name"].as_str().ok_or_else(|| Error::Invalid(format!("{op} needs \"name\"")));
    let may_change = |name: &str| -> Result<()> {
        match views::owner(lake, volume, name)? {
            Some(owner) if owner != caller.uid() && !caller.is_root() => {
                Err(Error::Invalid(format!("view '{name}' of volume '{volume}' belongs to uid {owner}: only they or root may change it")))
            }
            _ => Ok(()),
        }
    };
    match op {
        "view-list" => Ok(json!({ "views": views::list(lake, volume)? })),
        "view-show" => {
            let name = name()?;
            let (Some(info), Some(entries)) = (views::get(lake, volume, name)?, view_entries(sh, caller, name)?) else {
                return Ok(json!({ "view": Value::Null }));
            };
            let entries: Vec<Value> =
                entries.iter().map(|e| json!({ "name": e.name, "path": names::to_json(&names::from_escaped(&e.path)) })).collect();
            Ok(json!({ "view": info, "entries": entries }))
        }
        "view-create" => {
            let name = name()?;
            let query = req["query"].as_str().ok_or_else(|| Error::Invalid("view-create needs \"query\"".into()))?;
            let replace = req["replace"].as_bool().unwrap_or(false);
            if replace {
                may_change(name)?;
            }
            views::create(lake, volume, name, query, replace, caller.uid())?;
            let n = matching(sh, caller, query)?.len();
            Ok(json!({ "matches": n }))
        }
        "view-delete" => {
            let name = name()?;
            may_change(name)?;
            Ok(json!({ "deleted": views::delete(lake, volume, name)? }))
        }
        other => Err(Error::Invalid(format!("unknown control op '{other}'"))),
    }
}

/// Whether `caller` could read `rel` in the tree of commit `c`: every directory on the
/// way searchable, the entry itself readable (by recorded metadata).
fn readable_then(lake: &Lake, caller: &Caller, root_tree: &ObjectId, root: &Meta, rel: &[u8]) -> Result<Option<Node>> {
    if !caller.may(root, X) {
        return Ok(None);
    }
    let comps: Vec<&[u8]> = names::components(rel).collect();
    let mut tree = *root_tree;
    for (i, c) in comps.iter().enumerate() {
        let t = lake.read_tree(&tree)?;
        let Some(e) = t.get(c) else {
            return Ok(None);
        };
        let node = resolve(lake, root_tree, e.node.clone())?;
        if i + 1 == comps.len() {
            return Ok(may_read(caller, &node).then_some(node));
        }
        match &node {
            Node::Dir { meta, tree: sub } if caller.may(meta, X) => tree = *sub,
            _ => return Ok(None),
        }
    }
    // The root itself.
    Ok(caller.may(root, R).then_some(Node::Dir { meta: root.clone(), tree: *root_tree }))
}

/// A file or directory readable (a directory also searchable); a symlink is.
fn may_read(caller: &Caller, node: &Node) -> bool {
    match node {
        Node::Dir { meta, .. } => caller.may(meta, R | X),
        Node::Symlink { .. } => true,
        n => n.meta().is_some_and(|m| caller.may(m, R)),
    }
}

/// A hard link's node is its first name's (the same inode: its metadata, its content).
fn resolve(lake: &Lake, root_tree: &ObjectId, node: Node) -> Result<Node> {
    match node {
        Node::Hardlink { target } => lake
            .lookup(root_tree, &target)?
            .ok_or_else(|| Error::Invalid(format!("hard link target {} missing from the tree", names::escape(&target)))),
        n => Ok(n),
    }
}

/// `{"op":"log","path":"rel","max":N}`: the versions of `rel` the caller could read;
/// a deletion only after a version it could read.
pub(crate) fn log(sh: &Shared, caller: &Caller, rel: &[u8], max: usize) -> Result<Value> {
    let lake = sh.vol.lake();
    let all = file_log::file_log(lake, sh.vol.reference(), rel)?;
    let mut seen: Vec<bool> = Vec::with_capacity(all.len());
    for v in &all {
        seen.push(
            v.node.is_some() && {
                let c = lake.read_commit(&v.commit)?;
                readable_then(lake, caller, &c.tree, &c.root, rel)?.is_some()
            },
        );
    }
    let versions: Vec<&file_log::FileVersion> = all
        .iter()
        .enumerate()
        .filter(|(i, v)| seen[*i] || (v.node.is_none() && seen.get(i + 1) == Some(&true)))
        .map(|(_, v)| v)
        .take(max)
        .collect();
    Ok(json!({ "versions": versions }))
}

/// `{"op":"tree","rev":"WHEN","path":"rel"}`: what a restore of `rel` to `rev` needs,
/// as far as the caller could read it then: `node` (null when it did not exist or
/// could not be read) with, for a directory it could list, its `entries`; an entry it
/// could not read is `{"name","kind":"hidden"}` (a restore leaves it alone). Names
/// and symlink targets are in their JSON form (`names::to_json`); a hard link is
/// described as the file it names.
pub(crate) fn tree(sh: &Shared, caller: &Caller, rev: &str, rel: &[u8]) -> Result<Value> {
    let lake = sh.vol.lake();
    let id = lakefs::rev::resolve(lake, rev, sh.vol.reference())?;
    let c = lake.read_commit(&id)?;
    let node = match readable_then(lake, caller, &c.tree, &c.root, rel)? {
        Some(n) => describe(lake, caller, &c.tree, &n)?,
        None => Value::Null,
    };
    Ok(json!({ "commit": id, "time": c.time, "trigger": c.trigger, "node": node }))
}

fn describe(lake: &Lake, caller: &Caller, root_tree: &ObjectId, node: &Node) -> Result<Value> {
    let meta = |m: &Meta| json!({ "mode": m.mode, "uid": m.uid, "gid": m.gid });
    Ok(match node {
        Node::File { meta: m, size, content } => {
            let chunked = matches!(content, lakefs::tree::Content::Chunked(_));
            json!({ "kind": "file", "meta": meta(m), "size": size, "content": content.id(), "chunked": chunked })
        }
        Node::Symlink { meta: m, target } => {
            json!({ "kind": "symlink", "meta": meta(m), "target": names::to_json(target) })
        }
        Node::Dir { meta: m, tree } => {
            let mut entries = Vec::new();
            for e in lake.read_tree(tree)?.entries {
                let child = resolve(lake, root_tree, e.node)?;
                let mut d = if may_read(caller, &child) { describe(lake, caller, root_tree, &child)? } else { json!({ "kind": "hidden" }) };
                d["name"] = names::to_json(&e.name);
                entries.push(d);
            }
            json!({ "kind": "dir", "meta": meta(m), "entries": entries })
        }
        // Devices, fifos and sockets are not restored through a user's mount.
        _ => json!({ "kind": "other" }),
    })
}
