//! Branches of a path (a "scope") inside a LAKE-zone volume.
//!
//! The volume's history ref `VOLUME/main` records the whole working tree; a
//! branch records one scope's subtree on its own ref. Model (docs/branches.md):
//! - every scope that has branches has an implicit main line, ref
//!   `VOLUME/scope/<hash of scope>/main`, and named branches, ref
//!   `VOLUME/branch/<name>` (names are unique in a volume);
//! - a branch commit's tree is the scope's subtree (a directory scope), or a
//!   one-entry tree holding the scope's node (a file scope); extra `scope-node`
//!   says which (`dir`, `entry`, `absent`);
//! - tips advance on an explicit commit of paths in the scope, when the scope
//!   switches away from the branch, and on merge;
//! - switching and merging change the working copy with ordinary file-system
//!   calls under a directory (the mount point in real use, so the kernel's caches
//!   stay right), then call a flush that commits the working tree and returns
//!   `VOLUME/main`'s new head.
//!
//! Tables (meta.db, created here with CREATE TABLE IF NOT EXISTS):
//! `volume_branches`, `volume_branch_current`, `volume_merges`, `volume_conflicts`.
//!
//! Scopes, conflict paths and the paths of [`WorkChange`]s are mount-relative
//! paths in their escaped text form (`lakefs::names::escape`: the name itself
//! when it is UTF-8 without a backslash), so a name that is not UTF-8 is
//! switched and merged like any other; they become bytes again where they
//! meet the file system or a tree (`lakefs::names::from_escaped`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use crate::error::{Error, Result};
use lakefs::commit::Commit;
use lakefs::error::IoContext;
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::{Entry, Meta, Node, Tree};
use lakefs::writer::{RefUpdate, WriteSession};

/// The implicit branch of every scope.
pub const MAIN: &str = "main";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS volume_branches(
    volume TEXT NOT NULL, scope TEXT NOT NULL, name TEXT NOT NULL, ref TEXT NOT NULL, created INTEGER NOT NULL,
    PRIMARY KEY(volume, scope, name)
);
CREATE TABLE IF NOT EXISTS volume_branch_current(
    volume TEXT NOT NULL, scope TEXT NOT NULL, branch TEXT NOT NULL, PRIMARY KEY(volume, scope)
);
CREATE TABLE IF NOT EXISTS volume_merges(
    volume TEXT NOT NULL, scope TEXT NOT NULL, ours TEXT NOT NULL, theirs TEXT NOT NULL,
    ours_commit BLOB NOT NULL, theirs_commit BLOB NOT NULL, started INTEGER NOT NULL,
    PRIMARY KEY(volume, scope)
);
CREATE TABLE IF NOT EXISTS volume_conflicts(
    volume TEXT NOT NULL, path TEXT NOT NULL, scope TEXT NOT NULL, kind TEXT NOT NULL,
    theirs TEXT NOT NULL, theirs_copy TEXT, PRIMARY KEY(volume, path)
);
";

/// Where branch operations change files, and how they get them committed.
pub struct Workdir<'a> {
    /// The directory mount-relative paths are under: the mount point (or, in
    /// tests, the working tree itself).
    pub root: &'a Path,
    /// Commits everything pending in the working tree onto `VOLUME/main` and
    /// returns its head (the control file's `{"op":"flush"}` in real use).
    pub flush: &'a mut dyn FnMut() -> lakefs::Result<ObjectId>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Branch {
    pub name: String,
    /// Mount-relative path the branch covers ("" for the whole volume).
    pub scope: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub created: i64,
    /// The scope's working copy is this branch's version.
    pub current: bool,
    pub tip: Option<ObjectId>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Conflict {
    /// Mount-relative path of the conflicted file.
    pub path: String,
    pub scope: String,
    /// `content` (markers in the file), `binary` (theirs beside it), `type`
    /// (theirs beside it), `deleted-by-us`, `deleted-by-them` (the changed side kept).
    pub kind: String,
    /// The branch being merged in.
    pub theirs: String,
    /// Mount-relative path of their version, when it was written beside ours.
    pub theirs_copy: Option<String>,
}

/// A merge waiting for its conflicts to be committed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PendingMerge {
    pub scope: String,
    pub ours: String,
    pub theirs: String,
    pub ours_commit: ObjectId,
    pub theirs_commit: ObjectId,
}

