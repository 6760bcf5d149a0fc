//! Verification: re-hash every object (packed and loose), check that everything a
//! commit reaches is present, and name the paths each damaged object affects.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use rayon::prelude::*;

use crate::error::Result;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::progress::Progress;
use crate::tree::{Content, Node};

/// Paths listed per damaged object before the report says "and N more".
const MAX_PATHS: usize = 50;

#[derive(Debug, serde::Serialize)]
pub struct Problem {
    /// `b3:` id of the damaged or missing object (or the pack file name).
    pub object: String,
    pub what: String,
    pub why: String,
    /// `<ref or commit>:/path` for every path that uses it (capped).
    pub paths: Vec<String>,
    pub more_paths: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub packs: usize,
    pub objects: usize,
    pub loose: usize,
    pub commits: usize,
    pub bytes: u64,
    pub problems: Vec<Problem>,
}

/// The lines both `lakectl verify` and `fsck.lakefs` print for a problem.
impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DAMAGED {} {}: {}", self.what, self.object, self.why)?;
        for path in &self.paths {
            write!(f, "\n    used by {path}")?;
        }
        if self.more_paths > 0 {
            write!(f, "\n    ... and {} more paths", self.more_paths)?;
        }
        if self.paths.is_empty() && self.what != "pack" {
            write!(f, "\n    (no commit uses it)")?;
        }
        Ok(())
    }
}

impl Report {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<(ObjectId, std::fs::Metadata)> {
    let mut f = std::fs::File::open(path)?;
    let md = f.metadata()?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h)?;
    Ok((ObjectId(*h.finalize().as_bytes()), md))
}

pub fn verify(lake: &Lake, progress: &dyn Progress) -> Result<Report> {
    let mut report = Report::default();
    let mut bad: HashMap<ObjectId, (String, String)> = HashMap::new();
    let mut problems = Vec::new();
    let (packs, locations, loose, integrity) = {
        let db = lake.db();
        let integrity: String = db.conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| db.err(e))?;
        (db.pack_names()?, db.all_locations()?, db.all_loose()?, integrity)
    };
    if integrity != "ok" {
        problems.push(Problem {
            object: crate::meta::FILE_NAME.into(),
            what: "metadata database".into(),
            why: integrity,
            paths: vec![],
            more_paths: 0,
        });
    }
    report.packs = packs.len();
    for (name, size) in &packs {
        let path = lake.pack_path(name);
        let mut magic = [0u8; 8];
        let r = std::fs::File::open(&path).and_then(|mut f| {
            let len = f.metadata()?.len();
            f.read_exact(&mut magic)?;
            Ok(len)
        });
        let why = match r {
            Err(e) => Some(format!("cannot read: {e}")),
            Ok(len) if len != *size => Some(format!("size {len} differs from the {size} bytes indexed (truncated or appended to)")),
            Ok(_) if &magic != crate::pack::MAGIC => Some("bad pack header".into()),
            Ok(_) => None,
        };
        if let Some(why) = why {
            problems.push(Problem { object: path.display().to_string(), what: "pack".into(), why, paths: vec![], more_paths: 0 });
        }
    }
    progress.phase("checking packed objects", locations.len() as u64, locations.iter().map(|l| u64::from(l.1.stored_len)).sum());
    let results: Vec<(ObjectId, &'static str, std::result::Result<u64, String>)> = locations
        .par_iter()
        .map(|(id, loc)| {
            let r = lake.read_at(id, loc).map(|b| b.len() as u64).map_err(|e| e.to_string());
            progress.advance(1, u64::from(loc.stored_len));
            (*id, loc.kind.name(), r)
        })
        .collect();
    report.objects = results.len();
    for (id, kind, r) in results {
        match r {
            Ok(n) => report.bytes += n,
            Err(why) => {
                bad.insert(id, (format!("packed {kind} object"), why));
            }
        }
    }
    progress.phase("checking loose objects", loose.len() as u64, loose.iter().map(|l| l.2).sum());
    let loose_bad: Vec<(ObjectId, String)> = loose
        .par_iter()
        .filter_map(|(key, content, size)| {
            let path = crate::loose::path(lake.root(), key);
            progress.advance(1, *size);
            let why = match hash_file(&path) {
                Err(e) => format!("{}: {e}", path.display()),
                Ok((h, _)) if h != *content => format!("{}: content does not match its id {content}", path.display()),
                Ok((_, md)) => {
                    let xattrs = crate::fsmeta::read_xattrs(&path).unwrap_or_default();
                    if crate::loose::key(content, &crate::fsmeta::meta_from(&md, xattrs)) == *key {
                        return None;
                    }
                    format!(
                        "{}: mode/owner/mtime/xattrs changed (nlink {}): a hard-linked checkout was modified in place",
                        path.display(),
                        md.nlink()
                    )
                }
            };
            Some((*key, why))
        })
        .collect();
    report.loose = loose.len();
    for (k, why) in loose_bad {
        bad.insert(k, ("loose object".into(), why));
    }

    progress.phase("walking history", 0, 0);
    let roots = crate::reach::roots(lake, true)?;
    let mut unreadable = HashMap::new();
    let reach = crate::reach::mark(lake, &roots, &mut unreadable)?;
    report.commits = reach.commits.len();
    for (id, why) in unreadable {
        bad.entry(id).or_insert(("object".into(), why));
    }
    progress.phase("checking trees", reach.commits.len() as u64, 0);
    let mut unsafe_trees: Vec<(ObjectId, String)> = Vec::new();
    {
        let mut checker = crate::tree_check::TreeChecker::new(lake);
        let mut commits: Vec<&ObjectId> = reach.commits.iter().collect();
        commits.sort();
        for cid in commits {
            progress.advance(1, 0);
            // Unreadable commits and trees are reported as damaged objects already.
            let Ok(c) = lake.read_commit(cid) else { continue };
            if let Ok(Err(why)) = checker.check_root(&c.tree) {
                unsafe_trees.push((*cid, why))
            }
        }
    }
    {
        let db = lake.db();
        for id in &reach.objects {
            if reach.whole.contains(id) {
                if !db.has_object(id)? && !db.loose_keys_of(id)?.iter().any(|k| crate::loose::path(lake.root(), k).exists()) {
                    bad.entry(*id).or_insert(("file content".into(), "missing: neither packed nor loose".into()));
                }
            } else if !db.has_object(id)? {
                bad.entry(*id).or_insert(("object".into(), "missing from the index".into()));
            }
        }
    }
    let paths = if bad.is_empty() { HashMap::new() } else { attribute(lake, &bad)? };
    let mut bad: Vec<_> = bad.into_iter().collect();
    bad.sort_by_key(|a| a.0);
    for (id, (what, why)) in bad {
        let mut p: Vec<String> = paths.get(&id).cloned().unwrap_or_default();
        p.sort();
        p.dedup();
        let more = p.len().saturating_sub(MAX_PATHS);
        p.truncate(MAX_PATHS);
        problems.push(Problem { object: id.to_string(), what, why, paths: p, more_paths: more });
    }
    for (cid, why) in unsafe_trees {
        problems.push(Problem {
            object: cid.to_string(),
            what: "unsafe tree".into(),
            why: format!("{why}; checkout refuses it"),
            paths: vec![cid.short()],
            more_paths: 0,
        });
    }
    report.problems = problems;
    progress.finish();
    Ok(report)
}

