//! The full-text index: an FTS5 table over the path and body of every UTF-8
//! text file up to [`MAX_BODY`], its rowid the file's `catalog_files.id`.

use rusqlite::{params, Connection};

use crate::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::Content;

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

/// Bodies waiting to go into the index. FTS5 writes the terms it holds in
/// memory out as a new segment whenever another statement of the transaction
/// opens a savepoint, as every upsert of `catalog_files` does; inserting each
/// body right after its file's row makes indexing an untar mostly segment
/// merging. So the bodies of many files go in back to back.
#[derive(Default)]
pub(crate) struct Batch {
    rows: Vec<(i64, String, String)>,
    bytes: usize,
}

/// A batch is written when it holds this much text or this many files.
const BATCH_BYTES: usize = 32 << 20;
const BATCH_ROWS: usize = 4096;

impl Batch {
    pub(crate) fn push(&mut self, conn: &Connection, id: i64, path: &str, body: String) -> rusqlite::Result<()> {
        self.bytes += body.len() + path.len();
        self.rows.push((id, path.to_owned(), body));
        if self.bytes >= BATCH_BYTES || self.rows.len() >= BATCH_ROWS {
            self.flush(conn)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let mut insert = conn.prepare_cached("INSERT INTO catalog_fts(rowid, path, body) VALUES(?1, ?2, ?3)")?;
        for (id, path, body) in &self.rows {
            insert.execute(params![id, path, body])?;
        }
        self.rows.clear();
        self.bytes = 0;
        Ok(())
    }
}

pub(crate) fn remove(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM catalog_fts WHERE rowid = ?1")?.execute(params![id])?;
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
            (!w.is_empty()).then(|| format!("\"{}\"{}", w.replace('"', "\"\""), if prefix { "*" } else { "" }))
        })
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// Text files of `volume` containing all `words` (in their path or body), best
/// first, with snippets cut from the files as committed. Everything matches: this is
/// for who may read the whole lake; a mount answers its callers with
/// `volume::visible::search` instead.
pub fn search(lake: &Lake, volume: &str, words: &str, limit: usize) -> Result<Vec<Hit>> {
    let found = matches(lake, volume, words, Some(limit))?;
    let terms = query_terms(words);
    let mut hits = Vec::with_capacity(found.len());
    for (path, content, rank) in found {
        // Bodies are not stored in the index: cut the snippet from the file as committed.
        let mut body = Vec::new();
        lake.write_content(&content, &mut body)?;
        let snippet = snippet(&String::from_utf8_lossy(&body), &terms, SNIPPET_WORDS);
        hits.push(Hit { path, snippet, rank });
    }
    Ok(hits)
}

/// The text files of `volume` containing all `words`, best first (at most `limit`):
/// path, content and BM25 rank.
pub fn matches(lake: &Lake, volume: &str, words: &str, limit: Option<usize>) -> Result<Vec<(String, Content, f64)>> {
    let Some(expr) = match_expr(words) else {
        return Err(Error::EmptySearch);
    };
    let limit = limit.unwrap_or(usize::MAX).min(i64::MAX as usize) as i64;
    let found: Vec<(String, Content, f64)> = {
        let db = lake.db();
        if !super::schema::exists(&db)? {
            return Ok(Vec::new());
        }
        let mut s = db
            .conn
            .prepare_cached(
                "SELECT f.path, f.content, bm25(catalog_fts) AS r \
                 FROM catalog_fts JOIN catalog_files f ON f.id = catalog_fts.rowid \
                 WHERE catalog_fts MATCH ?1 AND f.volume = ?2 ORDER BY r, f.path LIMIT ?3",
            )
            .map_err(|e| db.err(e))?;
        let rows = s
            .query_map(params![expr, volume, limit], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, f64>(2)?)))
            .map_err(|e| db.err(e))?;
        let rows = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| db.err(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for (path, id, rank) in rows {
            let id = ObjectId::from_slice(&id).ok_or_else(|| Error::BadRow { path: path.clone() })?;
            // Large text files are chunked; the object index says which form this is.
            let chunked = db.location(&id)?.is_some_and(|l| l.kind == lakefs::pack::Kind::ChunkList);
            out.push((path, if chunked { Content::Chunked(id) } else { Content::Whole(id) }, rank));
        }
        out
    };
    Ok(found)
}

