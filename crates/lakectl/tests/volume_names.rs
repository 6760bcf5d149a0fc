//! Names and links in a real `lakefs mount` (issue 12, "nothing goes silently
//! unrecorded"): a name that is not UTF-8 is recorded, logged, restored, listed
//! by `status` and removed by a directory restore; every name of a hard-linked
//! file follows its content. Needs /dev/fuse and root (skipped otherwise).

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::mount;

fn run(args: &[&OsStr]) -> Output {
    Command::new(crate::common::lakectl()).env_remove("LAKE").args(args).output().expect("run lakectl")
}

fn ok(args: &[&OsStr]) -> Output {
    let out = run(args);
    assert!(out.status.success(), "lakectl {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn json(args: &[&OsStr]) -> serde_json::Value {
    let mut a: Vec<&OsStr> = vec![OsStr::new("--json")];
    a.extend_from_slice(args);
    let out = ok(&a);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("lakectl {args:?} --json: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Commits what is pending in the mount now (the daemon's own batch, not `lakectl commit`).
fn flush(mnt: &Path) -> String {
    let p = mnt.join(".lake/control");
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&p).expect("open control");
    f.write_all(br#"{"op":"flush"}"#).expect("write control");
    let mut out = String::new();
    f.read_to_string(&mut out).expect("read control");
    let v: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or_default()).expect("reply JSON");
    assert_eq!(v["ok"], true, "{out}");
    v["commit"].as_str().expect("a commit").to_owned()
}

fn remount(m: &crate::common::Mounted) {
    let st = Command::new("umount").arg(&m.mnt).status().expect("umount");
    assert!(st.success(), "umount: {st}");
    let st = Command::new(crate::common::sibling("lakefs")).arg("mount").arg(&m.lake).arg(&m.mnt).status().expect("lakefs mount");
    assert!(st.success(), "lakefs mount: {st}");
}

/// `lakectl cat REL@REV` of volume `home`.
fn cat(m: &crate::common::Mounted, rel: &[u8], rev: &str) -> Vec<u8> {
    let mut target = rel.to_vec();
    target.push(b'@');
    target.extend_from_slice(rev.as_bytes());
    let target = OsString::from_vec(target);
    ok(&[os("--lake"), m.lake.as_os_str(), os("--ref"), os("home/main"), os("cat"), &target]).stdout
}

#[test]
fn a_name_that_is_not_utf8_is_recorded_logged_restored_and_removed() {
    let Some(m) = mount() else { return };
    let alice = m.mnt.join("alice");
    std::fs::create_dir(&alice).expect("mkdir");
    let f = alice.join(OsStr::from_bytes(b"caf\xe9.txt"));

    // The daemon's batches record it.
    std::fs::write(&f, "one\n").expect("write");
    let first = flush(&m.mnt);
    std::fs::write(&f, "two, longer\n").expect("write");
    let second = flush(&m.mnt);
    assert_ne!(first, second, "the second version is a commit of its own");

    // `lakectl log NAME` takes the name as the kernel has it; JSON says which bytes it is.
    let log = json(&[os("log"), f.as_os_str()]);
    assert_eq!(log["path"], serde_json::json!({"bytes": "alice/caf\\xe9.txt"}), "{log}");
    let versions = log["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2, "{log}");
    assert_eq!((versions[0]["commit"].as_str(), versions[0]["size"].as_u64()), (Some(second.as_str()), Some(12)));
    assert_eq!((versions[1]["commit"].as_str(), versions[1]["size"].as_u64()), (Some(first.as_str()), Some(4)));

    // Past states show it under its own name.
    let then = m.mnt.join(".lake/at").join(&first).join("alice").join(OsStr::from_bytes(b"caf\xe9.txt"));
    assert_eq!(std::fs::read(&then).expect("read .lake/at"), b"one\n");
    assert_eq!(cat(&m, b"alice/caf\xe9.txt", &first), b"one\n");

    // Status prints it escaped and records nothing as left out.
    let st = json(&[os("status"), f.as_os_str()]);
    assert_eq!(st["path"], serde_json::json!({"bytes": "alice/caf\\xe9.txt"}), "{st}");
    assert_eq!(st["not_recorded"], serde_json::json!([]), "{st}");
    let text = String::from_utf8(ok(&[os("status"), f.as_os_str()]).stdout).expect("status prints text");
    assert!(text.contains("path:     alice/caf\\xe9.txt: zone lake"), "{text}");

    // Restore of the file, by commit id.
    ok(&[os("restore"), f.as_os_str(), os("--to"), os(&first)]);
    assert_eq!(std::fs::read(&f).expect("read"), b"one\n");
    assert_eq!(json(&[os("log"), f.as_os_str()])["versions"][0]["trigger"], "restore");

    // A directory restore removes names that did not exist then, whatever their bytes.
    let d = alice.join("d");
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::write(d.join("keep"), "keep\n").expect("write");
    let before = flush(&m.mnt);
    let odd = d.join(OsStr::from_bytes(b"\xff\xfe odd"));
    std::fs::write(&odd, "new\n").expect("write");
    std::fs::write(d.join("back\\slash"), "new\n").expect("write");
    flush(&m.mnt);
    let dry = ok(&[os("restore"), d.as_os_str(), os("--to"), os(&before), os("--dry-run")]);
    let said = String::from_utf8(dry.stderr).expect("restore prints text");
    assert!(said.contains("remove  alice/d/\\xff\\xfe odd\n"), "{said}");
    assert!(said.contains("remove  alice/d/back\\\\slash\n"), "{said}");
    ok(&[os("restore"), d.as_os_str(), os("--to"), os(&before)]);
    assert!(std::fs::symlink_metadata(&odd).is_err(), "restore said it removed {odd:?}, and did");
    assert!(std::fs::symlink_metadata(d.join("back\\slash")).is_err());
    assert_eq!(std::fs::read(d.join("keep")).expect("read"), b"keep\n");

    // `lakectl commit NAME` commits exactly that name.
    std::fs::write(&f, "three\n").expect("write");
    let c = String::from_utf8(ok(&[os("commit"), f.as_os_str(), os("-m"), os("explicit")]).stdout).expect("utf-8");
    let log = json(&[os("log"), f.as_os_str()]);
    assert_eq!(log["versions"][0]["commit"].as_str(), Some(c.trim()), "{log}");
    assert_eq!(log["versions"][0]["trigger"], "manual");
    assert_eq!(cat(&m, b"alice/caf\xe9.txt", c.trim()), b"three\n");
}

#[test]
fn every_name_of_a_hard_link_follows_its_content() {
    let Some(m) = mount() else { return };
    let alice = m.mnt.join("alice");
    std::fs::create_dir(&alice).expect("mkdir");
    let one = alice.join("one");
    let two = alice.join("sub/two");
    std::fs::create_dir(alice.join("sub")).expect("mkdir");
    std::fs::write(&one, "version one\n").expect("write");
    flush(&m.mnt);
    std::fs::hard_link(&one, &two).expect("link");
    let linked = flush(&m.mnt);
    assert_eq!(cat(&m, b"alice/sub/two", &linked), b"version one\n");

    // Written through one name: the other's history follows.
    std::fs::write(&one, "version two through one\n").expect("write");
    let c = flush(&m.mnt);
    assert_eq!(cat(&m, b"alice/one", &c), b"version two through one\n");
    assert_eq!(cat(&m, b"alice/sub/two", &c), b"version two through one\n", "the other name is stale");
    let log = json(&[os("log"), two.as_os_str()]);
    assert_eq!(log["versions"][0]["commit"].as_str(), Some(c.as_str()), "{log}");
    // Recorded as one file with two names: a checkout links them again.
    let dest = PathBuf::from(format!("{}.linked", m.lake.display()));
    ok(&[os("--lake"), m.lake.as_os_str(), os("--ref"), os("home/main"), os("checkout"), os(&c), dest.as_os_str()]);
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).expect("stat"));
    assert_eq!(ino(&dest.join("alice/one")), ino(&dest.join("alice/sub/two")), "the checkout has two files, not two names of one");

    // After a remount (the daemon starts from nothing but the tree on disk), through the other name.
    remount(&m);
    std::fs::write(&two, "version three through two\n").expect("write");
    let c = flush(&m.mnt);
    assert_eq!(cat(&m, b"alice/one", &c), b"version three through two\n", "the first name is stale after a remount");

    // One name removed: the other keeps its content (no link to a name that is gone).
    std::fs::remove_file(&one).expect("rm");
    let c = flush(&m.mnt);
    assert_eq!(cat(&m, b"alice/sub/two", &c), b"version three through two\n");
    let out = run(&[os("--lake"), m.lake.as_os_str(), os("--ref"), os("home/main"), os("cat"), os(&format!("alice/one@{c}"))]);
    assert!(!out.status.success(), "alice/one was removed");

    // Restore of the removed name brings its content back, and a checkout of the head is whole.
    ok(&[os("restore"), one.as_os_str(), os("--to"), os(&linked)]);
    assert_eq!(std::fs::read(&one).expect("read"), b"version one\n");
    let dest = PathBuf::from(format!("{}.checkout", m.lake.display()));
    ok(&[os("--lake"), m.lake.as_os_str(), os("--ref"), os("home/main"), os("checkout"), os("home/main"), dest.as_os_str()]);
    assert_eq!(std::fs::read(dest.join("alice/sub/two")).expect("read"), b"version three through two\n");
    let _ = std::fs::remove_dir_all(&dest);
}

#[test]
fn search_and_views_show_a_name_that_is_not_utf8() {
    let Some(m) = mount() else { return };
    let alice = m.mnt.join("alice");
    std::fs::create_dir(&alice).expect("mkdir");
    std::fs::write(alice.join(OsStr::from_bytes(b"caf\xe9.md")), "zucchini soup\n").expect("write");
    std::fs::write(alice.join("plain.md"), "zucchini bread\n").expect("write");
    flush(&m.mnt);

    let hits = json(&[os("search"), os("zucchini"), os("--in"), m.mnt.as_os_str()]);
    let mut paths: Vec<serde_json::Value> = hits.as_array().expect("hits").iter().map(|h| h["path"].clone()).collect();
    paths.sort_by_key(|p| p.to_string());
    assert_eq!(paths, [serde_json::json!("alice/plain.md"), serde_json::json!({"bytes": "alice/caf\\xe9.md"})], "{hits}");
    let text = String::from_utf8(ok(&[os("search"), os("soup"), os("--in"), m.mnt.as_os_str()]).stdout).expect("utf-8");
    assert!(text.contains("/alice/caf\\xe9.md  (rank"), "{text}");

    // A view's symlink points at the name's own bytes.
    ok(&[os("view"), os("create"), os("md"), os("--query"), os("name ~ 'caf*'"), m.mnt.as_os_str()]);
    let dir = m.mnt.join("views/md");
    let entries: Vec<_> = std::fs::read_dir(&dir).expect("view dir").map(|e| e.expect("entry").path()).collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(std::fs::read_link(&entries[0]).expect("symlink").as_os_str().as_bytes(), b"../../alice/caf\xe9.md");
    assert_eq!(std::fs::read(&entries[0]).expect("read through the view"), b"zucchini soup\n");
    let show = json(&[os("view"), os("show"), os("md"), m.mnt.as_os_str()]);
    assert_eq!(show["entries"][0]["path"], serde_json::json!({"bytes": "alice/caf\\xe9.md"}), "{show}");
}

#[test]
fn a_write_through_a_posix_zone_name_is_recorded_under_the_lake_zone_name() {
    let Some(m) = mount() else { return };
    let alice = m.mnt.join("alice");
    std::fs::create_dir_all(alice.join("build")).expect("mkdir");
    ok(&[os("zone"), os("set"), alice.join("build").as_os_str(), os("posix")]);
    let keep = alice.join("keep.txt");
    std::fs::write(&keep, "one\n").expect("write");
    std::fs::hard_link(&keep, alice.join("build/keep.o")).expect("link");
    flush(&m.mnt);
    std::fs::write(alice.join("build/keep.o"), "two, through the POSIX-zone name\n").expect("write");
    let c = flush(&m.mnt);
    assert_eq!(cat(&m, b"alice/keep.txt", &c), b"two, through the POSIX-zone name\n");
    let out = run(&[os("--lake"), m.lake.as_os_str(), os("--ref"), os("home/main"), os("cat"), os(&format!("alice/build/keep.o@{c}"))]);
    assert!(!out.status.success(), "the POSIX-zone name has no history");
}

#[test]
fn a_branch_switch_writes_names_that_are_not_utf8_back_as_they_were() {
    let Some(m) = mount() else { return };
    let proj = m.mnt.join("proj");
    std::fs::create_dir(&proj).expect("mkdir");
    let cafe = proj.join(OsStr::from_bytes(b"caf\xe9.txt"));
    let odd = proj.join(OsStr::from_bytes(b"\xff new"));
    std::fs::write(&cafe, "on main\n").expect("write");
    let in_mount = |args: &[&str]| {
        let out = Command::new(crate::common::lakectl()).current_dir(&m.mnt).env_remove("LAKE").args(args).output().expect("lakectl");
        assert!(out.status.success(), "lakectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("lakectl prints text")
    };
    in_mount(&["branch", "create", "proj", "--name", "exp", "--switch"]);
    std::fs::write(&cafe, "on exp\n").expect("write");
    std::fs::write(&odd, "new on exp\n").expect("write");
    let out = in_mount(&["branch", "switch", "main", "--path", "proj"]);
    assert!(out.contains("proj/\\xff new"), "changes are listed escaped: {out}");
    assert_eq!(std::fs::read(&cafe).expect("read"), b"on main\n");
    assert!(std::fs::symlink_metadata(&odd).is_err(), "{odd:?} is not on main");
    let names: Vec<_> = std::fs::read_dir(&proj).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, [OsString::from_vec(b"caf\xe9.txt".to_vec())], "nothing written under a lossy name");
    in_mount(&["branch", "switch", "exp", "--path", "proj"]);
    assert_eq!(std::fs::read(&cafe).expect("read"), b"on exp\n");
    assert_eq!(std::fs::read(&odd).expect("read"), b"new on exp\n");
}

/// Bytes allocated on disk for `p` (st_blocks is in 512-byte units).
fn allocated(p: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::blocks(&std::fs::symlink_metadata(p).expect("stat")) * 512
}

#[test]
fn a_sparse_file_stays_sparse_through_the_mount_and_comes_back_sparse_from_history() {
    use std::os::unix::fs::FileExt;
    let Some(m) = mount() else { return };
    let alice = m.mnt.join("alice");
    std::fs::create_dir(&alice).expect("mkdir");
    let img = alice.join("disk.img");
    const SIZE: u64 = 64 << 20;
    let f = std::fs::File::create(&img).expect("create");
    f.set_len(SIZE).expect("truncate");
    f.write_all_at(b"head", 0).expect("write");
    f.write_all_at(b"tail", 48 << 20).expect("write");
    drop(f);
    let work = m.lake.join("state/home/alice/disk.img");
    assert!(allocated(&work) < 1 << 20, "the working tree allocated {} bytes", allocated(&work));
    assert!(allocated(&img) < 1 << 20, "the mount reports {} bytes allocated", allocated(&img));
    let first = flush(&m.mnt);
    let log = json(&[os("log"), img.as_os_str()]);
    assert_eq!(log["versions"][0]["size"].as_u64(), Some(SIZE), "{log}");

    // Replaced, then restored from history: the holes come back as holes.
    std::fs::write(&img, "replaced\n").expect("write");
    flush(&m.mnt);
    ok(&[os("restore"), img.as_os_str(), os("--to"), os(&first)]);
    let back = std::fs::read(&img).expect("read");
    assert_eq!(back.len() as u64, SIZE);
    assert_eq!((&back[..4], &back[48 << 20..(48 << 20) + 4]), (&b"head"[..], &b"tail"[..]));
    assert!(back[4..48 << 20].iter().all(|b| *b == 0) && back[(48 << 20) + 4..].iter().all(|b| *b == 0));
    assert!(allocated(&work) < 1 << 20, "restore allocated {} bytes", allocated(&work));
    // A restore that finds the file as it was writes nothing.
    let again = ok(&[os("restore"), img.as_os_str(), os("--to"), os(&first)]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already equals that version"), "{}", String::from_utf8_lossy(&again.stderr));
}