/// For every bad id, the `<label>:/path`s that use it, across all commits.
fn attribute(lake: &Lake, bad: &HashMap<ObjectId, (String, String)>) -> Result<HashMap<ObjectId, Vec<String>>> {
    let mut labels: HashMap<ObjectId, String> = HashMap::new();
    for id in lake.db().all_commit_ids()? {
        labels.insert(id, id.short());
    }
    for (name, id) in lake.refs()? {
        labels.insert(id, name);
    }
    let mut out: HashMap<ObjectId, Vec<String>> = HashMap::new();
    let mut lists: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
    let mut memo: HashMap<ObjectId, Vec<(String, ObjectId)>> = HashMap::new();
    let mut ids: Vec<_> = labels.into_iter().collect();
    ids.sort_by(|a, b| a.1.cmp(&b.1));
    for (cid, label) in ids {
        if bad.contains_key(&cid) {
            out.entry(cid).or_default().push(format!("{label} (the commit itself)"));
            continue;
        }
        let Ok(c) = lake.read_commit(&cid) else {
            continue;
        };
        for (path, id) in bad_paths(lake, &c.tree, bad, &mut lists, &mut memo) {
            out.entry(id).or_default().push(format!("{label}:{}", if path.is_empty() { "/" } else { &path }));
        }
    }
    Ok(out)
}

/// (path, bad id) pairs under a tree; memoised per tree id, so shared subtrees are walked once.
fn bad_paths(
    lake: &Lake,
    tree: &ObjectId,
    bad: &HashMap<ObjectId, (String, String)>,
    lists: &mut HashMap<ObjectId, Vec<ObjectId>>,
    memo: &mut HashMap<ObjectId, Vec<(String, ObjectId)>>,
) -> Vec<(String, ObjectId)> {
    if let Some(v) = memo.get(tree) {
        return v.clone();
    }
    let mut out = Vec::new();
    if bad.contains_key(tree) {
        out.push((String::new(), *tree));
    }
    if let Ok(t) = lake.read_tree(tree) {
        for e in t.entries {
            let name = format!("/{}", String::from_utf8_lossy(&e.name));
            match &e.node {
                Node::Dir { tree: sub, .. } => {
                    for (p, id) in bad_paths(lake, sub, bad, lists, memo) {
                        out.push((format!("{name}{p}"), id));
                    }
                }
                Node::File { content: Content::Whole(id), meta, .. } => {
                    if bad.contains_key(id) {
                        out.push((name.clone(), *id));
                    }
                    let key = crate::loose::key(id, meta);
                    if bad.contains_key(&key) {
                        out.push((name, key));
                    }
                }
                Node::File { content: Content::Chunked(list), .. } => {
                    let hits = lists.entry(*list).or_insert_with(|| {
                        let mut hits: Vec<ObjectId> = Vec::new();
                        if bad.contains_key(list) {
                            hits.push(*list);
                        }
                        if let Ok(l) = lake.read_chunklist(list) {
                            hits.extend(l.chunk_ids().filter(|c| bad.contains_key(c)));
                        }
                        hits
                    });
                    out.extend(hits.iter().map(|h| (name.clone(), *h)));
                }
                _ => {}
            }
        }
    }
    memo.insert(*tree, out.clone());
    out
}
