//! The FUSE inode table: one entry per backing inode the kernel knows, holding an
//! O_PATH fd of it, its lookup count and its latest name (for hook paths).
//!
//! Node ids are the backing inode numbers (the root's is 1, as FUSE wants), so
//! `st_ino` equals the `d_ino` readdir passes through, and an id names the same
//! inode after a daemon restart: with the backing generation as the FUSE
//! generation, the kernel's file handles (`name_to_handle_at`, NFS) survive a
//! remount the way ext4's own do. Inodes of other file systems (a mount point
//! inside the working tree) get ids from a counter above any ext4 number.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fuser::BackingId;

use super::sys;

pub const ROOT: u64 = 1;
/// Ids from here on are counted, not inode numbers (ext4's are 32-bit).
const COUNTED: u64 = 1 << 48;

/// Where an inode was last seen: its parent's FUSE inode and its name there.
/// `parent` 0: not known (found by its number, for a file handle); its path is
/// then asked of the kernel (see [`Table::rel_path`]).
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
    /// The backing generation: the FUSE generation of this node id.
    pub generation: u32,
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
    /// The working tree's backing device and root inode.
    root_key: (u64, u64),
    /// The working tree as the kernel names it (prefix of [`sys::path_of`]).
    root_path: Vec<u8>,
}