/// What a working-copy change did, for display (`A`/`D`/`M`/`m` and a mount-relative path).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkChange {
    pub kind: char,
    pub path: String,
}

#[derive(Debug, serde::Serialize)]
pub struct SwitchOutcome {
    pub scope: String,
    pub from: String,
    pub to: String,
    /// The commit recorded on `from` for its last working state, if it had changed.
    pub saved: Option<ObjectId>,
    pub changes: Vec<WorkChange>,
    /// `VOLUME/main` after the switch (None on a dry run).
    pub head: Option<ObjectId>,
}

/// What [`on_commit`] did.
#[derive(Debug, Default, serde::Serialize)]
pub struct CommitEffect {
    /// Branch tips advanced: (branch, scope, commit).
    pub advanced: Vec<(String, String, ObjectId)>,
    /// Conflicts cleared by the commit.
    pub resolved: Vec<String>,
    /// Merges completed (two-parent commits): (ours, theirs, commit).
    pub merged: Vec<(String, String, ObjectId)>,
}

pub fn ensure_schema(lake: &Lake) -> Result<()> {
    let db = lake.db();
    db.conn.execute_batch(SCHEMA).map_err(|e| db.err(e).into())
}

/// Mount-relative scope in canonical form: no leading/trailing '/', no `.`/`..`.
pub fn normalise_scope(scope: &str) -> Result<String> {
    let comps = lakefs::tree_edit::components(scope)?;
    Ok(comps.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("/"))
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['-', '.'])
        && !name.contains("..")
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
    if !ok {
        return Err(Error::Invalid(format!("invalid branch name '{name}': use letters, digits and - _ . (not starting with '-' or '.')")));
    }
    Ok(())
}

fn scope_hash(scope: &str) -> String {
    blake3::hash(scope.as_bytes()).to_hex()[..16].to_owned()
}

fn ref_for(volume: &str, scope: &str, name: &str) -> String {
    if name == MAIN {
        format!("{volume}/scope/{}/main", scope_hash(scope))
    } else {
        format!("{volume}/branch/{name}")
    }
}

/// `inner` is `outer` or below it.
pub fn path_within(inner: &str, outer: &str) -> bool {
    outer.is_empty() || inner == outer || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'/'))
}

fn row_to_branch(lake: &Lake, volume: &str, scope: String, name: String, reference: String, created: i64) -> Result<Branch> {
    let tip = lake.get_ref(&reference)?;
    let current = current_branch(lake, volume, &scope)? == name;
    Ok(Branch { name, scope, reference, created, current, tip })
}

