//! Trees for round-trip tests: [`special_tree`] makes one with every kind of
//! entry the lake must keep (hard links, symlinks, devices, a FIFO, a socket,
//! xattrs including security.capability, odd modes, owners and times);
//! [`snapshot`] records everything a checkout must preserve, and
//! [`assert_same`] compares two snapshots, printing the first differences.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "failed: {cmd}");
}

/// A tree with every kind of entry the lake must round-trip.
pub fn special_tree(dir: &Path) {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("sub/deeper/empty")).unwrap();
    for i in 0..40u64 {
        std::fs::write(dir.join(format!("sub/file{i}")), crate::bytes(i, (i as usize * 997) % 20000)).unwrap();
    }
    std::fs::write(dir.join("big.bin"), crate::bytes(7, 3 << 20)).unwrap();
    std::fs::write(dir.join("text.txt"), "hello lake\n".repeat(5000)).unwrap();
    sh(&format!(
        "cd {d} && ln big.bin sub/big-hardlink && ln sub/file3 sub/deeper/file3-link && ln -s ../big.bin sub/sym \
         && ln -s /does/not/exist dangling && mkfifo fifo && mknod chr c 1 3 && mknod blk b 7 0 \
         && setfattr -n user.lake -v value text.txt && setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= sub/file5 \
         && setfattr -n user.dir -v d sub/deeper \
         && chown 1234:5678 sub/file1 && chown -h 4321:8765 sub/sym && chmod 4755 sub/file2 && chmod 1777 sub/deeper/empty \
         && chmod 0600 sub/file4 && touch -h -d '1999-01-02 03:04:05.123456789' sub/sym sub/file6 && touch -d @0 sub/file7"
    ));
    let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    // The dir mtimes are set last so adding entries above does not disturb them.
    sh(&format!("touch -d '2001-02-03 04:05:06' {d}/sub/deeper {d}"));
}

#[derive(Debug, PartialEq, Eq)]
pub struct Info {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub content: Option<[u8; 32]>,
    pub target: Option<PathBuf>,
    pub rdev: u64,
    /// Sorted paths of all names of this inode within the tree (hard links).
    pub links: Vec<String>,
}

/// Everything checkout must preserve, per path (the root is "").
pub fn snapshot(root: &Path) -> BTreeMap<String, Info> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let key = rel.to_string_lossy().into_owned();
        if ft.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        } else {
            inodes.entry((md.dev(), md.ino())).or_default().push(key.clone());
        }
        let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = xattr_list(&p);
        xattrs.sort();
        let info = Info {
            kind: if ft.is_dir() {
                "dir"
            } else if ft.is_file() {
                "file"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_char_device() {
                "chr"
            } else if ft.is_block_device() {
                "blk"
            } else if ft.is_fifo() {
                "fifo"
            } else {
                "socket"
            },
            mode: md.mode(),
            uid: md.uid(),
            gid: md.gid(),
            mtime: (md.mtime(), md.mtime_nsec()),
            xattrs,
            content: ft.is_file().then(|| *blake3::hash(&std::fs::read(&p).unwrap()).as_bytes()),
            target: ft.is_symlink().then(|| std::fs::read_link(&p).unwrap()),
            rdev: md.rdev(),
            links: vec![],
        };
        out.insert(key, info);
    }
    for paths in inodes.values() {
        let mut paths = paths.clone();
        paths.sort();
        for p in &paths {
            if let Some(i) = out.get_mut(p) {
                i.links = paths.clone();
            }
        }
    }
    out
}

fn xattr_list(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let out = Command::new("getfattr").args(["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names"]).arg(p).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
}

/// Asserts two snapshots are equal, printing the first differences.
pub fn assert_same(a: &BTreeMap<String, Info>, b: &BTreeMap<String, Info>, check_links: bool) {
    let mut diffs = Vec::new();
    for (k, ia) in a {
        match b.get(k) {
            None => diffs.push(format!("missing in checkout: {k}")),
            Some(ib) => {
                let mut ib2 = ib.clone_without_links();
                let mut ia2 = ia.clone_without_links();
                if check_links {
                    ia2.links = ia.links.clone();
                    ib2.links = ib.links.clone();
                }
                if ia2 != ib2 {
                    diffs.push(format!("{k}:\n  source   {ia2:?}\n  checkout {ib2:?}"));
                }
            }
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("extra in checkout: {k}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

impl Info {
    fn clone_without_links(&self) -> Info {
        Info {
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            mtime: self.mtime,
            xattrs: self.xattrs.clone(),
            content: self.content,
            target: self.target.clone(),
            rdev: self.rdev,
            links: vec![],
        }
    }
}
