//! `lakectl view` and `lakectl search` on a temp lake: a volume's history made
//! with `lakectl commit --ref home/main`, indexed with `lakectl view reindex`
//! (what the mount's daemon does after each commit), then queried.

use std::path::Path;

use crate::common::{ok, run};
use lake_catalog::props::testdata::jpeg_with_exif;

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

fn commit_home(lake: &Path, src: &Path) {
    ok(lake, &["--ref", "home/main", "commit", src.to_str().unwrap(), "-m", "home"]);
}

fn json(lake: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(lake, &a)).unwrap()
}

fn search(lake: &Path, words: &str) -> Vec<String> {
    let v = json(lake, &["search", words, "--volume", "home"]);
    let mut p: Vec<String> = v.as_array().unwrap().iter().map(|h| h["path"].as_str().unwrap().to_owned()).collect();
    p.sort();
    p
}

fn entries(lake: &Path, view: &str) -> Vec<(String, String)> {
    let v = json(lake, &["view", "show", view, "--volume", "home"]);
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e["path"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn views_and_search_from_the_command_line() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("home"), t.path().join("lake"));
    write(&src, "alice/photos/beach.jpg", &jpeg_with_exif("2025:06:14 10:22:01", 640, 480));
    write(&src, "alice/photos/hike.jpg", &jpeg_with_exif("2025:06:30 18:00:00", 640, 480));
    write(&src, "bob/beach.jpg", &jpeg_with_exif("2025:06:02 09:00:00", 320, 200));
    write(&src, "alice/photos/may.jpg", &jpeg_with_exif("2025:05:31 23:59:59", 640, 480));
    write(&src, "alice/photos/july.jpg", &jpeg_with_exif("2025:07:01 00:00:00", 640, 480));
    write(&src, "alice/notes/todo.md", b"buy quinoa and kiwi\n");
    // Same word, binary file: the magic says PNG whatever the name.
    write(&src, "alice/notes/kiwi.txt", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0 quinoa \0");
    write(&src, "alice/.profile", b"# quinoa\n");
    ok(&lake, &["init"]);
    commit_home(&lake, &src);
    let r = json(&lake, &["view", "reindex", "--volume", "home"]);
    assert_eq!(r["stats"]["files"], 7, "{r}");

    // Images taken in June 2025.
    let q = "type = image and taken >= 2025-06-01 and taken < 2025-07-01";
    let out = ok(&lake, &["view", "create", "june-2025", "--query", q, "--volume", "home"]);
    assert!(out.contains("3 files match"), "{out}");
    let want = [("beach.jpg", "alice/photos/beach.jpg"), ("hike.jpg", "alice/photos/hike.jpg"), ("beach~bob.jpg", "bob/beach.jpg")];
    assert_eq!(entries(&lake, "june-2025"), want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    let list = json(&lake, &["view", "list", "--volume", "home"]);
    assert_eq!(list[0]["name"], "june-2025");
    assert_eq!(list[0]["query"], q);
    // The magic says image: the .txt is one too.
    ok(&lake, &["view", "create", "pictures", "--query", "type=image and not taken ~ 2025-06*", "--volume", "home"]);
    let mut got: Vec<String> = entries(&lake, "pictures").into_iter().map(|e| e.1).collect();
    got.sort();
    assert_eq!(got, ["alice/notes/kiwi.txt", "alice/photos/july.jpg", "alice/photos/may.jpg"]);
    // Names are unique in a volume unless replaced.
    let dup = run(&lake, &["view", "create", "pictures", "--query", "type = text", "--volume", "home"]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));

    // Search finds the words in text files, not in the PNG, not in the dotfile.
    assert_eq!(search(&lake, "quinoa"), ["alice/notes/todo.md"]);
    assert_eq!(search(&lake, "kiwi"), ["alice/notes/todo.md"]);
    assert!(search(&lake, "quinoa zucchini").is_empty());
    let text = ok(&lake, &["search", "quinoa", "--volume", "home"]);
    assert!(text.contains("alice/notes/todo.md") && text.contains("buy [quinoa] and kiwi"), "{text}");

    // A bad query is refused with the column and what was expected there.
    let bad = run(&lake, &["view", "create", "bad", "--query", "type = image and (taken >= 2025-06 or colour = red)", "--volume", "home"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad query at column 39: expected a property (path, name"), "{err}");
    assert!(err.contains("found 'colour'"), "{err}");
    assert!(err.contains(&format!("\n  {}^", " ".repeat(38))), "{err}");
    let bad = run(&lake, &["view", "create", "bad", "--query", "taken >=", "--volume", "home"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected a value"), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(json(&lake, &["view", "list", "--volume", "home"]).as_array().unwrap().len() == 2, "bad views are not saved");

    // Deleting files drops them from views and search after the next commit is indexed.
    std::fs::remove_file(src.join("alice/notes/todo.md")).unwrap();
    std::fs::remove_file(src.join("bob/beach.jpg")).unwrap();
    commit_home(&lake, &src);
    let r = json(&lake, &["view", "reindex", "--volume", "home"]);
    assert_eq!((r["stats"]["files"].as_u64(), r["stats"]["removed"].as_u64()), (Some(0), Some(2)), "{r}");
    assert!(search(&lake, "quinoa").is_empty());
    assert_eq!(entries(&lake, "june-2025").len(), 2);

    ok(&lake, &["view", "delete", "june-2025", "--volume", "home"]);
    let gone = run(&lake, &["view", "show", "june-2025", "--volume", "home"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no view 'june-2025'"));
    let nov = run(&lake, &["view", "list", "--volume", "nosuch"]);
    assert!(String::from_utf8_lossy(&nov.stderr).contains("no volume 'nosuch'"));
}