/// Branches of `volume`, all or those of one scope (main lines included).
pub fn list(lake: &Lake, volume: &str, scope: Option<&str>) -> Result<Vec<Branch>> {
    ensure_schema(lake)?;
    let rows: Vec<(String, String, String, i64)> = {
        let db = lake.db();
        let mut s = db
            .conn
            .prepare("SELECT scope, name, ref, created FROM volume_branches WHERE volume=?1 ORDER BY scope, name<>'main', name")
            .map_err(|e| db.err(e))?;
        let rows = s.query_map(params![volume], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(|e| db.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| db.err(e))?
    };
    let mut out = Vec::new();
    for (sc, name, reference, created) in rows {
        if scope.is_some_and(|want| want != sc) {
            continue;
        }
        out.push(row_to_branch(lake, volume, sc, name, reference, created)?);
    }
    Ok(out)
}

/// The named branch (not `main`, which needs a scope: see [`find`]).
pub fn get(lake: &Lake, volume: &str, name: &str) -> Result<Option<Branch>> {
    ensure_schema(lake)?;
    let row: Option<(String, String, i64)> = {
        let db = lake.db();
        db.conn
            .query_row(
                "SELECT scope, ref, created FROM volume_branches WHERE volume=?1 AND name=?2 AND name<>'main'",
                params![volume, name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| db.err(e))?
    };
    row.map(|(sc, reference, created)| row_to_branch(lake, volume, sc, name.to_owned(), reference, created)).transpose()
}

/// The scopes of `volume` that have branches.
pub fn scopes(lake: &Lake, volume: &str) -> Result<Vec<String>> {
    ensure_schema(lake)?;
    let db = lake.db();
    let mut s = db.conn.prepare("SELECT DISTINCT scope FROM volume_branches WHERE volume=?1 ORDER BY scope").map_err(|e| db.err(e))?;
    let rows = s.query_map(params![volume], |r| r.get(0)).map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<_>>().map_err(|e| db.err(e).into())
}

/// The scope with branches that holds mount-relative `path`, if any.
pub fn scope_of(lake: &Lake, volume: &str, path: &str) -> Result<Option<String>> {
    Ok(scopes(lake, volume)?.into_iter().filter(|s| path_within(path, s)).max_by_key(|s| s.len()))
}

/// Finds a branch by name; `main` needs `scope` (a path inside the scope), or
/// is taken from the only scope with branches.
pub fn find(lake: &Lake, volume: &str, name: &str, scope: Option<&str>) -> Result<Branch> {
    if name != MAIN {
        let b = get(lake, volume, name)?.ok_or_else(|| Error::NoSuchBranch { volume: volume.to_owned(), name: name.to_owned() })?;
        if let Some(p) = scope {
            if !path_within(p, &b.scope) {
                return Err(Error::Invalid(format!("branch '{name}' covers '{}', not '{p}'", b.scope)));
            }
        }
        return Ok(b);
    }
    let sc = match scope {
        Some(p) => scope_of(lake, volume, p)?.ok_or_else(|| Error::NoBranchScope { path: p.to_owned() })?,
        None => {
            let all = scopes(lake, volume)?;
            match all.as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::Invalid(format!("volume '{volume}' has no branches"))),
                _ => {
                    return Err(Error::Invalid(format!(
                        "several scopes have a main line ({}); say which with --path",
                        all.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
                    )))
                }
            }
        }
    };
    list(lake, volume, Some(&sc))?
        .into_iter()
        .find(|b| b.name == MAIN)
        .ok_or_else(|| Error::Invalid(format!("scope '{sc}' has no main line")))
}

pub fn current_branch(lake: &Lake, volume: &str, scope: &str) -> Result<String> {
    ensure_schema(lake)?;
    let db = lake.db();
    let cur: Option<String> = db
        .conn
        .query_row("SELECT branch FROM volume_branch_current WHERE volume=?1 AND scope=?2", params![volume, scope], |r| r.get(0))
        .optional()
        .map_err(|e| db.err(e))?;
    Ok(cur.unwrap_or_else(|| MAIN.to_owned()))
}

fn set_current(lake: &Lake, volume: &str, scope: &str, name: &str) -> Result<()> {
    let db = lake.db();
    db.conn
        .execute("INSERT OR REPLACE INTO volume_branch_current(volume, scope, branch) VALUES(?1, ?2, ?3)", params![volume, scope, name])
        .map(|_| ())
        .map_err(|e| db.err(e).into())
}

