//! Three-way merge of one branch of a scope into the scope's current branch.
//!
//! The merge works on scope states (tree nodes): base = the nearest common
//! ancestor of the two tips, ours = the scope's working state, theirs = the
//! other tip. Per path: a side that did not change yields to the other; when
//! both changed, text files are merged line by line (`diffy`, conflict markers
//! in the file), binary files and kind clashes keep ours and put theirs beside
//! it as `NAME.merge-BRANCH`, and a change against a deletion keeps the change.
//! The result is written into the working copy like a switch; a clean merge is
//! committed with two parents at once, a conflicted one when its conflicts have
//! been committed (`branch::on_commit`).

use std::collections::{HashSet, VecDeque};

use crate::branch::{self, join_rel, Conflict, PendingMerge, WorkChange, Workdir};
use crate::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::pack::Kind;
use lakefs::tree::{Content, Entry, Meta, Node, Tree};
use lakefs::writer::WriteSession;

/// Text merges are attempted up to this size; larger files count as binary.
const TEXT_MAX: u64 = 16 << 20;

#[derive(Debug, serde::Serialize)]
pub struct MergeOutcome {
    pub scope: String,
    pub ours: String,
    pub theirs: String,
    pub base: Option<ObjectId>,
    /// Theirs is already part of ours: nothing to do.
    pub up_to_date: bool,
    pub changes: Vec<WorkChange>,
    pub conflicts: Vec<Conflict>,
    /// The two-parent merge commit on ours (clean merges only).
    pub commit: Option<ObjectId>,
    /// `VOLUME/main` afterwards (None on a dry run).
    pub head: Option<ObjectId>,
}

/// The nearest common ancestor of commits `a` and `b`: the first of `b`'s
/// ancestors (breadth first, `b` included) that is also an ancestor of `a`.
pub fn merge_base(lake: &Lake, a: &ObjectId, b: &ObjectId) -> Result<Option<ObjectId>> {
    let mut of_a = HashSet::new();
    let mut queue = VecDeque::from([*a]);
    while let Some(id) = queue.pop_front() {
        if of_a.insert(id) {
            queue.extend(lake.read_commit(&id)?.parents);
        }
    }
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([*b]);
    while let Some(id) = queue.pop_front() {
        if of_a.contains(&id) {
            return Ok(Some(id));
        }
        if seen.insert(id) {
            queue.extend(lake.read_commit(&id)?.parents);
        }
    }
    Ok(None)
}

