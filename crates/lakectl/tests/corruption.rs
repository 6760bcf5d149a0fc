//! Any single flipped byte in a pack or a loose object is found by `verify`,
//! which names the damaged object and the paths that use it.

use crate::common::*;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

fn verify_json(lake: &Path) -> (bool, serde_json::Value) {
    let out = run(lake, &["verify", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), v)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flip(path: &Path, pos: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    b[0] ^= mask;
    f.write_all_at(&b, pos).unwrap();
}

#[test]
fn every_flipped_pack_byte_is_reported_with_paths() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    special_tree(&src);
    ok(&lake, &["init"]);
    commit(&lake, &src, "packed");
    let packs = files_in(&lake.join("packs"));
    assert_eq!(packs.len(), 1);
    let pack = &packs[0];
    let len = std::fs::metadata(pack).unwrap().len();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    // The header, the first record header, the last byte, and random places.
    let mut positions: Vec<u64> = (0..8).chain(8..60).chain([len - 1]).collect();
    positions.extend((0..120).map(|_| rng.random_range(0..len)));
    for pos in positions {
        let mask = rng.random_range(1..=255u8);
        flip(pack, pos, mask);
        let (clean, v) = verify_json(&lake);
        flip(pack, pos, mask);
        assert!(!clean, "flip of byte {pos} (mask {mask:#x}) went unnoticed");
        let problems = v["problems"].as_array().unwrap();
        assert!(!problems.is_empty());
        for p in problems {
            let paths = p["paths"].as_array().unwrap();
            assert!(p["what"] == "pack" || !paths.is_empty(), "byte {pos}: damaged {} names no path: {p}", p["object"]);
        }
    }
    assert!(verify_json(&lake).0, "restored lake is clean again");
}

#[test]
fn flipped_file_content_names_the_file() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("only.txt"), "x".repeat(1000)).unwrap();
    ok(&lake, &["init"]);
    commit(&lake, &src, "one");
    let pack = &files_in(&lake.join("packs"))[0];
    // The data record comes first (files are stored before trees): its payload starts at 8 + 44.
    flip(pack, 8 + 44 + 2, 0x10);
    let (clean, v) = verify_json(&lake);
    assert!(!clean);
    let text = v.to_string();
    assert!(text.contains("main:/only.txt"), "{text}");
    let human = String::from_utf8_lossy(&run(&lake, &["verify"]).stdout).into_owned();
    assert!(human.contains("used by main:/only.txt"), "{human}");
    // Reading it fails loudly instead of returning bad bytes.
    let out = run(&lake, &["cat", "/only.txt"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_flipped_loose_object_is_reported_with_paths() {
    let t = tempfile::tempdir().unwrap();
    let (src, lake) = (t.path().join("src"), t.path().join("lake"));
    special_tree(&src);
    ok(&lake, &["init"]);
    ok(&lake, &["commit", path_str(&src), "--loose", "-m", "loose"]);
    let objects: Vec<PathBuf> = files_in(&lake.join("objects")).into_iter().filter(|p| std::fs::metadata(p).unwrap().len() > 0).collect();
    assert!(objects.len() >= 30);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for obj in objects.iter().step_by(3) {
        let len = std::fs::metadata(obj).unwrap().len();
        let pos = rng.random_range(0..len);
        flip(obj, pos, 0x01);
        let (clean, v) = verify_json(&lake);
        flip(obj, pos, 0x01);
        assert!(!clean, "flip in {} unnoticed", obj.display());
        let p = &v["problems"][0];
        assert_eq!(p["what"], "loose object", "{v}");
        assert!(p["paths"].as_array().unwrap().iter().any(|x| x.as_str().unwrap().starts_with("main:/")), "{v}");
    }
    // A chmod through a hard-linked checkout changes the shared inode: reported too.
    let out = t.path().join("out");
    ok(&lake, &["checkout", "--hardlink", "main", path_str(&out)]);
    std::process::Command::new("chmod").arg("0777").arg(out.join("text.txt")).status().unwrap();
    let (clean, v) = verify_json(&lake);
    assert!(!clean);
    assert!(v.to_string().contains("modified in place"), "{v}");
}
