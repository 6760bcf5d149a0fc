//! `lakectl generation`: deploy, list, pin, keep, prune and remove through the
//! command line, with the ESP given as a directory (--esp).

use std::path::Path;

use crate::common::{bytes, ok, run};
use lake_posix::generation;

fn commit(lake: &lakefs::Lake, src: &Path, v: u32) {
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/version"), format!("{v}\n")).unwrap();
    lake_testkit::posix::commit(lake, src, "test", false);
}

fn json(lake: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(lake, &a)).unwrap()
}

fn numbers(v: &serde_json::Value) -> Vec<u64> {
    v["generations"].as_array().unwrap().iter().map(|g| g["number"].as_u64().unwrap()).collect()
}

fn entries(esp: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(esp.join("loader/entries")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn deploy_list_pin_keep_prune_remove() {
    let t = tempfile::tempdir().unwrap();
    let (root, src, esp) = (t.path().join("lake"), t.path().join("src"), t.path().join("esp"));
    std::fs::create_dir(&esp).unwrap();
    let e = esp.to_str().unwrap();
    let lake = lakefs::Lake::create(&root, &Default::default()).unwrap();
    let (kernel, initrd) = (t.path().join("vmlinuz"), t.path().join("initrd"));
    std::fs::write(&kernel, bytes(1, 200_000)).unwrap();
    std::fs::write(&initrd, bytes(2, 300_000)).unwrap();

    // Without a kernel to copy from, deploy says what to pass.
    commit(&lake, &src, 1);
    let out = run(&root, &["generation", "deploy", "--esp", e]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --kernel and --initrd"), "{}", String::from_utf8_lossy(&out.stderr));

    let d1 = json(
        &root,
        &["generation", "deploy", "--esp", e, "--tries", "0", "--kernel", kernel.to_str().unwrap(), "--initrd", initrd.to_str().unwrap()],
    );
    assert_eq!(d1["generation"], 1);
    assert_eq!(d1["entry"], "/loader/entries/lake-1.conf", "--tries 0: uncounted");
    for v in 2..=4 {
        commit(&lake, &src, v);
        let d = json(&root, &["generation", "deploy", "--esp", e]);
        assert_eq!(d["generation"], v);
        assert_eq!(d["kernel"], d1["kernel"], "copied from the good entry");
        if v == 2 {
            ok(&root, &["generation", "pin", "2"]);
        }
    }
    // Default retention 3: 1 went at the fourth deploy; 2 is pinned.
    assert_eq!(entries(&esp), ["lake-2+3.conf", "lake-3+3.conf", "lake-4+3.conf"]);

    let l = json(&root, &["generation", "list", "--esp", e]);
    assert_eq!(numbers(&l), [2, 3, 4]);
    assert_eq!((l["default"].as_u64(), l["keep"].as_u64()), (Some(4), Some(3)));
    assert_eq!(l["generations"][0]["pinned"], true);
    assert_eq!(l["generations"][2]["entry"]["state"], "counting");
    assert_eq!(l["generations"][2]["entry"]["tries_left"], 3);
    let text = ok(&root, &["generation", "list", "--esp", e]);
    assert!(text.contains("counting (3 left)") && text.contains("default") && text.contains("pinned"), "{text}");

    // keep 1: prune shows 2 (unpinned) and 3, removes only with --yes.
    ok(&root, &["generation", "keep", "1"]);
    ok(&root, &["generation", "unpin", "2"]);
    let dry = ok(&root, &["generation", "prune", "--dry-run", "--esp", e]);
    assert!(dry.contains("generation 2") && dry.contains("generation 3") && dry.contains("lake-3+3.conf"), "{dry}");
    let refused = run(&root, &["generation", "prune", "--esp", e]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert_eq!(entries(&esp).len(), 3, "nothing removed without --yes");
    let p = json(&root, &["generation", "prune", "--yes", "--esp", e]);
    let gone: Vec<u64> = p["removed"].as_array().unwrap().iter().map(|r| r["generation"].as_u64().unwrap()).collect();
    assert_eq!(gone, [2, 3]);
    assert_eq!(entries(&esp), ["lake-4+3.conf"]);
    assert!(!generation::dir(&root, 2).exists() && !generation::dir(&root, 3).exists());

    // remove: the default is refused even with --yes; others need --yes.
    let r = run(&root, &["generation", "remove", "4", "--yes", "--esp", e]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("generation 4 is the default"), "{}", String::from_utf8_lossy(&r.stderr));
    commit(&lake, &src, 5);
    ok(&root, &["generation", "keep", "3"]);
    ok(&root, &["generation", "deploy", "--esp", e]);
    let shown = run(&root, &["generation", "remove", "4", "--esp", e]);
    assert!(!shown.status.success());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("boot entry /loader/entries/lake-4+3.conf"));
    assert!(generation::dir(&root, 4).exists());
    ok(&root, &["generation", "remove", "4", "--yes", "--esp", e]);
    assert_eq!(entries(&esp), ["lake-5+3.conf"]);
    assert_eq!(numbers(&json(&root, &["generation", "list", "--esp", e])), [5]);
    let h = ok(&root, &["generation", "deploy", "--help"]);
    assert!(h.contains("--kernel") && h.contains("newest good entry"), "{h}");
}
