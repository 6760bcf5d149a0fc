//! Saved views: a named query per volume, shown by the driver as the directory
//! `<mount>/views/NAME/` with one entry per matching file.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, params_from_iter, OptionalExtension};

use super::query;
use super::schema;
use crate::error::{Error, Result};
use lakefs::lake::Lake;
use lakefs::meta::Db;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ViewInfo {
    pub name: String,
    pub query: String,
    /// Unix seconds.
    pub created: i64,
}

/// A view name is one directory entry: not empty, no '/', not '.' or '..'.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) || name.len() > 255 {
        return Err(Error::BadViewName { name: name.to_owned() });
    }
    Ok(())
}

fn compile(q: &str) -> Result<query::Compiled> {
    Ok(query::compile(q)?)
}

/// Mount-relative paths of the files of `volume` that `q` matches, sorted.
pub fn matches_in(db: &Db, volume: &str, c: &query::Compiled) -> Result<Vec<String>> {
    if !schema::exists(db)? {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT f.path FROM catalog_files f WHERE f.volume = ?1 AND {} ORDER BY f.path", c.where_sql);
    let mut s = db.conn.prepare_cached(&sql).map_err(|e| db.err(e))?;
    let args = std::iter::once(rusqlite::types::Value::Text(volume.to_owned())).chain(c.params.iter().cloned());
    let rows = s.query_map(params_from_iter(args), |r| r.get::<_, String>(0)).map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| db.err(e).into())
}

/// Files that query `q` matches (errors name the position of a bad query).
pub fn matches(lake: &Lake, volume: &str, q: &str) -> Result<Vec<String>> {
    let c = compile(q)?;
    matches_in(&lake.db(), volume, &c)
}

/// Saves view `name` for `owner` (a uid; replacing one of that name only when
/// `replace`); returns how many files it matches now (all of them, whoever may read them).
pub fn create(lake: &Lake, volume: &str, name: &str, q: &str, replace: bool, owner: u32) -> Result<usize> {
    check_name(name)?;
    let c = compile(q)?;
    let db = lake.db();
    schema::ensure(&db)?;
    let exists: Option<String> = db
        .conn
        .query_row("SELECT query FROM catalog_views WHERE volume=?1 AND name=?2", params![volume, name], |r| r.get(0))
        .optional()
        .map_err(|e| db.err(e))?;
    if let (Some(old), false) = (exists, replace) {
        return Err(Error::ViewExists { volume: volume.to_owned(), name: name.to_owned(), query: old });
    }
    let (now, _) = lakefs::util::now();
    db.conn
        .execute(
            "INSERT OR REPLACE INTO catalog_views(volume, name, query, created, owner) VALUES(?1, ?2, ?3, ?4, ?5)",
            params![volume, name, q, now, owner],
        )
        .map_err(|e| db.err(e))?;
    Ok(matches_in(&db, volume, &c)?.len())
}

pub fn list(lake: &Lake, volume: &str) -> Result<Vec<ViewInfo>> {
    let db = lake.db();
    if !schema::exists(&db)? {
        return Ok(Vec::new());
    }
    let mut s =
        db.conn.prepare_cached("SELECT name, query, created FROM catalog_views WHERE volume=?1 ORDER BY name").map_err(|e| db.err(e))?;
    let rows =
        s.query_map(params![volume], |r| Ok(ViewInfo { name: r.get(0)?, query: r.get(1)?, created: r.get(2)? })).map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| db.err(e).into())
}

pub fn get(lake: &Lake, volume: &str, name: &str) -> Result<Option<ViewInfo>> {
    let db = lake.db();
    if !schema::exists(&db)? {
        return Ok(None);
    }
    db.conn
        .query_row("SELECT name, query, created FROM catalog_views WHERE volume=?1 AND name=?2", params![volume, name], |r| {
            Ok(ViewInfo { name: r.get(0)?, query: r.get(1)?, created: r.get(2)? })
        })
        .optional()
        .map_err(|e| db.err(e).into())
}

