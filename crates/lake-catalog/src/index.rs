//! Bringing a volume's catalog from one tree to the next: diff the trees, read
//! the first bytes of what was added or modified, write rows and full-text
//! bodies, drop what was removed; all in one transaction.
//!
//! Paths are stored in their escaped text form (`lakefs::names::escape`: the
//! path itself when it is UTF-8 without a backslash), so a file whose name is
//! not UTF-8 is indexed too and its row names exactly one file.

use std::collections::HashMap;
use std::io::Read;
use std::rc::Rc;

use rusqlite::{params, Connection, OptionalExtension};

use super::{fts, props, schema, IndexStats};
use lakefs::chunklist::Piece;
use lakefs::diff::{self, ChangeKind};
use lakefs::error::{Error, IoContext, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::meta::Db;
use lakefs::names;
use lakefs::tree::{Content, Node, Tree};

/// What to do with one path.
enum Todo {
    Remove(String),
    /// A file to (re)index: path, size, mtime, content.
    Put(String, u64, i64, Content),
}

/// Directory trees of one root, read once each (a diff of thousands of files in
/// a few directories reads those directories once, not once per file).
struct Trees<'a> {
    lake: &'a Lake,
    root: ObjectId,
    dirs: HashMap<Vec<u8>, Option<Rc<Tree>>>,
}

impl Trees<'_> {
    fn dir(&mut self, dir: &[u8]) -> Result<Option<Rc<Tree>>> {
        if let Some(t) = self.dirs.get(dir) {
            return Ok(t.clone());
        }
        let t = if dir.is_empty() {
            Some(Rc::new(self.lake.read_tree(&self.root)?))
        } else {
            let (parent, name) = (names::parent(dir), names::file_name(dir));
            match self.dir(parent)?.as_ref().and_then(|t| t.get(name)).map(|e| &e.node) {
                Some(Node::Dir { tree, .. }) => Some(Rc::new(self.lake.read_tree(tree)?)),
                _ => None,
            }
        };
        self.dirs.insert(dir.to_owned(), t.clone());
        Ok(t)
    }

    fn node(&mut self, path: &[u8]) -> Result<Option<Node>> {
        let (parent, name) = (names::parent(path), names::file_name(path));
        Ok(self.dir(parent)?.and_then(|t| t.get(name).map(|e| e.node.clone())))
    }

    /// The file a path names, following a hard link to its first name.
    fn file(&mut self, path: &[u8]) -> Result<Option<(u64, i64, Content)>> {
        let node = match self.node(path)? {
            Some(Node::Hardlink { target }) => self.node(&target)?,
            n => n,
        };
        Ok(match node {
            Some(Node::File { meta, size, content }) => Some((size, meta.mtime, content)),
            _ => None,
        })
    }
}

/// Reads up to `want` bytes from the start of a file's content, through a
/// database handle the caller already holds (the lake's own accessors take it).
fn read_head(lake: &Lake, db: &Db, content: &Content, want: usize) -> Result<Vec<u8>> {
    let packed = |id: &ObjectId| -> Result<Option<Vec<u8>>> {
        match db.location(id)? {
            Some(loc) => Ok(Some(lake.read_at(id, &loc)?)),
            None => Ok(None),
        }
    };
    match content {
        Content::Whole(id) => {
            if let Some(mut b) = packed(id)? {
                b.truncate(want);
                return Ok(b);
            }
            // A loose object (POSIX-zone style import): read just the start of its file.
            for key in db.loose_keys_of(id)? {
                let p = lakefs::loose::path(lake.root(), &key);
                let Ok(f) = std::fs::File::open(&p) else {
                    continue;
                };
                let mut b = Vec::with_capacity(want.min(1 << 20));
                f.take(want as u64).read_to_end(&mut b).at(&p)?;
                return Ok(b);
            }
            Err(Error::MissingObject(*id))
        }
        Content::Chunked(list) => {
            let b = packed(list)?.ok_or(Error::MissingObject(*list))?;
            let list = lakefs::chunklist::ChunkList::decode(&b).map_err(|e| Error::CorruptObject { id: *list, why: e.to_string() })?;
            let mut out = Vec::new();
            for piece in &list.pieces {
                if out.len() >= want {
                    break;
                }
                match piece {
                    Piece::Chunk(cid, _) => out.extend_from_slice(&packed(cid)?.ok_or(Error::MissingObject(*cid))?),
                    Piece::Hole(n) => out.resize(out.len() + (*n).min((want - out.len()) as u64) as usize, 0),
                }
            }
            out.truncate(want);
            Ok(out)
        }
    }
}

