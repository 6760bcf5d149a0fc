//! The catalog's tables in the lake's meta.db. They are created on first use
//! (`CREATE ... IF NOT EXISTS`) rather than by meta's schema, so lakes made before
//! the catalog existed gain it without a schema version change. Layout and
//! meaning: docs/catalog.md.

use rusqlite::OptionalExtension;

use lakefs::error::Result;
use lakefs::meta::Db;

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
CREATE TABLE IF NOT EXISTS catalog_state(volume TEXT PRIMARY KEY, tree BLOB NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS catalog_views(
    volume TEXT NOT NULL, name TEXT NOT NULL, query TEXT NOT NULL, created INTEGER NOT NULL,
    PRIMARY KEY(volume, name)
);
";

/// The full-text table is contentless (bodies are not stored twice: snippets
/// are cut from the file read back from the lake) with cheap deletes, and
/// buffers 16 MiB of terms before writing a segment (the default 1 MiB makes
/// indexing an untar mostly segment merging).
const FTS: &str = "
CREATE VIRTUAL TABLE catalog_fts USING fts5(path, body, content = '', contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 2');
INSERT INTO catalog_fts(catalog_fts, rank) VALUES('hashsize', 16777216);
";

/// Creates the catalog tables if they are missing (writers).
pub fn ensure(db: &Db) -> Result<()> {
    let err = |e| db.err(e);
    db.conn.execute_batch(SCHEMA).map_err(err)?;
    // Who made a view (uid; 0 for views made before owners were recorded, and by root).
    if !has_column(db, "catalog_views", "owner")? {
        db.conn.execute_batch("ALTER TABLE catalog_views ADD COLUMN owner INTEGER NOT NULL DEFAULT 0").map_err(err)?;
    }
    let fts: Option<String> = db
        .conn
        .query_row("SELECT sql FROM sqlite_master WHERE type='table' AND name='catalog_fts'", [], |r| r.get(0))
        .optional()
        .map_err(err)?;
    match fts {
        Some(sql) if sql.contains("contentless_delete") => Ok(()),
        old => {
            // Missing, or the first layout (which stored every body): start the words
            // over; forgetting the indexed trees makes the next pass index everything.
            let tx = db.conn.unchecked_transaction().map_err(err)?;
            if old.is_some() {
                tx.execute_batch("DROP TABLE catalog_fts; DELETE FROM catalog_state;").map_err(err)?;
            }
            tx.execute_batch(FTS).map_err(err)?;
            tx.commit().map_err(err)
        }
    }
}

/// True when `table` has `column`.
pub fn has_column(db: &Db, table: &str, column: &str) -> Result<bool> {
    let mut s = db.conn.prepare(&format!("PRAGMA table_info({table})")).map_err(|e| db.err(e))?;
    let names =
        s.query_map([], |r| r.get::<_, String>(1)).map_err(|e| db.err(e))?.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| db.err(e))?;
    Ok(names.iter().any(|n| n == column))
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