/// The uid that made view `name` (0 for root and for views older than owners); None
/// when there is no such view.
pub fn owner(lake: &Lake, volume: &str, name: &str) -> Result<Option<u32>> {
    let db = lake.db();
    if !schema::exists(&db)? {
        return Ok(None);
    }
    let owned = schema::has_column(&db, "catalog_views", "owner")?;
    let sql = if owned {
        "SELECT owner FROM catalog_views WHERE volume=?1 AND name=?2"
    } else {
        "SELECT 0 FROM catalog_views WHERE volume=?1 AND name=?2"
    };
    db.conn.query_row(sql, params![volume, name], |r| r.get(0)).optional().map_err(|e| db.err(e).into())
}

/// Deletes a view; false when there was none of that name.
pub fn delete(lake: &Lake, volume: &str, name: &str) -> Result<bool> {
    let db = lake.db();
    if !schema::exists(&db)? {
        return Ok(false);
    }
    let n = db.conn.execute("DELETE FROM catalog_views WHERE volume=?1 AND name=?2", params![volume, name]).map_err(|e| db.err(e))?;
    Ok(n > 0)
}

/// One entry of a view directory (`<mount>/views/NAME/ENTRY`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The entry's name inside the view directory (unique within the view).
    pub name: String,
    /// Mount-relative path of the file it shows, in the catalog's text form
    /// (`lakefs::names::escape`d: a name that is not UTF-8 is written `\xHH`).
    pub path: String,
}

/// The entries of view `name`: its matches, each under its base name; None when
/// there is no such view.
pub fn entries(lake: &Lake, volume: &str, name: &str) -> Result<Option<Vec<Entry>>> {
    let Some(v) = get(lake, volume, name)? else {
        return Ok(None);
    };
    Ok(Some(entry_names(matches(lake, volume, &v.query)?)))
}

fn split_ext(base: &str) -> (&str, &str) {
    match base.rfind('.') {
        Some(i) if i > 0 => (&base[..i], &base[i..]),
        _ => (base, ""),
    }
}

/// Names entries by base name. Files sharing a base name: the first by path
/// keeps it, the others become `stem~PARENT.ext` (their directory's name), and if
/// that is taken too `stem~HASH.ext` (from the path, so a name does not change
/// when other files come and go).
pub fn entry_names(paths: Vec<String>) -> Vec<Entry> {
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_owned();
    let mut count: HashMap<String, usize> = HashMap::new();
    for p in &paths {
        *count.entry(base(p)).or_default() += 1;
    }
    let mut used: HashSet<String> = count.keys().cloned().collect();
    let mut first_taken: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let b = base(&path);
        if count[&b] == 1 || first_taken.insert(b.clone()) {
            out.push(Entry { name: b, path });
            continue;
        }
        let (stem, ext) = split_ext(&b);
        let parent = path.rsplit('/').nth(1).unwrap_or("");
        let hash = blake3::hash(path.as_bytes()).to_hex();
        let mut candidates = vec![];
        if !parent.is_empty() {
            candidates.push(format!("{stem}~{parent}{ext}"));
        }
        candidates.push(format!("{stem}~{}{ext}", &hash[..8]));
        candidates.push(format!("{stem}~{}{ext}", &hash[..]));
        let name = candidates.into_iter().find(|c| !used.contains(c)).unwrap_or_else(|| {
            // 64 hex digits collided: only possible with hostile names; count up.
            (2..).map(|i| format!("{stem}~{hash}-{i}{ext}")).find(|c| !used.contains(c)).unwrap_or_default()
        });
        used.insert(name.clone());
        out.push(Entry { name, path });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colliding_base_names_are_told_apart() {
        let paths = ["a/IMG_1.jpg", "b/IMG_1.jpg", "c/b/IMG_1.jpg", "IMG_1~b.jpg", "d/notes", "e/notes", "x/y/z.txt"];
        let e = entry_names(paths.iter().map(|s| s.to_string()).collect());
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names[0], "IMG_1.jpg");
        // "IMG_1~b.jpg" is a real file's name, so b/IMG_1.jpg cannot take it.
        assert!(names[1].starts_with("IMG_1~") && names[1].ends_with(".jpg") && names[1] != "IMG_1~b.jpg", "{names:?}");
        assert_eq!(names[3], "IMG_1~b.jpg");
        assert_eq!(names[4], "notes");
        assert_eq!(names[5], "notes~e");
        assert_eq!(names[6], "z.txt");
        let unique: HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert!(e.iter().zip(paths).all(|(e, p)| e.path == p));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("june-2025").is_ok());
        for bad in ["", ".", "..", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