fn remove(conn: &Connection, volume: &str, path: &str) -> rusqlite::Result<bool> {
    let id: Option<i64> = conn
        .prepare_cached("SELECT id FROM catalog_files WHERE volume=?1 AND path=?2")?
        .query_row(params![volume, path], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(false) };
    fts::remove(conn, id)?;
    conn.prepare_cached("DELETE FROM catalog_files WHERE id=?1")?.execute(params![id])?;
    Ok(true)
}

/// Indexes one file; returns whether it went into the full-text index (None: unchanged content, metadata only).
#[allow(clippy::too_many_arguments)]
fn put(
    lake: &Lake,
    db: &Db,
    batch: &mut fts::Batch,
    volume: &str,
    path: &str,
    size: u64,
    mtime: i64,
    content: &Content,
) -> Result<Option<bool>> {
    let conn = &db.conn;
    let err = |e| db.err(e);
    let cid = content.id();
    let known: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT id, content FROM catalog_files WHERE volume=?1 AND path=?2")
        .and_then(|mut s| s.query_row(params![volume, path], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(err)?;
    if let Some((id, old)) = &known {
        if old.as_slice() == cid.as_bytes() {
            conn.prepare_cached("UPDATE catalog_files SET mtime=?2, size=?3 WHERE id=?1")
                .and_then(|mut s| s.execute(params![id, props::iso_utc(mtime), size as i64]))
                .map_err(err)?;
            return Ok(None);
        }
    }
    // Files that may be text are read whole up to the full-text limit; others
    // only as far as type detection and image headers need.
    let want = if size <= fts::MAX_BODY { size as usize } else { props::IMAGE_HEAD };
    let head = read_head(lake, db, content, want)?;
    let truncated = (head.len() as u64) < size;
    let p = props::of(path, size, mtime, &head, truncated);
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO catalog_files(volume, path, name, ext, size, mtime, type, mime, content, taken, make, model, width, height) \
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT(volume, path) DO UPDATE SET name=excluded.name, ext=excluded.ext, size=excluded.size, \
             mtime=excluded.mtime, type=excluded.type, mime=excluded.mime, content=excluded.content, taken=excluded.taken, \
             make=excluded.make, model=excluded.model, width=excluded.width, height=excluded.height RETURNING id",
        )
        .and_then(|mut s| {
            s.query_row(
                params![
                    volume,
                    path,
                    p.name,
                    p.ext,
                    size as i64,
                    p.mtime,
                    p.coarse.as_str(),
                    p.mime,
                    cid.as_bytes(),
                    p.taken,
                    p.make,
                    p.model,
                    p.width,
                    p.height
                ],
                |r| r.get(0),
            )
        })
        .map_err(err)?;
    if known.is_some() {
        fts::remove(conn, id).map_err(err)?;
    }
    let body = (p.is_text && !truncated).then(|| String::from_utf8(head).ok()).flatten();
    let text = body.is_some();
    if let Some(body) = body {
        batch.push(conn, id, path, body).map_err(err)?;
    }
    Ok(Some(text))
}

fn plan(lake: &Lake, base: Option<&ObjectId>, new: &ObjectId, indexed: &dyn Fn(&[u8]) -> bool) -> Result<Vec<Todo>> {
    let mut changes = Vec::new();
    diff::trees_bytes(lake, base, Some(new), b"", &mut changes)?;
    let mut trees = Trees { lake, root: *new, dirs: HashMap::new() };
    let mut todo = Vec::with_capacity(changes.len());
    for c in changes {
        let rel = c.path.strip_prefix(b"/").unwrap_or(&c.path);
        let path = names::escape(rel);
        if c.kind == ChangeKind::Removed {
            if c.entry != "dir" {
                todo.push(Todo::Remove(path));
            }
            continue;
        }
        if c.entry == "dir" {
            continue;
        }
        match trees.file(rel)? {
            Some((size, mtime, content)) if indexed(rel) => todo.push(Todo::Put(path, size, mtime, content)),
            // Now a symlink, a device, outside the LAKE zone: whatever was there goes.
            _ if base.is_some() => todo.push(Todo::Remove(path)),
            _ => {}
        }
    }
    Ok(todo)
}

/// The tree the catalog of `volume` was last brought to.
pub(crate) fn indexed_tree(db: &Db, volume: &str) -> Result<Option<ObjectId>> {
    let b: Option<Vec<u8>> = db
        .conn
        .query_row("SELECT tree FROM catalog_state WHERE volume=?1", params![volume], |r| r.get(0))
        .optional()
        .map_err(|e| db.err(e))?;
    Ok(b.and_then(|b| ObjectId::from_slice(&b)))
}

/// See [`super::index_commit`]. The diff starts from the tree the catalog last
/// saw (so a crash between a commit and its indexing, or a catalog that is newer
/// than the volume, is caught up here), or indexes `new` whole when there is none.
pub fn index_commit(lake: &Lake, volume: &str, new: &ObjectId, indexed: &dyn Fn(&[u8]) -> bool) -> Result<IndexStats> {
    let base = {
        let db = lake.db();
        schema::ensure(&db)?;
        indexed_tree(&db, volume)?
    };
    if base.as_ref() == Some(new) {
        return Ok(IndexStats::default());
    }
    let (base, todo) = match plan(lake, base.as_ref(), new, indexed) {
        Ok(t) => (base, t),
        // The last indexed tree is gone (history pruned): start over.
        Err(Error::MissingObject(_)) if base.is_some() => (None, plan(lake, None, new, indexed)?),
        Err(e) => return Err(e),
    };
    apply(lake, volume, base.is_none(), new, &todo)
}

/// Rebuilds the catalog of `volume` from tree `tree` alone.
pub fn reindex(lake: &Lake, volume: &str, tree: &ObjectId, indexed: &dyn Fn(&[u8]) -> bool) -> Result<IndexStats> {
    {
        let db = lake.db();
        schema::ensure(&db)?;
    }
    let todo = plan(lake, None, tree, indexed)?;
    apply(lake, volume, true, tree, &todo)
}

fn apply(lake: &Lake, volume: &str, from_scratch: bool, new: &ObjectId, todo: &[Todo]) -> Result<IndexStats> {
    // The database lock is held for the whole pass: content is read through the
    // same handle as the rows are written, so only a batch of words is buffered.
    let db = lake.db();
    let err = |e| db.err(e);
    let tx = db.conn.unchecked_transaction().map_err(err)?;
    let mut stats = IndexStats::default();
    let mut batch = fts::Batch::default();
    if from_scratch {
        let others: i64 =
            tx.query_row("SELECT count(*) FROM catalog_files WHERE volume<>?1", params![volume], |r| r.get(0)).map_err(err)?;
        // The only volume: drop all words at once rather than row by row.
        let words = if others == 0 {
            "INSERT INTO catalog_fts(catalog_fts) VALUES('delete-all')"
        } else {
            "DELETE FROM catalog_fts WHERE rowid IN (SELECT id FROM catalog_files WHERE volume=?1)"
        };
        if others == 0 {
            tx.execute(words, []).map_err(err)?;
        } else {
            tx.execute(words, params![volume]).map_err(err)?;
        }
        stats.removed += tx.execute("DELETE FROM catalog_files WHERE volume=?1", params![volume]).map_err(err)? as u64;
    }
    for t in todo {
        match t {
            Todo::Remove(path) => {
                if remove(&tx, volume, path).map_err(err)? {
                    stats.removed += 1;
                }
            }
            Todo::Put(path, size, mtime, content) => {
                if let Some(text) = put(lake, &db, &mut batch, volume, path, *size, *mtime, content)? {
                    stats.files += 1;
                    stats.text_files += u64::from(text);
                }
            }
        }
    }
    batch.flush(&tx).map_err(err)?;
    let (now, _) = lakefs::util::now();
    tx.execute("INSERT OR REPLACE INTO catalog_state(volume, tree, updated) VALUES(?1, ?2, ?3)", params![volume, new.as_bytes(), now])
        .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(stats)
}
