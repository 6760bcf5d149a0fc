//! A write session: new objects go to fresh packs (and loose objects) first; then
//! everything is made durable; then one SQLite transaction indexes it and moves
//! refs. A session that fails or is killed before that transaction leaves nothing
//! reachable, and the next writer deletes its packs.

use std::collections::HashSet;
use std::sync::Mutex;

use rusqlite::params;

use crate::commit::Commit;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::lake::{Lake, WriteLock};
use crate::pack::{self, Kind, Location, PackWriter};
use crate::tree::{Meta, Tree};

/// zstd level for whole small files, trees and commits: they are where a
/// system tree's bytes are (thousands of small files compress alone, so the
/// level matters more than for big chunks), and where time per file is
/// dominated by the walk, not by compression.
pub const ZSTD_LEVEL_SMALL: i32 = 6;
/// zstd level for chunks of large files: the throughput path; 3 is zstd's (and
/// restic's) default balance.
pub const ZSTD_LEVEL_CHUNK: i32 = 3;

/// A loose object recorded by the session: (key, object id, size).
type LooseRow = (ObjectId, ObjectId, u64);

pub struct WriteSession<'a> {
    lake: &'a Lake,
    _lock: WriteLock,
    packs: Mutex<(PackWriter, Vec<(ObjectId, Location)>)>,
    known: Mutex<HashSet<ObjectId>>,
    loose: Mutex<(HashSet<ObjectId>, Vec<LooseRow>)>,
    written_bytes: std::sync::atomic::AtomicU64,
    done: bool,
}

/// A ref move to make in the session's final transaction.
pub struct RefUpdate {
    pub name: String,
    /// The commit the ref must still point at (None: the ref must not exist yet).
    pub expected: Option<ObjectId>,
    pub new: ObjectId,
    pub reason: String,
}

impl<'a> WriteSession<'a> {
    pub fn begin(lake: &'a Lake) -> Result<Self> {
        let lock = lake.lock_for_write()?;
        let (known, loose) = {
            let db = lake.db();
            let mut s = db.conn.prepare("SELECT id FROM objects").map_err(|e| db.err(e))?;
            let known = s
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(|e| db.err(e))?;
            let loose = db.all_loose()?;
            (
                known.iter().filter_map(|b| ObjectId::from_slice(b)).collect::<HashSet<_>>(),
                loose.into_iter().map(|l| l.0).collect::<HashSet<_>>(),
            )
        };
        Ok(WriteSession {
            lake,
            _lock: lock,
            packs: Mutex::new((PackWriter::new(&lake.root().join(crate::lake::PACK_DIR)), Vec::new())),
            known: Mutex::new(known),
            loose: Mutex::new((loose, Vec::new())),
            written_bytes: Default::default(),
            done: false,
        })
    }

    pub fn lake(&self) -> &Lake {
        self.lake
    }

    /// Bytes appended to packs so far (after compression).
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn claim(&self, id: &ObjectId) -> bool {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(*id)
    }

    /// Stores `raw` under its known id unless the lake already has it. Safe to
    /// call from many threads: compression runs outside the pack lock.
    pub fn put_with_id(&self, id: ObjectId, kind: Kind, raw: &[u8]) -> Result<bool> {
        self.put_at_level(id, kind, raw, ZSTD_LEVEL_SMALL)
    }

    /// Stores one chunk of a large file (see [`ZSTD_LEVEL_CHUNK`]).
    pub fn put_chunk(&self, id: ObjectId, raw: &[u8]) -> Result<bool> {
        self.put_at_level(id, Kind::Data, raw, ZSTD_LEVEL_CHUNK)
    }

    fn put_at_level(&self, id: ObjectId, kind: Kind, raw: &[u8], level: i32) -> Result<bool> {
        if !self.claim(&id) {
            return Ok(false);
        }
        let rec = pack::prepare(id, kind, raw, level);
        let mut g = self.packs.lock().unwrap_or_else(|p| p.into_inner());
        let loc = g.0.append(&rec)?;
        self.written_bytes.fetch_add((pack::RECORD_HEADER + rec.bytes.len()) as u64, std::sync::atomic::Ordering::Relaxed);
        g.1.push((id, loc));
        Ok(true)
    }

    pub fn put(&self, kind: Kind, raw: &[u8]) -> Result<ObjectId> {
        let id = ObjectId::hash(raw);
        self.put_with_id(id, kind, raw)?;
        Ok(id)
    }

    pub fn put_tree(&self, tree: &Tree) -> Result<ObjectId> {
        self.put(Kind::Tree, &tree.encode())
    }

    pub fn has_loose(&self, key: &ObjectId) -> bool {
        self.loose.lock().unwrap_or_else(|p| p.into_inner()).0.contains(key)
    }

