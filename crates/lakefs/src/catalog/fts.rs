//! The full-text index: an FTS5 table over the path and body of every UTF-8
//! text file up to [`MAX_BODY`], its rowid the file's `catalog_files.id`.

use rusqlite::{params, Connection};

use crate::error::{Error, Result};
use crate::meta::Db;

/// Larger text files keep their type and properties but are not indexed for words.
pub const MAX_BODY: u64 = 1 << 20;

/// One search result.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Hit {
    pub path: String,
    /// A few words around the match, matched words in [brackets].
    pub snippet: String,
    /// BM25 rank: lower is better (SQLite's convention).
    pub rank: f64,
}

pub(crate) fn put(conn: &Connection, id: i64, path: &str, body: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO catalog_fts(rowid, path, body) VALUES(?1, ?2, ?3)")?
        .execute(params![id, path, body])?;
    Ok(())
}

pub(crate) fn remove(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM catalog_fts WHERE rowid = ?1")?
        .execute(params![id])?;
    Ok(())
}

/// Turns words as a user types them into an FTS5 query: every word must occur
/// (each one quoted, so FTS5 syntax characters in it are plain text); a trailing
/// `*` makes a word a prefix. None when there are no words.
pub fn match_expr(words: &str) -> Option<String> {
    let terms: Vec<String> = words
        .split_whitespace()
        .filter_map(|w| {
            let (w, prefix) = match w.strip_suffix('*') {
                Some(s) => (s, true),
                None => (w, false),
            };
            (!w.is_empty()).then(|| {
                format!(
                    "\"{}\"{}",
                    w.replace('"', "\"\""),
                    if prefix { "*" } else { "" }
                )
            })
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Text files of `volume` containing all `words` (in their path or body), best first.
pub fn search(db: &Db, volume: &str, words: &str, limit: usize) -> Result<Vec<Hit>> {
    let Some(expr) = match_expr(words) else {
        return Err(Error::Invalid(
            "search: give at least one word to look for".into(),
        ));
    };
    if !super::schema::exists(db)? {
        return Ok(Vec::new());
    }
    let mut s = db
        .conn
        .prepare_cached(
            "SELECT f.path, snippet(catalog_fts, 1, '[', ']', '…', 12), bm25(catalog_fts) AS r \
             FROM catalog_fts JOIN catalog_files f ON f.id = catalog_fts.rowid \
             WHERE catalog_fts MATCH ?1 AND f.volume = ?2 ORDER BY r, f.path LIMIT ?3",
        )
        .map_err(|e| db.err(e))?;
    let rows = s
        .query_map(params![expr, volume, limit as i64], |r| {
            Ok(Hit {
                path: r.get(0)?,
                snippet: r.get(1)?,
                rank: r.get(2)?,
            })
        })
        .map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| db.err(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_terms() {
        assert_eq!(
            match_expr("kiwi  mango").as_deref(),
            Some("\"kiwi\" \"mango\"")
        );
        assert_eq!(
            match_expr("say \"hi\" OR x").as_deref(),
            Some("\"say\" \"\"\"hi\"\"\" \"OR\" \"x\"")
        );
        assert_eq!(match_expr("lak*").as_deref(), Some("\"lak\"*"));
        assert_eq!(match_expr("  * "), None);
    }
}
