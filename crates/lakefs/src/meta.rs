//! The metadata database (SQLite, WAL): the object index, chunk lists, loose
//! objects, commits, refs and their log. Everything here can be rebuilt from the
//! objects themselves; it exists so that lookups never scan packs.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::{Kind, Location};

pub const FILE_NAME: &str = "meta.db";
pub const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS info(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS packs(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS objects(
    id BLOB PRIMARY KEY, kind INTEGER NOT NULL, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
    stored_len INTEGER NOT NULL, raw_len INTEGER NOT NULL, compressed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS loose(key BLOB PRIMARY KEY, blob BLOB NOT NULL, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS loose_blob ON loose(blob);
CREATE TABLE IF NOT EXISTS commits(
    id BLOB PRIMARY KEY, tree BLOB NOT NULL, parent BLOB, time INTEGER NOT NULL,
    scope TEXT NOT NULL, trigger TEXT NOT NULL, message TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs(name TEXT PRIMARY KEY, commit_id BLOB NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reflog(
    seq INTEGER PRIMARY KEY, name TEXT NOT NULL, old BLOB, new BLOB NOT NULL, time INTEGER NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pins(id BLOB PRIMARY KEY, reason TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS generations(number INTEGER PRIMARY KEY, commit_id BLOB NOT NULL, created INTEGER NOT NULL, pinned INTEGER NOT NULL);
";

/// Maps a SQLite error to ours; a full disk becomes [`Error::DiskFull`].
pub fn db_error(path: &Path, e: rusqlite::Error) -> Error {
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ErrorCode::DiskFull {
            return Error::DiskFull { path: path.to_owned(), during: "updating the metadata database".into() };
        }
    }
    Error::Db { path: path.to_owned(), source: e }
}

pub struct Db {
    pub conn: Connection,
    path: std::path::PathBuf,
}

fn blob_id(b: Vec<u8>) -> rusqlite::Result<ObjectId> {
    ObjectId::from_slice(&b).ok_or_else(|| rusqlite::Error::InvalidColumnType(0, "id".into(), rusqlite::types::Type::Blob))
}

impl Db {
    pub fn open(lake_root: &Path, create: bool) -> Result<Db> {
        Self::open_mode(lake_root, create, None)
    }

    /// Opens read-only, for lakes on read-only mounts and for callers who may read
    /// the lake but not write it. A live WAL is read like any reader reads it;
    /// without one (a clean lake, or a mount where no WAL index can be made) the
    /// file is opened immutable, touching nothing.
    pub fn open_read_only(lake_root: &Path) -> Result<Db> {
        let wal = lake_root.join(format!("{FILE_NAME}-wal"));
        let shm = lake_root.join(format!("{FILE_NAME}-shm"));
        if wal.exists() && shm.exists() {
            if let Ok(db) = Self::open_mode(lake_root, false, Some(false)) {
                return Ok(db);
            }
        }
        Self::open_mode(lake_root, false, Some(true))
    }

    /// `read_only`: None for read-write, Some(immutable) for read-only.
    fn open_mode(lake_root: &Path, create: bool, read_only: Option<bool>) -> Result<Db> {
        let path = lake_root.join(FILE_NAME);
        if !create && !path.exists() {
            return Err(Error::MissingDb { path });
        }
        let conn = match read_only {
            Some(immutable) => {
                use rusqlite::OpenFlags;
                let uri = format!("file:{}{}", path.display(), if immutable { "?immutable=1" } else { "" });
                Connection::open_with_flags(uri, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI)
            }
            None => Connection::open(&path),
        }
        .map_err(|e| Error::Db { path: path.clone(), source: e })?;
        if create {
            // The index names every object and path: root's (or the owner's) only.
            // SQLite gives its -wal and -shm files the database file's mode.
            crate::privacy::set_mode(&path, crate::privacy::FILE_MODE)?;
        }
        let db = Db { conn, path };
        db.conn.execute_batch("PRAGMA busy_timeout=30000;").map_err(|e| db.err(e))?;
        if read_only.is_none() {
            db.conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;").map_err(|e| db.err(e))?;
        }
        if create {
            db.conn.execute_batch(SCHEMA).map_err(|e| db.err(e))?;
            db.conn
                .execute("INSERT OR REPLACE INTO info(key, value) VALUES('schema_version', ?1)", params![SCHEMA_VERSION.to_string()])
                .map_err(|e| db.err(e))?;
        } else {
            let v: Option<String> = db
                .conn
                .query_row("SELECT value FROM info WHERE key='schema_version'", [], |r| r.get(0))
                .optional()
                .map_err(|e| db.err(e))?;
            match v.and_then(|v| v.parse::<i64>().ok()) {
                Some(SCHEMA_VERSION) => {}
                other => {
                    return Err(Error::Invalid(format!(
                        "{}: metadata schema version {:?} is not supported (expected {SCHEMA_VERSION})",
                        db.path.display(),
                        other
                    )))
                }
            }
        }
        Ok(db)
    }

    pub fn err(&self, e: rusqlite::Error) -> Error {
        db_error(&self.path, e)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn location(&self, id: &ObjectId) -> Result<Option<Location>> {
        self.conn
            .prepare_cached("SELECT o.kind, p.name, o.offset, o.stored_len, o.raw_len, o.compressed FROM objects o JOIN packs p ON p.id = o.pack WHERE o.id=?1")
            .and_then(|mut s| {
                s.query_row(params![id.as_bytes()], |r| {
                    Ok(Location {
                        kind: Kind::from_u8(r.get::<_, u8>(0)?).unwrap_or(Kind::Data),
                        pack: r.get(1)?,
                        offset: r.get::<_, i64>(2)? as u64,
                        stored_len: r.get(3)?,
                        raw_len: r.get(4)?,
                        compressed: r.get(5)?,
                    })
                })
                .optional()
            })
            .map_err(|e| self.err(e))
    }

    pub fn has_object(&self, id: &ObjectId) -> Result<bool> {
        Ok(self.location(id)?.is_some())
    }

    pub fn loose_keys_of(&self, blob: &ObjectId) -> Result<Vec<ObjectId>> {
        let mut s = self.conn.prepare_cached("SELECT key FROM loose WHERE blob=?1").map_err(|e| self.err(e))?;
        let rows = s.query_map(params![blob.as_bytes()], |r| blob_id(r.get(0)?)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn get_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        self.conn
            .prepare_cached("SELECT commit_id FROM refs WHERE name=?1")
            .and_then(|mut s| s.query_row(params![name], |r| blob_id(r.get(0)?)).optional())
            .map_err(|e| self.err(e))
    }

    pub fn refs(&self) -> Result<Vec<(String, ObjectId)>> {
        let mut s = self.conn.prepare("SELECT name, commit_id FROM refs ORDER BY name").map_err(|e| self.err(e))?;
        let rows = s.query_map([], |r| Ok((r.get(0)?, blob_id(r.get(1)?)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Commit ids whose hex form starts with `prefix` (at most `limit`).
    pub fn commits_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<ObjectId>> {
        let mut hi = prefix.to_vec();
        // Upper bound: the prefix incremented as a big-endian number (or open-ended if all 0xff).
        let upper = loop {
            match hi.pop() {
                None => break None,
                Some(0xff) => continue,
                Some(b) => {
                    hi.push(b + 1);
                    break Some(hi);
                }
            }
        };
        let sql = if upper.is_some() {
            "SELECT id FROM commits WHERE id >= ?1 AND id < ?2 LIMIT ?3"
        } else {
            "SELECT id FROM commits WHERE id >= ?1 AND ?2 IS NULL LIMIT ?3"
        };
        let mut s = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = s.query_map(params![prefix, upper, limit as i64], |r| blob_id(r.get(0)?)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn all_commit_ids(&self) -> Result<Vec<ObjectId>> {
        let mut s = self.conn.prepare("SELECT id FROM commits").map_err(|e| self.err(e))?;
        let rows = s.query_map([], |r| blob_id(r.get(0)?)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn pins(&self) -> Result<Vec<ObjectId>> {
        let mut s = self.conn.prepare("SELECT id FROM pins").map_err(|e| self.err(e))?;
        let rows = s.query_map([], |r| blob_id(r.get(0)?)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// All indexed records, ordered by pack and offset (sequential reads for verify).
    pub fn all_locations(&self) -> Result<Vec<(ObjectId, Location)>> {
        let mut s = self
            .conn
            .prepare(
                "SELECT o.id, o.kind, p.name, o.offset, o.stored_len, o.raw_len, o.compressed \
                 FROM objects o JOIN packs p ON p.id = o.pack ORDER BY o.pack, o.offset",
            )
            .map_err(|e| self.err(e))?;
        let rows = s
            .query_map([], |r| {
                Ok((
                    blob_id(r.get(0)?)?,
                    Location {
                        kind: Kind::from_u8(r.get::<_, u8>(1)?).unwrap_or(Kind::Data),
                        pack: r.get(2)?,
                        offset: r.get::<_, i64>(3)? as u64,
                        stored_len: r.get(4)?,
                        raw_len: r.get(5)?,
                        compressed: r.get(6)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn pack_names(&self) -> Result<Vec<(String, u64)>> {
        let mut s = self.conn.prepare("SELECT name, size FROM packs ORDER BY name").map_err(|e| self.err(e))?;
        let rows = s.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn all_loose(&self) -> Result<Vec<(ObjectId, ObjectId, u64)>> {
        let mut s = self.conn.prepare("SELECT key, blob, size FROM loose").map_err(|e| self.err(e))?;
        let rows =
            s.query_map([], |r| Ok((blob_id(r.get(0)?)?, blob_id(r.get(1)?)?, r.get::<_, i64>(2)? as u64))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Registers packs and indexes records in them, inside the caller's transaction.
    pub fn insert_packs_and_objects(
        tx: &rusqlite::Transaction,
        packs: &[(String, u64)],
        objects: &[(ObjectId, Location)],
        now: i64,
    ) -> rusqlite::Result<()> {
        let mut ids = std::collections::HashMap::new();
        let mut s = tx.prepare_cached("INSERT INTO packs(name, size, created) VALUES(?1, ?2, ?3)")?;
        for (name, size) in packs {
            s.execute(params![name, *size as i64, now])?;
            ids.insert(name.as_str(), tx.last_insert_rowid());
        }
        let mut s = tx.prepare_cached(
            "INSERT OR IGNORE INTO objects(id, kind, pack, offset, stored_len, raw_len, compressed) VALUES(?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for (id, l) in objects {
            let pack = ids.get(l.pack.as_str()).copied().ok_or(rusqlite::Error::InvalidQuery)?;
            s.execute(params![id.as_bytes(), l.kind as u8, pack, l.offset as i64, l.stored_len, l.raw_len, l.compressed])?;
        }
        Ok(())
    }

    pub fn count(&self, sql: &str) -> Result<i64> {
        self.conn.query_row(sql, [], |r| r.get(0)).map_err(|e| self.err(e))
    }
}