    /// Records a loose object written by [`crate::loose::write`]; returns false if
    /// another thread already did.
    pub fn note_loose(&self, key: ObjectId, content: ObjectId, size: u64) -> bool {
        let mut g = self.loose.lock().unwrap_or_else(|p| p.into_inner());
        if !g.0.insert(key) {
            return false;
        }
        g.1.push((key, content, size));
        true
    }

    /// Writes a loose object (hard-linkable, carrying `meta`) whose content `fill`
    /// writes and names (content id, size), unless one with that key is present.
    pub fn put_loose_stream(
        &self,
        meta: &Meta,
        fill: impl FnOnce(&mut std::fs::File) -> Result<(ObjectId, u64)>,
    ) -> Result<(ObjectId, u64)> {
        let (id, key, size) = crate::loose::write_streamed(self.lake.root(), meta, fill, |k| !self.has_loose(k))?;
        self.note_loose(key, id, size);
        Ok((id, size))
    }

    /// Stores a commit object and returns its id (indexed at [`finish`](Self::finish)).
    pub fn put_commit(&self, c: &Commit) -> Result<ObjectId> {
        self.put(Kind::Commit, &c.encode())
    }

    /// Makes every new object durable, then indexes them, records `commits` and
    /// moves `refs`, all in one transaction.
    pub fn finish(mut self, commits: &[(ObjectId, Commit)], refs: &[RefUpdate]) -> Result<()> {
        let r = self.finish_inner(commits, refs);
        self.done = true;
        if r.is_err() {
            self.packs.lock().unwrap_or_else(|p| p.into_inner()).0.abandon();
            // The transaction did not commit, so packs it would have indexed are
            // orphans: give their space back now (we still hold the writer lock).
            let _ = self.lake.clean_orphans();
        }
        r
    }

    fn finish_inner(&mut self, commits: &[(ObjectId, Commit)], refs: &[RefUpdate]) -> Result<()> {
        let (packs, objects) = {
            let mut g = self.packs.lock().unwrap_or_else(|p| p.into_inner());
            let packs = g.0.finish()?;
            (packs, std::mem::take(&mut g.1))
        };
        let loose = std::mem::take(&mut self.loose.lock().unwrap_or_else(|p| p.into_inner()).1);
        if !loose.is_empty() {
            self.lake.syncfs()?;
        }
        let (now, _) = crate::util::now();
        let mut db = self.lake.db();
        let dbpath = db.path().to_owned();
        let dberr = |e| crate::meta::db_error(&dbpath, e);
        let tx = db.conn.transaction().map_err(dberr)?;
        let res = (|| -> rusqlite::Result<Option<Error>> {
            {
                crate::meta::Db::insert_packs_and_objects(&tx, &packs, &objects, now)?;
                let mut s = tx.prepare_cached("INSERT OR IGNORE INTO loose(key, blob, size) VALUES(?1, ?2, ?3)")?;
                for (k, b, size) in &loose {
                    s.execute(params![k.as_bytes(), b.as_bytes(), *size as i64])?;
                }
                let mut s = tx.prepare_cached(
                    "INSERT OR IGNORE INTO commits(id, tree, parent, time, scope, trigger, message) VALUES(?1,?2,?3,?4,?5,?6,?7)",
                )?;
                for (id, c) in commits {
                    let parent = c.parents.first().map(|p| p.as_bytes().to_vec());
                    s.execute(params![id.as_bytes(), c.tree.as_bytes(), parent, c.time, c.scope, c.trigger, c.message])?;
                }
            }
            for u in refs {
                let cur: Option<Vec<u8>> = tx
                    .query_row("SELECT commit_id FROM refs WHERE name=?1", params![u.name], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
                let cur = cur.and_then(|b| ObjectId::from_slice(&b));
                if cur != u.expected {
                    let show = |o: Option<ObjectId>| o.map_or("nothing".to_string(), |i| i.to_string());
                    return Ok(Some(Error::RefRace { name: u.name.clone(), expected: show(u.expected), actual: show(cur) }));
                }
                tx.execute(
                    "INSERT OR REPLACE INTO refs(name, commit_id, updated) VALUES(?1, ?2, ?3)",
                    params![u.name, u.new.as_bytes(), now],
                )?;
                tx.execute(
                    "INSERT INTO reflog(name, old, new, time, reason) VALUES(?1, ?2, ?3, ?4, ?5)",
                    params![u.name, cur.map(|c| c.as_bytes().to_vec()), u.new.as_bytes(), now, u.reason],
                )?;
            }
            Ok(None)
        })();
        match res {
            Ok(None) => tx.commit().map_err(dberr),
            Ok(Some(race)) => Err(race),
            Err(e) => Err(dberr(e)),
        }
    }
}

impl Drop for WriteSession<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.packs.lock().unwrap_or_else(|p| p.into_inner()).0.abandon();
        }
    }
}