/// Merges branch `name` into the current branch of its scope (`scope`, a path
/// in it, is needed for `main` when the volume has several scopes).
pub fn merge(lake: &Lake, volume: &str, name: &str, scope: Option<&str>, wd: &mut Workdir, dry_run: bool) -> Result<MergeOutcome> {
    let _lock = branch::lock_ops(lake, volume)?;
    let scope = scope.map(branch::normalise_scope).transpose()?;
    let theirs_b = branch::find(lake, volume, name, scope.as_deref())?;
    let scope = theirs_b.scope.clone();
    let ours = branch::current_branch(lake, volume, &scope)?;
    if ours == theirs_b.name {
        return Err(Error::Invalid(format!("'{name}' is the current branch of '{scope}'; switch to the branch to merge into first")));
    }
    if let Some(m) = branch::pending_merge(lake, volume, &scope)? {
        return Err(Error::MergeInProgress { scope, theirs: m.theirs, ours: m.ours });
    }
    let theirs_tip = theirs_b.tip.ok_or_else(|| Error::Invalid(format!("branch '{name}' has no commit")))?;
    let head = (wd.flush)()?;
    let ours_state = branch::scope_state(lake, &head, &scope)?;
    let ours_ref = branch::branch_ref(volume, &scope, &ours);
    if !dry_run {
        branch::save_working(lake, volume, &scope, &head, "merge", &format!("before merging '{name}'"))?;
    }
    let ours_tip = lake.get_ref(&ours_ref)?.ok_or_else(|| Error::Invalid(format!("branch '{ours}' has no commit")))?;
    let base = merge_base(lake, &ours_tip, &theirs_tip)?;
    let mut out = MergeOutcome {
        scope: scope.clone(),
        ours: ours.clone(),
        theirs: theirs_b.name.clone(),
        base,
        up_to_date: base == Some(theirs_tip),
        changes: Vec::new(),
        conflicts: Vec::new(),
        commit: None,
        head: None,
    };
    if out.up_to_date {
        return Ok(out);
    }
    let base_state = base.map(|b| branch::branch_state(lake, &b, &scope)).transpose()?.flatten();
    let theirs_state = branch::branch_state(lake, &theirs_tip, &scope)?;

    let w = WriteSession::begin(lake)?;
    let mut m = Merger { w: &w, ours: &ours, theirs: &theirs_b.name, conflicts: Vec::new() };
    let (result, beside) = m.node(base_state.as_ref(), ours_state.as_ref(), theirs_state.as_ref(), &scope)?;
    let mut found = std::mem::take(&mut m.conflicts);
    for c in &mut found {
        c.scope = scope.clone();
    }
    // The merged objects must be readable (indexed) before they are written out.
    w.finish(&[], &[])?;
    out.conflicts = found;

    if dry_run {
        branch::preview(lake, ours_state.as_ref(), result.as_ref(), &scope, &mut out.changes)?;
        for (rel, _) in &beside {
            out.changes.push(WorkChange { kind: 'A', path: rel.clone() });
        }
        return Ok(out);
    }
    branch::write_state(lake, wd.root, &scope, ours_state.as_ref(), result.as_ref(), &mut out.changes)?;
    for (rel, node) in &beside {
        let path = branch::abs(wd.root, rel);
        lakefs::checkout::materialize(lake, node, &path, wd.root)?;
        out.changes.push(WorkChange { kind: 'A', path: rel.clone() });
    }
    let pending = PendingMerge {
        scope: scope.clone(),
        ours: ours.clone(),
        theirs: theirs_b.name.clone(),
        ours_commit: ours_tip,
        theirs_commit: theirs_tip,
    };
    if out.conflicts.is_empty() {
        let head = (wd.flush)()?;
        out.commit = Some(branch::finish_merge(lake, volume, &pending, &head, "")?);
        out.head = Some(head);
    } else {
        // Recorded before the flush, so a commit that races with it already sees the merge.
        branch::record_merge(lake, volume, &pending, &out.conflicts)?;
        out.head = Some((wd.flush)()?);
    }
    Ok(out)
}

/// Gives up a conflicted merge: the scope's working copy goes back to the
/// current branch's tip as it was before the merge.
pub fn abort(lake: &Lake, volume: &str, scope: Option<&str>, wd: &mut Workdir) -> Result<branch::SwitchOutcome> {
    let _lock = branch::lock_ops(lake, volume)?;
    let scope = match scope {
        Some(p) => {
            let p = branch::normalise_scope(p)?;
            branch::scope_of(lake, volume, &p)?.ok_or_else(|| Error::NoBranchScope { path: p.clone() })?
        }
        None => {
            let merging: Vec<String> = branch::scopes(lake, volume)?
                .into_iter()
                .filter(|s| branch::pending_merge(lake, volume, s).map(|m| m.is_some()).unwrap_or(false))
                .collect();
            match merging.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::Invalid(format!("no merge is in progress in volume '{volume}'"))),
                _ => return Err(Error::Invalid(format!("several scopes are merging ({}); say which with --path", merging.join(", ")))),
            }
        }
    };
    let m = branch::pending_merge(lake, volume, &scope)?.ok_or_else(|| Error::Invalid(format!("no merge is in progress in '{scope}'")))?;
    let head = (wd.flush)()?;
    let cur = branch::scope_state(lake, &head, &scope)?;
    let want = branch::branch_state(lake, &m.ours_commit, &scope)?;
    let mut out = branch::SwitchOutcome {
        scope: scope.clone(),
        from: m.ours.clone(),
        to: m.ours.clone(),
        saved: None,
        changes: Vec::new(),
        head: None,
    };
    branch::write_state(lake, wd.root, &scope, cur.as_ref(), want.as_ref(), &mut out.changes)?;
    // Their copies written beside conflicted files go too.
    for c in branch::conflicts(lake, volume)?.into_iter().filter(|c| c.scope == scope) {
        if let Some(copy) = c.theirs_copy {
            let p = branch::abs(wd.root, &copy);
            if std::fs::symlink_metadata(&p).is_ok() {
                let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
                r.map_err(|e| Error::io(&p, e))?;
                out.changes.push(WorkChange { kind: 'D', path: copy });
            }
        }
    }
    branch::clear_merge(lake, volume, &scope)?;
    out.head = Some((wd.flush)()?);
    Ok(out)
}