pub fn pending_merge(lake: &Lake, volume: &str, scope: &str) -> Result<Option<PendingMerge>> {
    ensure_schema(lake)?;
    let db = lake.db();
    let row: Option<(String, String, Vec<u8>, Vec<u8>)> = db
        .conn
        .query_row(
            "SELECT ours, theirs, ours_commit, theirs_commit FROM volume_merges WHERE volume=?1 AND scope=?2",
            params![volume, scope],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(|e| db.err(e))?;
    let Some((ours, theirs, oc, tc)) = row else {
        return Ok(None);
    };
    let id = |b: &[u8]| {
        ObjectId::from_slice(b).ok_or_else(|| Error::Invalid(format!("{}: bad commit id in volume_merges", db.path().display())))
    };
    Ok(Some(PendingMerge { scope: scope.to_owned(), ours, theirs, ours_commit: id(&oc)?, theirs_commit: id(&tc)? }))
}

/// Unresolved merge conflicts of `volume` (for `lakectl status`).
pub fn conflicts(lake: &Lake, volume: &str) -> Result<Vec<Conflict>> {
    ensure_schema(lake)?;
    let db = lake.db();
    let mut s = db
        .conn
        .prepare("SELECT path, scope, kind, theirs, theirs_copy FROM volume_conflicts WHERE volume=?1 ORDER BY path")
        .map_err(|e| db.err(e))?;
    let rows = s
        .query_map(params![volume], |r| {
            Ok(Conflict { path: r.get(0)?, scope: r.get(1)?, kind: r.get(2)?, theirs: r.get(3)?, theirs_copy: r.get(4)? })
        })
        .map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<_>>().map_err(|e| db.err(e).into())
}

// ---------------------------------------------------------------------------
// Scope states: the node at a scope in a volume commit, and branch commits.

/// The node at mount-relative `scope` in volume commit `head` (None: absent).
pub fn scope_state(lake: &Lake, head: &ObjectId, scope: &str) -> Result<Option<Node>> {
    let c = lake.read_commit(head)?;
    if scope.is_empty() {
        return Ok(Some(Node::Dir { meta: c.root, tree: c.tree }));
    }
    Ok(lake.lookup(&c.tree, lakefs::names::from_escaped(scope))?)
}

/// The entry name of a scope (bytes).
fn basename(scope: &str) -> Vec<u8> {
    lakefs::names::file_name(&lakefs::names::from_escaped(scope)).to_vec()
}

/// The scope state a branch commit records.
pub fn branch_state(lake: &Lake, commit: &ObjectId, scope: &str) -> Result<Option<Node>> {
    let c = lake.read_commit(commit)?;
    let kind = c.extra.iter().find(|(k, _)| k == "scope-node").map(|(_, v)| v.as_str()).unwrap_or("dir");
    match kind {
        "dir" => Ok(Some(Node::Dir { meta: c.root, tree: c.tree })),
        "absent" => Ok(None),
        _ => Ok(lake.read_tree(&c.tree)?.get(&basename(scope)).map(|e| e.node.clone())),
    }
}

/// Records `state` as a new commit on `reference` (expected at `parents[0]`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_state(
    lake: &Lake,
    volume: &str,
    scope: &str,
    reference: &str,
    state: Option<&Node>,
    parents: &[ObjectId],
    trigger: &str,
    message: &str,
) -> Result<ObjectId> {
    let w = WriteSession::begin(lake)?;
    let (tree, root, kind) = match state {
        Some(Node::Dir { meta, tree }) => (*tree, meta.clone(), "dir"),
        Some(other) => {
            let t = Tree { entries: vec![Entry { name: basename(scope), node: other.clone() }] };
            (w.put_tree(&t)?, Meta::default(), "entry")
        }
        None => (w.put_tree(&Tree::default())?, Meta::default(), "absent"),
    };
    let (time, time_nsec) = lakefs::util::now();
    let commit = Commit {
        tree,
        root,
        parents: parents.to_vec(),
        scope: format!("volume:{volume}:{scope}"),
        time,
        time_nsec,
        trigger: trigger.to_owned(),
        message: message.to_owned(),
        extra: vec![("scope-node".into(), kind.into())],
    };
    let id = w.put_commit(&commit)?;
    let expected = lake.get_ref(reference)?;
    w.finish(&[(id, commit)], &[RefUpdate { name: reference.to_owned(), expected, new: id, reason: format!("{trigger}: {message}") }])?;
    Ok(id)
}

/// Records the working state of `scope` (from volume commit `head`) on its
/// current branch if it differs from the tip. Returns the new commit, if any.
fn save_current(lake: &Lake, volume: &str, scope: &str, head: &ObjectId, trigger: &str, message: &str) -> Result<Option<ObjectId>> {
    let cur = current_branch(lake, volume, scope)?;
    let reference = ref_for(volume, scope, &cur);
    let state = scope_state(lake, head, scope)?;
    let tip = lake.get_ref(&reference)?;
    if let Some(t) = tip {
        if branch_state(lake, &t, scope)? == state {
            return Ok(None);
        }
    }
    let parents: Vec<ObjectId> = tip.into_iter().collect();
    Ok(Some(commit_state(lake, volume, scope, &reference, state.as_ref(), &parents, trigger, message)?))
}

// ---------------------------------------------------------------------------
// Operations.

/// Held while one branch operation runs on a volume: two processes switching or
/// merging at once would interleave their writes into the working copy.
pub struct OpLock {
    _file: std::fs::File,
}