/// Words in a snippet.
pub const SNIPPET_WORDS: usize = 12;

/// The words of a search, lower-case, with whether each is a prefix (`lak*`).
pub fn query_terms(words: &str) -> Vec<(String, bool)> {
    words
        .split_whitespace()
        .flat_map(|w| {
            let prefix = w.ends_with('*');
            let toks: Vec<String> = tokens(w).map(|(a, b)| w[a..b].to_lowercase()).collect();
            let n = toks.len();
            toks.into_iter().enumerate().map(move |(i, t)| (t, prefix && i + 1 == n))
        })
        .collect()
}

/// Byte ranges of the words of `s` (runs of letters and digits, as FTS5's
/// unicode61 tokenizer splits them).
fn tokens(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut it = s.char_indices().peekable();
    std::iter::from_fn(move || {
        while it.peek().is_some_and(|(_, c)| !c.is_alphanumeric()) {
            it.next();
        }
        let (start, _) = *it.peek()?;
        let mut end = start;
        while let Some(&(i, c)) = it.peek() {
            if !c.is_alphanumeric() {
                break;
            }
            end = i + c.len_utf8();
            it.next();
        }
        Some((start, end))
    })
}

/// About `width` words around the first match, matched words in [brackets],
/// `…` where text was left out, whitespace collapsed.
pub fn snippet(body: &str, terms: &[(String, bool)], width: usize) -> String {
    let toks: Vec<(usize, usize)> = tokens(body).collect();
    let hit = |t: &(usize, usize)| {
        let w = body[t.0..t.1].to_lowercase();
        terms.iter().any(|(q, prefix)| if *prefix { w.starts_with(q.as_str()) } else { w == *q })
    };
    if toks.is_empty() {
        return String::new();
    }
    let first = toks.iter().position(hit).unwrap_or(0);
    let from = first.saturating_sub(width / 3);
    let to = (from + width).min(toks.len());
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = toks[from].0;
    for t in &toks[from..to] {
        out.push_str(&body[at..t.0]);
        if hit(t) {
            out.push('[');
            out.push_str(&body[t.0..t.1]);
            out.push(']');
        } else {
            out.push_str(&body[t.0..t.1]);
        }
        at = t.1;
    }
    if to < toks.len() {
        out.push('…');
    } else {
        out.push_str(&body[at..]);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_become_quoted_terms() {
        assert_eq!(match_expr("kiwi  mango").as_deref(), Some("\"kiwi\" \"mango\""));
        assert_eq!(match_expr("say \"hi\" OR x").as_deref(), Some("\"say\" \"\"\"hi\"\"\" \"OR\" \"x\""));
        assert_eq!(match_expr("lak*").as_deref(), Some("\"lak\"*"));
        assert_eq!(match_expr("  * "), None);
    }

    #[test]
    fn snippets_bracket_the_words_around_the_first_match() {
        let body = "one two three four five six seven Kiwi eight nine ten eleven twelve thirteen fourteen";
        let t = query_terms("kiwi");
        assert_eq!(snippet(body, &t, 6), "…six seven [Kiwi] eight nine ten…");
        assert_eq!(snippet("A kiwi,\n\n  a lime.", &t, 12), "A [kiwi], a lime.");
        assert_eq!(snippet("lakes and lakefs", &query_terms("lake*"), 12), "[lakes] and [lakefs]");
        // No match in the body (the path matched): the start of the file.
        assert_eq!(snippet("alpha beta", &t, 12), "alpha beta");
        assert_eq!(snippet("", &t, 12), "");
        assert_eq!(query_terms("Foo-bar baz*"), [("foo".into(), false), ("bar".into(), false), ("baz".into(), true)]);
    }
}
