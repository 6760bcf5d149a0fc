//! The catalog's tables in the lake's meta.db. They are created on first use
//! (`CREATE ... IF NOT EXISTS`) rather than by meta's schema, so lakes made before
//! the catalog existed gain it without a schema version change. Layout and
//! meaning: docs/catalog.md.

use crate::error::Result;
use crate::meta::Db;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS catalog_files(
    id INTEGER PRIMARY KEY,
    volume TEXT NOT NULL,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    ext TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime TEXT NOT NULL,
    type TEXT NOT NULL,
    mime TEXT NOT NULL,
    content BLOB NOT NULL,
    taken TEXT,
    make TEXT,
    model TEXT,
    width INTEGER,
    height INTEGER,
    UNIQUE(volume, path)
);
CREATE INDEX IF NOT EXISTS catalog_files_type ON catalog_files(volume, type, taken);
CREATE VIRTUAL TABLE IF NOT EXISTS catalog_fts USING fts5(path, body, tokenize = 'unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS catalog_state(volume TEXT PRIMARY KEY, tree BLOB NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_views(
    volume TEXT NOT NULL, name TEXT NOT NULL, query TEXT NOT NULL, created INTEGER NOT NULL,
    PRIMARY KEY(volume, name)
);
";

/// Creates the catalog tables if they are missing (writers).
pub fn ensure(db: &Db) -> Result<()> {
    db.conn.execute_batch(SCHEMA).map_err(|e| db.err(e))
}

/// True when the catalog tables exist. Readers ask instead of creating them, so
/// a lake on a read-only mount still answers (with an empty catalog).
pub fn exists(db: &Db) -> Result<bool> {
    db.conn
        .prepare_cached("SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('catalog_files', 'catalog_views')")
        .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
        .map(|n| n == 2)
        .map_err(|e| db.err(e))
}