/// How long [`lock_ops`] waits for a lock held by someone else.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Takes the volume's branch-operation lock (`LAKE/volumes/NAME/branch.lock`), or
/// says that another operation holds it.
pub fn lock_ops(lake: &Lake, volume: &str) -> Result<OpLock> {
    let dir = lake.root().join(crate::VOLUMES_DIR).join(volume);
    std::fs::create_dir_all(&dir).at(&dir)?;
    let path = dir.join("branch.lock");
    let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).at(&path)?;
    // A holder that is letting go (a command finishing, or a child between fork
    // and exec still sharing its descriptor) is waited for briefly; a real
    // operation holds the lock far longer than this.
    let deadline = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match lakefs::sys::lock_exclusive(&f, false) {
            Ok(()) => return Ok(OpLock { _file: f }),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => {
                if std::time::Instant::now() >= deadline {
                    return Err(Error::Busy { volume: volume.to_owned(), lock: path });
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
}

/// Starts branch `name` of `scope` from its working state (the scope's main
/// line is created with it the first time). The working copy stays as it is.
pub fn create(lake: &Lake, volume: &str, scope: &str, name: &str, wd: &mut Workdir) -> Result<Branch> {
    let _lock = lock_ops(lake, volume)?;
    ensure_schema(lake)?;
    let scope = normalise_scope(scope)?;
    check_name(name)?;
    if name == MAIN {
        return Err(Error::Invalid("'main' is every scope's own line; choose another name".into()));
    }
    if let Some(b) = get(lake, volume, name)? {
        return Err(Error::Invalid(format!("branch '{name}' already exists (of '{}')", b.scope)));
    }
    if let Some(other) = scopes(lake, volume)?.into_iter().find(|s| *s != scope && (path_within(s, &scope) || path_within(&scope, s))) {
        return Err(Error::Invalid(format!(
            "'{scope}' overlaps '{other}', which already has branches; branch '{other}' instead (scopes do not nest)"
        )));
    }
    let head = (wd.flush)()?;
    let state = scope_state(lake, &head, &scope)?;
    if state.is_none() {
        return Err(Error::Invalid(format!(
            "'{scope}' is not in the volume's history (missing, or in a POSIX zone such as .cache, which is never committed)"
        )));
    }
    let (now, _) = lakefs::util::now();
    let main_ref = ref_for(volume, &scope, MAIN);
    let is_new_scope = !scopes(lake, volume)?.contains(&scope);
    if is_new_scope {
        let msg = format!("main line of '{scope}'");
        commit_state(lake, volume, &scope, &main_ref, state.as_ref(), &[], "branch", &msg)?;
        let db = lake.db();
        db.conn
            .execute(
                "INSERT INTO volume_branches(volume, scope, name, ref, created) VALUES(?1, ?2, 'main', ?3, ?4)",
                params![volume, scope, main_ref, now],
            )
            .map_err(|e| db.err(e))?;
    } else {
        save_current(lake, volume, &scope, &head, "branch", &format!("before branching '{name}'"))?;
    }
    let cur = current_branch(lake, volume, &scope)?;
    let from = lake
        .get_ref(&ref_for(volume, &scope, &cur))?
        .ok_or_else(|| Error::Invalid(format!("current branch '{cur}' of '{scope}' has no commit")))?;
    let reference = ref_for(volume, &scope, name);
    let w = WriteSession::begin(lake)?;
    w.finish(&[], &[RefUpdate { name: reference.clone(), expected: None, new: from, reason: format!("branch: created from '{cur}'") }])?;
    {
        let db = lake.db();
        db.conn
            .execute(
                "INSERT INTO volume_branches(volume, scope, name, ref, created) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![volume, scope, name, reference, now],
            )
            .map_err(|e| db.err(e))?;
    }
    get(lake, volume, name)?.ok_or_else(|| Error::Invalid(format!("branch '{name}' vanished")))
}

/// Deletes branch `name` (its ref and record); its commits stay until gc.
/// Refuses the current branch of its scope and `main`. Returns its last tip.
pub fn delete(lake: &Lake, volume: &str, name: &str) -> Result<Branch> {
    let _lock = lock_ops(lake, volume)?;
    if name == MAIN {
        return Err(Error::Invalid("a scope's main line cannot be deleted".into()));
    }
    let b = find(lake, volume, name, None)?;
    if b.current {
        return Err(Error::CurrentBranch { name: name.to_owned(), scope: b.scope });
    }
    if let Some(m) = pending_merge(lake, volume, &b.scope)? {
        if m.theirs == name {
            return Err(Error::Invalid(format!("branch '{name}' is being merged into '{}'; commit or abort that merge first", m.ours)));
        }
    }
    if b.tip.is_some() {
        lake.delete_ref(&b.reference)?;
    }
    let db = lake.db();
    db.conn
        .execute("DELETE FROM volume_branches WHERE volume=?1 AND scope=?2 AND name=?3", params![volume, b.scope, name])
        .map_err(|e| db.err(e))?;
    Ok(b)
}

/// Makes branch `name`'s version the working copy of its scope: records the
/// scope's working state on the current branch, writes the differences under
/// `wd.root`, flushes. `scope` (a path in it) is needed for `main` when the
/// volume has several scopes. Refuses while a merge in the scope has conflicts.
pub fn switch(lake: &Lake, volume: &str, name: &str, scope: Option<&str>, wd: &mut Workdir, dry_run: bool) -> Result<SwitchOutcome> {
    let _lock = lock_ops(lake, volume)?;
    let scope = scope.map(normalise_scope).transpose()?;
    let target = find(lake, volume, name, scope.as_deref())?;
    let scope = target.scope.clone();
    if let Some(m) = pending_merge(lake, volume, &scope)? {
        let open: Vec<String> = conflicts(lake, volume)?.into_iter().filter(|c| c.scope == scope).map(|c| c.path).collect();
        return Err(Error::UnresolvedMerge { scope, theirs: m.theirs, ours: m.ours, paths: open });
    }
    let from = current_branch(lake, volume, &scope)?;
    if from == target.name {
        // Already there: the working copy is this branch's latest version (rewriting it
        // with the tip would drop work not yet committed to the branch).
        return Ok(SwitchOutcome { scope: scope.clone(), from: from.clone(), to: from, saved: None, changes: Vec::new(), head: None });
    }
    let head = (wd.flush)()?;
    let cur_state = scope_state(lake, &head, &scope)?;
    let tip = target.tip.ok_or_else(|| Error::Invalid(format!("branch '{name}' has no commit (ref {} is missing)", target.reference)))?;
    let want = branch_state(lake, &tip, &scope)?;
    let mut out =
        SwitchOutcome { scope: scope.clone(), from: from.clone(), to: target.name.clone(), saved: None, changes: Vec::new(), head: None };
    if dry_run {
        preview(lake, cur_state.as_ref(), want.as_ref(), &scope, &mut out.changes)?;
        return Ok(out);
    }
    out.saved = save_current(lake, volume, &scope, &head, "switch", &format!("switch to '{}'", target.name))?;
    write_state(lake, wd.root, &scope, cur_state.as_ref(), want.as_ref(), &mut out.changes)?;
    if !matches!((&cur_state, &want), (Some(Node::Dir { .. }), Some(Node::Dir { .. }))) {
        restore_parent_meta(lake, wd.root, &scope, &head)?;
    }
    set_current(lake, volume, &scope, &target.name)?;
    out.head = Some((wd.flush)()?);
    Ok(out)
}

/// Called after a commit of `paths` (mount-relative bytes) on `VOLUME/main`
/// made by `lakectl commit` (head `head`): clears the conflicts among them,
/// completes merges with no conflicts left (two-parent commit), and advances
/// the current branch of every scope the paths touch.
pub fn on_commit(lake: &Lake, volume: &str, paths: &[Vec<u8>], head: ObjectId, message: &str) -> Result<CommitEffect> {
    ensure_schema(lake)?;
    let mut eff = CommitEffect::default();
    let paths: Vec<String> = paths.iter().map(|p| normalise_scope(&lakefs::names::escape(p))).collect::<Result<_>>()?;
    for c in conflicts(lake, volume)? {
        if paths.iter().any(|p| path_within(&c.path, p)) {
            let db = lake.db();
            db.conn.execute("DELETE FROM volume_conflicts WHERE volume=?1 AND path=?2", params![volume, c.path]).map_err(|e| db.err(e))?;
            eff.resolved.push(c.path);
        }
    }
    let open = conflicts(lake, volume)?;
    for scope in scopes(lake, volume)? {
        if !paths.iter().any(|p| path_within(p, &scope) || path_within(&scope, p)) {
            continue;
        }
        if let Some(m) = pending_merge(lake, volume, &scope)? {
            if open.iter().any(|c| c.scope == scope) {
                continue;
            }
            let id = finish_merge(lake, volume, &m, &head, message)?;
            eff.merged.push((m.ours, m.theirs, id));
            continue;
        }
        let cur = current_branch(lake, volume, &scope)?;
        if let Some(id) = save_current(lake, volume, &scope, &head, "manual", message)? {
            eff.advanced.push((cur, scope, id));
        }
    }
    Ok(eff)
}

/// Records the merge commit (parents: ours, theirs) from the scope's state in
/// volume commit `head`, and forgets the pending merge.
pub(crate) fn finish_merge(lake: &Lake, volume: &str, m: &PendingMerge, head: &ObjectId, message: &str) -> Result<ObjectId> {
    let state = scope_state(lake, head, &m.scope)?;
    let reference = ref_for(volume, &m.scope, &m.ours);
    let msg = if message.is_empty() { format!("merge '{}' into '{}'", m.theirs, m.ours) } else { message.to_owned() };
    let id = commit_state(lake, volume, &m.scope, &reference, state.as_ref(), &[m.ours_commit, m.theirs_commit], "merge", &msg)?;
    clear_merge(lake, volume, &m.scope)?;
    Ok(id)
}

pub(crate) fn clear_merge(lake: &Lake, volume: &str, scope: &str) -> Result<()> {
    let db = lake.db();
    db.conn
        .execute("DELETE FROM volume_merges WHERE volume=?1 AND scope=?2", params![volume, scope])
        .and_then(|_| db.conn.execute("DELETE FROM volume_conflicts WHERE volume=?1 AND scope=?2", params![volume, scope]))
        .map(|_| ())
        .map_err(|e| db.err(e).into())
}

pub(crate) fn record_merge(lake: &Lake, volume: &str, m: &PendingMerge, found: &[Conflict]) -> Result<()> {
    let mut db = lake.db();
    let dbpath = db.path().to_owned();
    let err = |e| lakefs::meta::db_error(&dbpath, e);
    let tx = db.conn.transaction().map_err(err)?;
    let (now, _) = lakefs::util::now();
    tx.execute(
        "INSERT OR REPLACE INTO volume_merges(volume, scope, ours, theirs, ours_commit, theirs_commit, started) VALUES(?1,?2,?3,?4,?5,?6,?7)",
        params![volume, m.scope, m.ours, m.theirs, m.ours_commit.as_bytes(), m.theirs_commit.as_bytes(), now],
    )
    .map_err(err)?;
    for c in found {
        tx.execute(
            "INSERT OR REPLACE INTO volume_conflicts(volume, path, scope, kind, theirs, theirs_copy) VALUES(?1,?2,?3,?4,?5,?6)",
            params![volume, c.path, c.scope, c.kind, c.theirs, c.theirs_copy],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(|e| err(e).into())
}

pub(crate) fn branch_ref(volume: &str, scope: &str, name: &str) -> String {
    ref_for(volume, scope, name)
}

pub(crate) fn save_working(
    lake: &Lake,
    volume: &str,
    scope: &str,
    head: &ObjectId,
    trigger: &str,
    message: &str,
) -> Result<Option<ObjectId>> {
    save_current(lake, volume, scope, head, trigger, message)
}

// ---------------------------------------------------------------------------
// Writing a state into the working copy.

/// `parent/name` of (escaped) mount-relative paths (`name` alone at the root).
pub(super) fn join_rel(parent: &str, name: &[u8]) -> String {
    let n = lakefs::names::escape(name);
    if parent.is_empty() {
        n
    } else {
        format!("{parent}/{n}")
    }
}

pub(super) fn abs(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(OsStr::from_bytes(&lakefs::names::from_escaped(rel)))
    }
}

fn entries(lake: &Lake, node: Option<&Node>) -> Result<Vec<Entry>> {
    match node {
        Some(Node::Dir { tree, .. }) => Ok(lake.read_tree(tree)?.entries),
        _ => Ok(Vec::new()),
    }
}

/// Lists what writing `want` over `cur` at `rel` would change.
pub(crate) fn preview(lake: &Lake, cur: Option<&Node>, want: Option<&Node>, rel: &str, out: &mut Vec<WorkChange>) -> Result<()> {
    if cur == want {
        return Ok(());
    }
    match (cur, want) {
        (Some(Node::Dir { meta: cm, tree: ct }), Some(Node::Dir { meta: wm, tree: wt })) => {
            if cm != wm && ct == wt {
                out.push(WorkChange { kind: 'm', path: rel.to_owned() });
            }
            let mut names: Vec<Vec<u8>> = entries(lake, cur)?.into_iter().chain(entries(lake, want)?).map(|e| e.name).collect();
            names.sort();
            names.dedup();
            let (ce, we) = (lake.read_tree(ct)?, lake.read_tree(wt)?);
            for n in names {
                let (c, w) = (ce.get(&n).map(|e| &e.node), we.get(&n).map(|e| &e.node));
                preview(lake, c, w, &join_rel(rel, &n), out)?;
            }
        }
        (Some(c), Some(w)) if c.same_content(w) => out.push(WorkChange { kind: 'm', path: rel.to_owned() }),
        (Some(_), Some(_)) => out.push(WorkChange { kind: 'M', path: rel.to_owned() }),
        (None, Some(_)) => out.push(WorkChange { kind: 'A', path: rel.to_owned() }),
        (Some(_), None) => out.push(WorkChange { kind: 'D', path: rel.to_owned() }),
        (None, None) => {}
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if md.is_dir() {
        Ok(std::fs::remove_dir_all(path).at(path)?)
    } else {
        Ok(std::fs::remove_file(path).at(path)?)
    }
}

/// Makes the working copy at `rel` (currently `cur`, as last committed) into
/// `want` with ordinary file-system calls under `root`, touching only what
/// differs. Directory metadata is set after the directory's children, so their
/// changes do not disturb its recorded mtime.
pub(crate) fn write_state(
    lake: &Lake,
    root: &Path,
    rel: &str,
    cur: Option<&Node>,
    want: Option<&Node>,
    out: &mut Vec<WorkChange>,
) -> Result<()> {
    if cur == want {
        return Ok(());
    }
    let path = abs(root, rel);
    match (cur, want) {
        (Some(Node::Dir { meta: cm, tree: ct }), Some(Node::Dir { meta: wm, tree: wt })) => {
            if ct != wt {
                let (ce, we) = (lake.read_tree(ct)?, lake.read_tree(wt)?);
                let mut names: Vec<Vec<u8>> = ce.entries.iter().chain(we.entries.iter()).map(|e| e.name.clone()).collect();
                names.sort();
                names.dedup();
                for n in names {
                    let (c, w) = (ce.get(&n).map(|e| &e.node), we.get(&n).map(|e| &e.node));
                    write_state(lake, root, &join_rel(rel, &n), c, w, out)?;
                }
            } else if cm != wm {
                out.push(WorkChange { kind: 'm', path: rel.to_owned() });
            }
            lakefs::fsmeta::apply(&path, wm, false)?;
        }
        (Some(c), Some(w)) if c.same_content(w) && w.meta().is_some() => {
            out.push(WorkChange { kind: 'm', path: rel.to_owned() });
            let meta = w.meta().ok_or_else(|| Error::Invalid(format!("{rel}: no metadata")))?;
            lakefs::fsmeta::apply(&path, meta, matches!(w, Node::Symlink { .. }))?;
        }
        _ => {
            if cur.is_some() {
                remove(&path)?;
            }
            if let Some(w) = want {
                // A stale leftover (not in the last commit) must not block the write.
                remove(&path)?;
                lakefs::checkout::materialize(lake, w, &path, root)?;
            }
            let kind = match (cur, want) {
                (None, _) => 'A',
                (_, None) => 'D',
                _ => 'M',
            };
            out.push(WorkChange { kind, path: rel.to_owned() });
        }
    }
    Ok(())
}

/// Puts back the mtime of `rel`'s parent directory as volume commit `head`
/// recorded it (creating or removing the scope itself touches its parent,
/// which lies outside the scope).
pub(crate) fn restore_parent_meta(lake: &Lake, root: &Path, rel: &str, head: &ObjectId) -> Result<()> {
    if rel.is_empty() {
        return Ok(());
    }
    let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    if let Some(Node::Dir { meta, .. }) = scope_state(lake, head, parent)? {
        lakefs::fsmeta::apply(&abs(root, parent), &meta, false)?;
    }
    Ok(())
}
