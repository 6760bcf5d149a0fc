//! The catalog on a real lake: commits of a directory tree are indexed, views and
//! full-text search answer from the index, and later commits update and remove rows.

use std::path::Path;

use lake_catalog as catalog;
use lake_catalog::{fts, props::testdata::jpeg_with_exif, views};
use lakefs::import::ImportOptions;
use lakefs::ops::{commit_dir, CommitRequest};
use lakefs::progress::Silent;
use lakefs::{Lake, ObjectId};

const VOLUME: &str = "home";

fn commit(lake: &Lake, src: &Path, loose: bool) -> ObjectId {
    let req = CommitRequest {
        src,
        reference: "home/main",
        message: "test",
        scope: "volume:home",
        trigger: "manual",
        changed: None,
        options: ImportOptions { loose },
        extra: vec![],
        allow_empty: false,
    };
    commit_dir(lake, &req, &Silent).unwrap().tree
}

/// The LAKE zone of the test: everything but dotfiles (which stand for HYBRID).
fn lake_zone(p: &[u8]) -> bool {
    !p.split(|c| *c == b'/').any(|c| c.starts_with(b"."))
}

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// A PNG whose tEXt chunk holds the word "kiwi": binary, so never in the text index.
fn png_with_word() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x02\0\0\0\x03\x08\x06\0\0\0\x9d\x7e\x1c\x0c".to_vec();
    b.extend_from_slice(b"\0\0\0\x0ctEXtComment\0kiwi\0\0\0\0\0\0\0\0IEND\xaeB`\x82");
    b
}

fn home(dir: &Path) {
    write(dir, "photos/june1.jpg", &jpeg_with_exif("2025:06:01 00:00:00", 640, 480));
    write(dir, "photos/june30.jpg", &jpeg_with_exif("2025:06:30 23:59:59", 800, 600));
    write(dir, "trip/june1.jpg", &jpeg_with_exif("2025:06:15 12:00:00", 1024, 768));
    write(dir, "trip/may.jpg", &jpeg_with_exif("2025:05:31 23:59:59", 10, 10));
    write(dir, "trip/july.jpg", &jpeg_with_exif("2025:07:01 00:00:00", 10, 10));
    write(dir, "photos/screenshot.png", &png_with_word());
    write(dir, "notes/fruit.txt", b"A kiwi, a mango and a lime.\n");
    // Text named like a photo: the content says text.
    write(dir, "notes/fake.jpg", b"kiwi pie recipe\n");
    // PNG bytes named .txt: magic says image.
    write(dir, "notes/image.txt", &png_with_word());
    // Over the full-text limit: typed text, not indexed for words (and chunked in the lake).
    write(dir, "notes/big.log", "kiwi log line\n".repeat(100_000).as_bytes());
    // A dotfile is outside the LAKE zone: no catalog at all.
    write(dir, ".bashrc", b"# kiwi\n");
    std::os::unix::fs::symlink("notes/fruit.txt", dir.join("link-to-fruit")).unwrap();
}

fn search(lake: &Lake, words: &str) -> Vec<String> {
    let mut p: Vec<String> = fts::search(lake, VOLUME, words, 100).unwrap().into_iter().map(|h| h.path).collect();
    p.sort();
    p
}