struct Merger<'a, 's> {
    w: &'a WriteSession<'s>,
    ours: &'a str,
    theirs: &'a str,
    conflicts: Vec<Conflict>,
}

/// Result of merging one path: the node to keep (None: absent) and their
/// versions to write beside it, by mount-relative path.
type Merged = (Option<Node>, Vec<(String, Node)>);

fn merge_meta(base: Option<&Meta>, ours: &Meta, theirs: &Meta) -> Meta {
    match base {
        Some(b) if b == ours => theirs.clone(),
        _ => ours.clone(),
    }
}

fn is_text(b: &[u8]) -> bool {
    !b.contains(&0) && std::str::from_utf8(b).is_ok()
}

impl Merger<'_, '_> {
    fn lake(&self) -> &Lake {
        self.w.lake()
    }

    fn conflict(&mut self, path: &str, kind: &str, theirs_copy: Option<String>) {
        // The scope is filled in by the caller.
        self.conflicts.push(Conflict {
            path: path.to_owned(),
            scope: String::new(),
            kind: kind.to_owned(),
            theirs: self.theirs.to_owned(),
            theirs_copy,
        });
    }

    fn node(&mut self, base: Option<&Node>, ours: Option<&Node>, theirs: Option<&Node>, rel: &str) -> Result<Merged> {
        if ours == theirs || base == theirs {
            return Ok((ours.cloned(), Vec::new()));
        }
        if base == ours {
            return Ok((theirs.cloned(), Vec::new()));
        }
        match (ours, theirs) {
            (Some(Node::Dir { meta: om, tree: ot }), Some(Node::Dir { meta: tm, tree: tt })) => {
                let (bm, bt) = match base {
                    Some(Node::Dir { meta, tree }) => (Some(meta), Some(*tree)),
                    _ => (None, None),
                };
                let load = |t: Option<ObjectId>| -> Result<Tree> {
                    Ok(match t {
                        Some(t) => self.lake().read_tree(&t)?,
                        None => Tree::default(),
                    })
                };
                let (b, o, t) = (load(bt)?, load(Some(*ot))?, load(Some(*tt))?);
                let mut names: Vec<Vec<u8>> = b.entries.iter().chain(&o.entries).chain(&t.entries).map(|e| e.name.clone()).collect();
                names.sort();
                names.dedup();
                let mut entries = Vec::new();
                let mut beside = Vec::new();
                for n in names {
                    let child = join_rel(rel, &n);
                    let (node, extra) =
                        self.node(b.get(&n).map(|e| &e.node), o.get(&n).map(|e| &e.node), t.get(&n).map(|e| &e.node), &child)?;
                    if let Some(node) = node {
                        entries.push(Entry { name: n, node });
                    }
                    beside.extend(extra);
                }
                // Their copies go into the same directory when it is the one being built.
                let mut outside = Vec::new();
                for (p, node) in beside {
                    let (dir, name) = p.rsplit_once('/').unwrap_or(("", p.as_str()));
                    let name = lakefs::names::from_escaped(name);
                    if dir == rel && !entries.iter().any(|e| e.name == name) {
                        entries.push(Entry { name, node });
                    } else {
                        outside.push((p, node));
                    }
                }
                let mut tree = Tree { entries };
                tree.sort();
                let id = self.w.put_tree(&tree)?;
                Ok((Some(Node::Dir { meta: merge_meta(bm, om, tm), tree: id }), outside))
            }
            (Some(o @ Node::File { .. }), Some(t @ Node::File { .. })) => self.files(base, o, t, rel),
            (Some(o), None) => {
                self.conflict(rel, "deleted-by-them", None);
                Ok((Some(o.clone()), Vec::new()))
            }
            (None, Some(t)) => {
                self.conflict(rel, "deleted-by-us", None);
                Ok((Some(t.clone()), Vec::new()))
            }
            (Some(o), Some(t)) => {
                let copy = format!("{rel}.merge-{}", self.theirs);
                self.conflict(rel, if o.tag() == t.tag() { "both-changed" } else { "type" }, Some(copy.clone()));
                Ok((Some(o.clone()), vec![(copy, t.clone())]))
            }
            (None, None) => Ok((None, Vec::new())),
        }
    }