impl Table {
    pub fn new(root_fd: OwnedFd, st: &libc::stat) -> Table {
        let key = (st.st_dev, st.st_ino);
        let root_path = sys::path_of(root_fd.as_raw_fd()).unwrap_or_default();
        let root = Arc::new(Inode {
            fd: root_fd,
            key,
            generation: 0,
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
        Table { maps: RwLock::new(Maps { by_ino, by_key }), next: AtomicU64::new(COUNTED), root_key: key, root_path }
    }

    /// The node id of a backing inode of the working tree's file system.
    fn id_of(&self, key: (u64, u64)) -> Option<u64> {
        if key == self.root_key {
            return Some(ROOT);
        }
        (key.0 == self.root_key.0 && (2..COUNTED).contains(&key.1)).then_some(key.1)
    }

    /// The node id readdir reports for a `d_ino` of the working tree's file system.
    pub fn dirent_ino(&self, d_ino: u64) -> u64 {
        self.id_of((self.root_key.0, d_ino)).unwrap_or(d_ino)
    }

    /// Whether node id `ino` may name a backing inode by its number (see [`Table::id_of`]).
    pub fn is_numbered(ino: u64) -> bool {
        (2..COUNTED).contains(&ino)
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        self.maps.read().ok()?.by_ino.get(&ino).cloned()
    }

    /// Registers a lookup of the backing inode `fd` (stat `st`) as `name` in `parent`:
    /// an existing entry gains one lookup and the new name, else a new entry is made.
    /// `parent` 0 registers a lookup without a name (by number, or of ".."): a
    /// known entry keeps its name, a new one has none yet.
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
                    set_loc(*ino, node, parent, name);
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
                set_loc(ino, node, parent, name);
                return ino;
            }
        }
        let ino = self.id_of(key).unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed));
        let fmt = st.st_mode & libc::S_IFMT;
        let generation = if ino < COUNTED { sys::generation(fd.as_raw_fd()) } else { 0 };
        let node = Arc::new(Inode {
            fd,
            key,
            generation,
            is_symlink: fmt == libc::S_IFLNK,
            nlookup: AtomicU64::new(1),
            loc: Mutex::new(Location { parent, name: if parent == 0 { OsString::new() } else { name.to_owned() } }),
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
                // Still open: the kernel may send FORGET before the RELEASE of a file
                // it has no dentry for (opened by handle); the RELEASE still needs
                // the entry (for its path), and drops it (see `Table::drop_unused`).
                let open = match node.open.lock() {
                    Ok(o) => o.opens,
                    Err(p) => p.into_inner().opens,
                };
                (prev <= n && open == 0).then_some(node.key)
            }
            None => None,
        };
        if let Some(key) = gone {
            Self::remove(&mut maps, ino, key);
        }
    }

    /// After the last RELEASE: drops `ino` if the kernel forgot it meanwhile.
    pub fn drop_unused(&self, ino: u64) {
        let mut maps = match self.maps.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let gone = maps.by_ino.get(&ino).filter(|n| n.nlookup.load(Ordering::Relaxed) == 0).map(|n| n.key);
        if let Some(key) = gone {
            let open = maps.by_ino.get(&ino).map_or(0, |n| match n.open.lock() {
                Ok(o) => o.opens,
                Err(p) => p.into_inner().opens,
            });
            if open == 0 {
                Self::remove(&mut maps, ino, key);
            }
        }
    }

    fn remove(maps: &mut Maps, ino: u64, key: (u64, u64)) {
        maps.by_ino.remove(&ino);
        if maps.by_key.get(&key) == Some(&ino) {
            maps.by_key.remove(&key);
        }
    }

    /// Mount-relative path of `ino` from the names last seen ("" for the root),
    /// as bytes: names need not be UTF-8. Above an inode without a known name,
    /// the kernel's path of its fd is used.
    pub fn rel_path(&self, ino: u64) -> Vec<u8> {
        match self.get(ino) {
            Some(node) if ino != ROOT => self.rel_path_of(&node),
            _ => Vec::new(),
        }
    }

    /// [`Table::rel_path`] of a node the caller holds: it works even after the
    /// node left the table (a FORGET racing the RELEASE that reports its path).
    pub fn rel_path_of(&self, first: &Arc<Inode>) -> Vec<u8> {
        let mut parts: Vec<OsString> = Vec::new();
        let mut next = Some(first.clone());
        let mut guard = 0;
        while let Some(node) = next.take() {
            guard += 1;
            if guard > 4096 {
                break;
            }
            let loc = match node.loc.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if loc.parent == 0 {
                if let Some(p) = self.path_inside(node.raw()) {
                    parts.push(OsString::from_vec(p));
                }
                break;
            }
            parts.push(loc.name.clone());
            if loc.parent != ROOT {
                next = self.get(loc.parent);
            }
        }
        let mut out = Vec::new();
        for p in parts.iter().rev() {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(p.as_bytes());
        }
        out
    }

    /// The path of `fd` relative to the working tree, if the kernel places it
    /// inside it ("" for the root itself).
    pub fn path_inside(&self, fd: RawFd) -> Option<Vec<u8>> {
        let p = sys::path_of(fd)?;
        if self.root_path.is_empty() || !p.starts_with(b"/") {
            // Not named, or "(unreachable)/...": outside the mount the root is on.
            return None;
        }
        if p == self.root_path {
            return Some(Vec::new());
        }
        // The root of a private mount (see `sys::detached_tree`) is "/" itself.
        let base = self.root_path.strip_suffix(b"/").unwrap_or(&self.root_path);
        let rest = p.strip_prefix(base)?.strip_prefix(b"/")?;
        Some(rest.to_vec())
    }

    /// Path of `name` inside directory `parent`.
    pub fn child_path(&self, parent: u64, name: &OsStr) -> Vec<u8> {
        lakefs::names::join(&self.rel_path(parent), name.as_bytes())
    }

    /// After a rename: the moved inode (if known) now lives at (newparent, newname).
    pub fn moved(&self, ino: u64, newparent: u64, newname: &OsStr) {
        if let Some(node) = self.get(ino) {
            set_loc(ino, &node, newparent, newname);
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

/// The root never moves (a ".." lookup reaches it too); nor does an unnamed
/// lookup (`parent` 0) forget a name.
fn set_loc(ino: u64, node: &Inode, parent: u64, name: &OsStr) {
    if ino == ROOT || parent == 0 {
        return;
    }
    let mut loc = match node.loc.lock() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    if loc.parent != parent || loc.name != name {
        loc.parent = parent;
        loc.name = name.to_owned();
    }
}