fn row(lake: &Lake, path: &str) -> Option<(String, String, Option<String>, Option<i64>)> {
    let db = lake.db();
    db.conn
        .query_row("SELECT type, mime, taken, width FROM catalog_files WHERE volume='home' AND path=?1", [path], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .ok()
}

#[test]
fn commits_are_indexed_and_views_and_search_follow_them() {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("home"), t.path().join("lake"));
    home(&src);
    let lake = Lake::create(&root, &Default::default()).unwrap();
    let t1 = commit(&lake, &src, false);
    let s = catalog::index_commit(&lake, VOLUME, &t1, &lake_zone).unwrap();
    assert_eq!((s.files, s.text_files, s.removed), (10, 2, 0), "{s:?}");

    // Types: magic first, then content, then the name.
    assert_eq!(row(&lake, "notes/image.txt").unwrap().0, "image");
    assert_eq!(row(&lake, "notes/fake.jpg").unwrap().0, "text");
    assert_eq!(row(&lake, "notes/big.log").unwrap().0, "text");
    let j = row(&lake, "trip/june1.jpg").unwrap();
    assert_eq!(j, ("image".into(), "image/jpeg".into(), Some("2025-06-15T12:00:00".into()), Some(1024)));
    assert!(row(&lake, ".bashrc").is_none() && row(&lake, "link-to-fruit").is_none());

    // Images taken in June 2025: exactly the three June files, at both edges of the month.
    let june = "type = image and taken >= 2025-06-01 and taken < 2025-07-01";
    let want = ["photos/june1.jpg", "photos/june30.jpg", "trip/june1.jpg"];
    assert_eq!(views::matches(&lake, VOLUME, june).unwrap(), want);
    assert_eq!(views::matches(&lake, VOLUME, "type = image and taken = 2025-06").unwrap(), want);
    assert_eq!(views::matches(&lake, VOLUME, "taken >= 2025-06-01 and taken <= 2025-06-30").unwrap(), want);
    assert_eq!(views::create(&lake, VOLUME, "june", june, false, 0).unwrap(), 3);
    assert!(views::create(&lake, VOLUME, "june", "type = text", false, 0).is_err(), "names are unique");
    let entries = catalog::view_entries(&lake, VOLUME, "june").unwrap().unwrap();
    let names: Vec<(&str, &str)> = entries.iter().map(|e| (e.name.as_str(), e.path.as_str())).collect();
    assert_eq!(names, [("june1.jpg", "photos/june1.jpg"), ("june30.jpg", "photos/june30.jpg"), ("june1~trip.jpg", "trip/june1.jpg")]);
    assert_eq!(catalog::view_names(&lake, VOLUME).unwrap(), ["june"]);
    assert_eq!(catalog::view_entries(&lake, VOLUME, "nope").unwrap(), None);
    assert_eq!(catalog::view_entries(&lake, "other-volume", "june").unwrap(), None);
    assert_eq!(views::matches(&lake, VOLUME, "(name ~ '*.jpg' or ext = png) and not type = image").unwrap(), ["notes/fake.jpg"]);
    assert_eq!(views::matches(&lake, VOLUME, "text:kiwi and name ~ fruit").unwrap(), ["notes/fruit.txt"]);
    assert_eq!(views::matches(&lake, VOLUME, "size > 1M").unwrap(), ["notes/big.log"]);
    assert_eq!(views::matches(&lake, VOLUME, "make = lakecam and width >= 1000").unwrap(), ["trip/june1.jpg"]);

    // Words are found in text files only: not in binaries that contain them, not
    // in files over the limit, not outside the LAKE zone.
    assert_eq!(search(&lake, "kiwi"), ["notes/fake.jpg", "notes/fruit.txt"]);
    assert_eq!(search(&lake, "KIWI mango"), ["notes/fruit.txt"]);
    assert_eq!(search(&lake, "man*"), ["notes/fruit.txt"]);
    assert_eq!(search(&lake, "durian"), Vec::<String>::new());
    let hit = &fts::search(&lake, VOLUME, "mango", 10).unwrap()[0];
    assert!(hit.snippet.contains("[mango]"), "{hit:?}");

    // Deletes drop rows (and their words); a changed file is read again.
    std::fs::remove_file(src.join("notes/fruit.txt")).unwrap();
    std::fs::remove_dir_all(src.join("trip")).unwrap();
    std::fs::write(src.join("notes/fake.jpg"), b"banana bread\n").unwrap();
    let t2 = commit(&lake, &src, false);
    let s = catalog::index_commit(&lake, VOLUME, &t2, &lake_zone).unwrap();
    assert_eq!((s.files, s.text_files, s.removed), (1, 1, 4), "{s:?}");
    assert!(row(&lake, "notes/fruit.txt").is_none() && row(&lake, "trip/june1.jpg").is_none());
    assert_eq!(search(&lake, "kiwi"), Vec::<String>::new());
    assert_eq!(search(&lake, "banana"), ["notes/fake.jpg"]);
    assert_eq!(views::matches(&lake, VOLUME, june).unwrap(), ["photos/june1.jpg", "photos/june30.jpg"]);
    let fts_rows = lake.db().count("SELECT count(*) FROM catalog_fts").unwrap();
    assert_eq!(fts_rows, 1, "no words left behind by deleted files");

    // The same tree again does nothing; a missed commit is caught up from the last indexed tree.
    assert_eq!(catalog::index_commit(&lake, VOLUME, &t2, &lake_zone).unwrap().files, 0);
    write(&src, "notes/new.md", b"# kiwi again\n");
    commit(&lake, &src, false); // t3, never indexed
    std::fs::remove_file(src.join("notes/new.md")).unwrap();
    write(&src, "notes/newer.md", b"# fig\n");
    let t4 = commit(&lake, &src, false);
    // The catalog is still at t2; t4 is indexed from there.
    catalog::index_commit(&lake, VOLUME, &t4, &lake_zone).unwrap();
    assert_eq!(search(&lake, "fig"), ["notes/newer.md"]);
    assert_eq!(search(&lake, "kiwi"), Vec::<String>::new());

    assert!(views::delete(&lake, VOLUME, "june").unwrap());
    assert!(!views::delete(&lake, VOLUME, "june").unwrap());
    assert_eq!(catalog::view_entries(&lake, VOLUME, "june").unwrap(), None);
}

#[test]
fn loose_objects_and_metadata_changes() {
    let t = tempfile::tempdir().unwrap();
    let (src, root) = (t.path().join("home"), t.path().join("lake"));
    write(&src, "a/pic.jpg", &jpeg_with_exif("2024:12:24 18:00:00", 4, 3));
    write(&src, "a/words.txt", b"loose lettuce\n");
    let lake = Lake::create(&root, &Default::default()).unwrap();
    let t1 = commit(&lake, &src, true);
    catalog::index_commit(&lake, VOLUME, &t1, &lake_zone).unwrap();
    assert_eq!(row(&lake, "a/pic.jpg").unwrap().2.as_deref(), Some("2024-12-24T18:00:00"));
    assert_eq!(search(&lake, "lettuce"), ["a/words.txt"]);

    // Only the mtime changes: the row follows without reading the content again.
    let f = std::fs::File::options().write(true).open(src.join("a/words.txt")).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)).unwrap();
    drop(f);
    let t2 = commit(&lake, &src, true);
    let s = catalog::index_commit(&lake, VOLUME, &t2, &lake_zone).unwrap();
    assert_eq!(s.files, 0, "{s:?}");
    assert_eq!(views::matches(&lake, VOLUME, "mtime = 2023-11-14").unwrap(), ["a/words.txt"]);
    assert_eq!(search(&lake, "lettuce"), ["a/words.txt"]);
}