    fn read(&self, n: &Node) -> Result<Option<Vec<u8>>> {
        match n {
            Node::File { size, content, .. } if *size <= TEXT_MAX => {
                let mut buf = Vec::with_capacity(*size as usize);
                self.lake().write_content(content, &mut buf)?;
                Ok(Some(buf))
            }
            _ => Ok(None),
        }
    }

    fn files(&mut self, base: Option<&Node>, o: &Node, t: &Node, rel: &str) -> Result<Merged> {
        let (Node::File { meta: om, size: os, content: oc }, Node::File { meta: tm, size: ts, content: tc }) = (o, t) else {
            return Err(Error::Invalid(format!("{rel}: not two files")));
        };
        let meta = merge_meta(base.and_then(|b| b.meta()), om, tm);
        let base_file = match base {
            Some(Node::File { size, content, .. }) => Some((*size, *content)),
            _ => None,
        };
        // Only one side changed the content (the other only metadata, or nothing).
        if (*os, *oc) == (*ts, *tc) || base_file == Some((*ts, *tc)) {
            return Ok((Some(Node::File { meta, size: *os, content: *oc }), Vec::new()));
        }
        if base_file == Some((*os, *oc)) {
            return Ok((Some(Node::File { meta, size: *ts, content: *tc }), Vec::new()));
        }
        let b_bytes = match base {
            Some(b @ Node::File { .. }) => self.read(b)?,
            _ => Some(Vec::new()),
        };
        let (ob, tb) = (self.read(o)?, self.read(t)?);
        if let (Some(b), Some(ob), Some(tb)) = (b_bytes, ob, tb) {
            if is_text(&b) && is_text(&ob) && is_text(&tb) {
                let (bs, os_, ts_) = (String::from_utf8_lossy(&b), String::from_utf8_lossy(&ob), String::from_utf8_lossy(&tb));
                let mut opts = diffy::MergeOptions::new();
                opts.set_conflict_style(diffy::ConflictStyle::Merge);
                let (text, clean) = match opts.merge(&bs, &os_, &ts_) {
                    Ok(s) => (s, true),
                    Err(s) => (self.label_markers(&s), false),
                };
                if !clean {
                    self.conflict(rel, "content", None);
                }
                let (now, nsec) = lakefs::util::now();
                let meta = Meta { mtime: now, mtime_nsec: nsec, ..meta };
                let (content, size) = self.store(text.as_bytes(), &meta)?;
                return Ok((Some(Node::File { meta, size, content }), Vec::new()));
            }
        }
        let copy = format!("{rel}.merge-{}", self.theirs);
        self.conflict(rel, "binary", Some(copy.clone()));
        Ok((Some(o.clone()), vec![(copy, t.clone())]))
    }

    /// diffy labels the sides "ours" and "theirs"; name the branches too.
    fn label_markers(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 64);
        for line in s.split_inclusive('\n') {
            let (body, nl) = match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            };
            match body {
                "<<<<<<< ours" => out.push_str(&format!("<<<<<<< ours ({}){nl}", self.ours)),
                ">>>>>>> theirs" => out.push_str(&format!(">>>>>>> theirs ({}){nl}", self.theirs)),
                _ => out.push_str(line),
            }
        }
        out
    }

    /// Stores merged bytes as a file's content (chunked when large).
    fn store(&self, bytes: &[u8], meta: &Meta) -> Result<(Content, u64)> {
        if bytes.len() <= self.lake().superblock().chunker.max as usize {
            let id = ObjectId::hash(bytes);
            self.w.put_with_id(id, Kind::Data, bytes)?;
            return Ok((Content::Whole(id), bytes.len() as u64));
        }
        let tmp = self.lake().root().join(lakefs::lake::TMP_DIR).join(format!("merge-{}", lakefs::util::random_hex(8)));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
        let r = lakefs::import::store_file(self.w, &tmp, bytes.len() as u64, meta, &Default::default());
        let _ = std::fs::remove_file(&tmp);
        Ok(r?)
    }
}

#[cfg(test)]
#[path = "branch_tests.rs"]
mod tests;
