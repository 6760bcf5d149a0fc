//! The FUSE inode table: one entry per backing inode the kernel knows, holding an
//! O_PATH fd of it, its lookup count and its latest name (for hook paths).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fuser::BackingId;

pub const ROOT: u64 = 1;

/// Where an inode was last seen: its parent's FUSE inode and its name there.
pub struct Location {
    pub parent: u64,
    pub name: OsString,
}

/// Open-file state of an inode: counts and the shared passthrough backing id.
#[derive(Default)]
pub struct OpenState {
    pub opens: u32,
    pub writers: u32,
    pub backing: Option<Arc<BackingId>>,
}

pub struct Inode {
    pub fd: OwnedFd,
    pub key: (u64, u64),
    pub is_symlink: bool,
    pub nlookup: AtomicU64,
    pub loc: Mutex<Location>,
    pub open: Mutex<OpenState>,
}

impl Inode {
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

struct Maps {
    by_ino: HashMap<u64, Arc<Inode>>,
    by_key: HashMap<(u64, u64), u64>,
}

pub struct Table {
    maps: RwLock<Maps>,
    next: AtomicU64,
}

impl Table {
    pub fn new(root_fd: OwnedFd, st: &libc::stat) -> Table {
        let key = (st.st_dev, st.st_ino);
        let root = Arc::new(Inode {
            fd: root_fd,
            key,
            is_symlink: false,
            // The root is never forgotten.
            nlookup: AtomicU64::new(1 << 40),
            loc: Mutex::new(Location { parent: ROOT, name: OsString::new() }),
            open: Mutex::new(OpenState::default()),
        });
        let mut by_ino = HashMap::new();
        by_ino.insert(ROOT, root);
        let mut by_key = HashMap::new();
        by_key.insert(key, ROOT);
        Table { maps: RwLock::new(Maps { by_ino, by_key }), next: AtomicU64::new(2) }
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        self.maps.read().ok()?.by_ino.get(&ino).cloned()
    }

    /// Registers a lookup of the backing inode `fd` (stat `st`) as `name` in `parent`:
    /// an existing entry gains one lookup and the new name, else a new entry is made.
    pub fn remember(&self, fd: OwnedFd, st: &libc::stat, parent: u64, name: &OsStr) -> u64 {
        let key = (st.st_dev, st.st_ino);
        {
            let maps = match self.maps.read() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            if let Some(ino) = maps.by_key.get(&key) {
                if let Some(node) = maps.by_ino.get(ino) {
                    node.nlookup.fetch_add(1, Ordering::Relaxed);
                    set_loc(node, parent, name);
                    return *ino;
                }
            }
        }
        let mut maps = match self.maps.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(ino) = maps.by_key.get(&key).copied() {
            if let Some(node) = maps.by_ino.get(&ino) {
                node.nlookup.fetch_add(1, Ordering::Relaxed);
                set_loc(node, parent, name);
                return ino;
            }
        }
        let ino = self.next.fetch_add(1, Ordering::Relaxed);
        let fmt = st.st_mode & libc::S_IFMT;
        let node = Arc::new(Inode {
            fd,
            key,
            is_symlink: fmt == libc::S_IFLNK,
            nlookup: AtomicU64::new(1),
            loc: Mutex::new(Location { parent, name: name.to_owned() }),
            open: Mutex::new(OpenState::default()),
        });
        maps.by_ino.insert(ino, node);
        maps.by_key.insert(key, ino);
        ino
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let mut maps = match self.maps.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let gone = match maps.by_ino.get(&ino) {
            Some(node) => {
                let prev = node.nlookup.fetch_sub(n.min(node.nlookup.load(Ordering::Relaxed)), Ordering::Relaxed);
                if prev <= n {
                    Some(node.key)
                } else {
                    None
                }
            }
            None => None,
        };
        if let Some(key) = gone {
            maps.by_ino.remove(&ino);
            if maps.by_key.get(&key) == Some(&ino) {
                maps.by_key.remove(&key);
            }
        }
    }

    /// Mount-relative path of `ino` from the names last seen ("" for the root).
    pub fn rel_path(&self, ino: u64) -> String {
        let mut parts: Vec<OsString> = Vec::new();
        let mut cur = ino;
        let mut guard = 0;
        while cur != ROOT && guard < 4096 {
            guard += 1;
            let Some(node) = self.get(cur) else { break };
            let loc = match node.loc.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            parts.push(loc.name.clone());
            cur = loc.parent;
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(p.as_bytes());
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Path of `name` inside directory `parent`.
    pub fn child_path(&self, parent: u64, name: &OsStr) -> String {
        let mut p = self.rel_path(parent);
        if !p.is_empty() {
            p.push('/');
        }
        p.push_str(&name.to_string_lossy());
        p
    }

    /// After a rename: the moved inode (if known) now lives at (newparent, newname).
    pub fn moved(&self, ino: u64, newparent: u64, newname: &OsStr) {
        if let Some(node) = self.get(ino) {
            set_loc(&node, newparent, newname);
        }
    }

    pub fn ino_of_key(&self, key: (u64, u64)) -> Option<u64> {
        let maps = match self.maps.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        maps.by_key.get(&key).copied()
    }
}

fn set_loc(node: &Inode, parent: u64, name: &OsStr) {
    let mut loc = match node.loc.lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    if loc.parent != parent || loc.name != name {
        loc.parent = parent;
        loc.name = name.to_owned();
    }
}
