//! The virtual paths that are not in the working tree: `.lake/` (info, control,
//! at/<when>/...) and `views/` at the mount's root. Answered through the hooks.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use super::caller::{effective_mode, Caller};
use super::hooks::VolumeHooks;
use super::sys::time;
use lakefs::chunklist::Piece;
use lakefs::id::ObjectId;
use lakefs::tree::{Content, Meta, Node};

/// Virtual inode numbers live far above the counter used for real inodes.
pub const BASE: u64 = 1 << 56;
pub const LAKE_DIR: u64 = BASE + 1;
pub const INFO: u64 = BASE + 2;
pub const CONTROL: u64 = BASE + 3;
pub const AT: u64 = BASE + 4;
pub const VIEWS: u64 = BASE + 5;
const FIRST_DYNAMIC: u64 = BASE + 16;
/// The size `.lake/control` shows: the kernel runs direct writes in parallel only
/// below the end of a file, and requests are far smaller than this.
pub const CONTROL_SIZE: u64 = 1 << 20;

/// Names at the root that belong to the driver, not the working tree.
pub fn is_reserved_root_name(name: &OsStr) -> bool {
    name == ".lake" || name == "views"
}

pub fn is_virtual(ino: u64) -> bool {
    ino >= BASE
}

#[derive(Clone)]
pub enum VNode {
    LakeDir,
    Info,
    Control,
    At,
    Views,
    /// A view's directory as one caller sees it: each identity has its own inode,
    /// owned by it and closed to others (mode 0500), so a listing the kernel cached
    /// for one user is never served to another.
    ViewDir {
        view: String,
        uid: u32,
        gid: u32,
    },
    ViewLink(Vec<u8>),
    /// A directory of a past tree; `root` is the tree of `<when>/` (for hard links).
    AtDir {
        tree: ObjectId,
        root: ObjectId,
        meta: Meta,
    },
    AtFile {
        content: Content,
        size: u64,
        meta: Meta,
    },
    AtLink {
        target: Vec<u8>,
        meta: Meta,
    },
    AtOther {
        kind: FileType,
        meta: Meta,
        rdev: u64,
    },
}

pub struct Virt {
    hooks: Arc<dyn VolumeHooks>,
    nodes: Mutex<HashMap<u64, VNode>>,
    by_name: Mutex<HashMap<(u64, Vec<u8>), u64>>,
    /// The directory each bound inode is in (for ".." in listings).
    parents: Mutex<HashMap<u64, u64>>,
    next: AtomicU64,
    started: SystemTime,
    /// The last listing of each view directory, and when it was made: a long listing
    /// takes several readdir requests, and only the first (offset 0) filters the view
    /// again; lookups that follow a listing (`ls -l`) are answered from it for a while.
    listings: Mutex<HashMap<u64, (Instant, Listing)>>,
}

/// How long lookups in a view directory are answered from its last listing.
const LISTING_FRESH: Duration = Duration::from_secs(5);

type Listing = Vec<(u64, FileType, Vec<u8>)>;

/// What opening a virtual file gives.
pub enum VOpen {
    Bytes(Vec<u8>),
    Chunked(ChunkedFile),
    Control,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn io_err(_e: lakefs::error::Error) -> Errno {
    Errno::EIO
}

impl Virt {
    pub fn new(hooks: Arc<dyn VolumeHooks>) -> Virt {
        Virt {
            hooks,
            nodes: Mutex::new(HashMap::new()),
            by_name: Mutex::new(HashMap::new()),
            parents: Mutex::new(HashMap::new()),
            next: AtomicU64::new(FIRST_DYNAMIC),
            started: SystemTime::now(),
            listings: Mutex::new(HashMap::new()),
        }
    }

    fn node(&self, ino: u64) -> Option<VNode> {
        match ino {
            LAKE_DIR => Some(VNode::LakeDir),
            INFO => Some(VNode::Info),
            CONTROL => Some(VNode::Control),
            AT => Some(VNode::At),
            VIEWS => Some(VNode::Views),
            _ => lock(&self.nodes).get(&ino).cloned(),
        }
    }

    /// The inode for `name` in virtual directory `parent`, (re)bound to `node`.
    fn bind(&self, parent: u64, name: &[u8], node: VNode) -> u64 {
        let mut by_name = lock(&self.by_name);
        let mut nodes = lock(&self.nodes);
        let key = (parent, name.to_vec());
        let ino = match by_name.get(&key) {
            // A view entry whose target changed (another file took the name) gets a
            // new inode: the kernel caches symlink targets per inode.
            Some(&ino) if matches!((nodes.get(&ino), &node), (Some(VNode::ViewLink(old)), VNode::ViewLink(new)) if old != new) => {
                self.next.fetch_add(1, Ordering::Relaxed)
            }
            Some(&ino) => ino,
            None => self.next.fetch_add(1, Ordering::Relaxed),
        };
        by_name.insert(key, ino);
        nodes.insert(ino, node);
        lock(&self.parents).insert(ino, parent);
        ino
    }

    /// The directory virtual directory `ino` is in.
    pub fn parent(&self, ino: u64) -> u64 {
        match ino {
            LAKE_DIR | VIEWS => super::inode::ROOT,
            INFO | CONTROL | AT => LAKE_DIR,
            _ => lock(&self.parents).get(&ino).copied().unwrap_or(super::inode::ROOT),
        }
    }

    fn synthetic(&self, ino: u64, kind: FileType, perm: u16, size: u64) -> FileAttr {
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn attr_of_meta(&self, ino: u64, kind: FileType, meta: &Meta, size: u64, rdev: u64) -> FileAttr {
        let t = time(meta.mtime, i64::from(meta.mtime_nsec));
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            // Past trees are read-only: show them without write bits. The kernel checks
            // them by mode bits alone, so a recorded ACL is folded in (it only takes away).
            perm: (effective_mode(meta) & 0o7555) as u16,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: meta.uid,
            gid: meta.gid,
            rdev: rdev as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    pub fn getattr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let node = self.node(ino).ok_or(Errno::ENOENT)?;
        Ok(match node {
            VNode::LakeDir => self.synthetic(ino, FileType::Directory, 0o555, 0),
            // Listings that change without a change through the mount (new commits,
            // catalog updates): a new mtime at every lookup makes the kernel drop the
            // listing it cached (the driver has no opendir; see `Driver::opendir`).
            VNode::At | VNode::Views => {
                let mut a = self.synthetic(ino, FileType::Directory, 0o555, 0);
                a.mtime = SystemTime::now();
                a
            }
            VNode::ViewDir { uid, gid, .. } => {
                let mut a = self.synthetic(ino, FileType::Directory, 0o500, 0);
                (a.mtime, a.uid, a.gid) = (SystemTime::now(), uid, gid);
                a
            }
            VNode::Info => self.synthetic(ino, FileType::RegularFile, 0o444, self.hooks.info().len() as u64),
            VNode::Control => self.synthetic(ino, FileType::RegularFile, 0o666, CONTROL_SIZE),
            VNode::ViewLink(t) => self.synthetic(ino, FileType::Symlink, 0o777, t.len() as u64),
            VNode::AtDir { meta, .. } => self.attr_of_meta(ino, FileType::Directory, &meta, 0, 0),
            VNode::AtFile { meta, size, .. } => self.attr_of_meta(ino, FileType::RegularFile, &meta, size, 0),
            VNode::AtLink { meta, target } => {
                let mut a = self.attr_of_meta(ino, FileType::Symlink, &meta, target.len() as u64, 0);
                a.perm = 0o777;
                a
            }
            VNode::AtOther { kind, meta, rdev } => self.attr_of_meta(ino, kind, &meta, 0, rdev),
        })
    }

    /// The inode of view `view`'s directory as `caller` sees it.
    fn view_dir(&self, caller: &Caller, view: &str) -> u64 {
        // Per identity: uid, gid and groups decide what the listing holds.
        let mut key = view.as_bytes().to_vec();
        key.push(0);
        key.extend_from_slice(format!("{}:{}:{:?}", caller.uid(), caller.gid(), caller.groups()).as_bytes());
        let node = VNode::ViewDir { view: view.to_owned(), uid: caller.uid(), gid: caller.gid() };
        self.bind(VIEWS, &key, node)
    }

    /// Lookup of `name` in the virtual directory `parent` by `caller`; for the root, `parent` is 1.
    pub fn lookup(&self, caller: &Caller, parent: u64, name: &OsStr) -> Result<FileAttr, Errno> {
        let nb = name.as_bytes();
        let ino = match self.node(parent).ok_or(Errno::ENOENT)? {
            VNode::LakeDir => match nb {
                b"info" => INFO,
                b"control" => CONTROL,
                b"at" => AT,
                _ => return Err(Errno::ENOENT),
            },
            VNode::At => {
                let when = std::str::from_utf8(nb).map_err(|_| Errno::ENOENT)?;
                match self.hooks.tree_at(when).map_err(io_err)? {
                    Some((tree, meta)) => self.bind(AT, nb, VNode::AtDir { tree, root: tree, meta }),
                    None => return Err(Errno::ENOENT),
                }
            }
            VNode::Views => {
                let view = std::str::from_utf8(nb).map_err(|_| Errno::ENOENT)?;
                if !self.hooks.views().iter().any(|v| v == view) {
                    return Err(Errno::ENOENT);
                }
                self.view_dir(caller, view)
            }
            VNode::ViewDir { .. } => {
                // From the last listing while it is fresh, else from a new one (which
                // the lookups after it use: `ls -l` of a long view filters it once).
                let find = |l: &Listing| l.iter().find(|e| e.2 == nb).map(|e| e.0);
                let cached = lock(&self.listings).get(&parent).filter(|l| l.0.elapsed() < LISTING_FRESH).map(|l| find(&l.1));
                let found = match cached {
                    Some(found) => found,
                    None => find(&self.list(caller, parent, true)?),
                };
                found.ok_or(Errno::ENOENT)?
            }
            VNode::AtDir { tree, root, .. } => {
                let node = self.at_child(&tree, &root, nb)?.ok_or(Errno::ENOENT)?;
                self.bind(parent, nb, node)
            }
            _ => return Err(Errno::ENOTDIR),
        };
        self.getattr(ino)
    }

    fn at_child(&self, tree: &ObjectId, root: &ObjectId, name: &[u8]) -> Result<Option<VNode>, Errno> {
        let lake = self.hooks.lake();
        let t = lake.read_tree(tree).map_err(io_err)?;
        let Ok(i) = t.entries.binary_search_by(|e| e.name.as_slice().cmp(name)) else {
            return Ok(None);
        };
        let mut node = t.entries[i].node.clone();
        // A hard link names the path of its first name from the root of the tree.
        let mut hops = 0;
        while let Node::Hardlink { target } = &node {
            hops += 1;
            if hops > 8 {
                return Err(Errno::EIO);
            }
            let mut cur = *root;
            let parts: Vec<&[u8]> = target.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
            let mut found = None;
            for (k, p) in parts.iter().enumerate() {
                let t = lake.read_tree(&cur).map_err(io_err)?;
                let Ok(i) = t.entries.binary_search_by(|e| e.name.as_slice().cmp(p)) else {
                    return Ok(None);
                };
                if k + 1 == parts.len() {
                    found = Some(t.entries[i].node.clone());
                } else if let Node::Dir { tree, .. } = &t.entries[i].node {
                    cur = *tree;
                } else {
                    return Ok(None);
                }
            }
            node = found.ok_or(Errno::ENOENT)?;
        }
        Ok(Some(match node {
            Node::File { meta, size, content } => VNode::AtFile { content, size, meta },
            Node::Dir { meta, tree } => VNode::AtDir { tree, root: *root, meta },
            Node::Symlink { meta, target } => VNode::AtLink { target, meta },
            Node::CharDev { meta, rdev } => VNode::AtOther { kind: FileType::CharDevice, meta, rdev },
            Node::BlockDev { meta, rdev } => VNode::AtOther { kind: FileType::BlockDevice, meta, rdev },
            Node::Fifo { meta } => VNode::AtOther { kind: FileType::NamedPipe, meta, rdev: 0 },
            Node::Socket { meta } => VNode::AtOther { kind: FileType::Socket, meta, rdev: 0 },
            Node::Hardlink { .. } => return Err(Errno::EIO),
        }))
    }

    /// Entries of a virtual directory (without "." and "..") for `caller`, binding
    /// inodes for them; `fresh` at the start of a listing, else a view directory's
    /// entries are the ones of its last listing.
    pub fn list(&self, caller: &Caller, ino: u64, fresh: bool) -> Result<Listing, Errno> {
        let mut out = Vec::new();
        match self.node(ino).ok_or(Errno::ENOENT)? {
            VNode::LakeDir => {
                out.push((INFO, FileType::RegularFile, b"info".to_vec()));
                out.push((CONTROL, FileType::RegularFile, b"control".to_vec()));
                out.push((AT, FileType::Directory, b"at".to_vec()));
            }
            VNode::At => {
                for when in self.hooks.recent_times() {
                    // Bound lazily on lookup; the listing only needs a stable number.
                    let ino = *lock(&self.by_name)
                        .entry((AT, when.as_bytes().to_vec()))
                        .or_insert_with(|| self.next.fetch_add(1, Ordering::Relaxed));
                    out.push((ino, FileType::Directory, when.into_bytes()));
                }
            }
            VNode::Views => {
                for v in self.hooks.views() {
                    let ino = self.view_dir(caller, &v);
                    out.push((ino, FileType::Directory, v.into_bytes()));
                }
            }
            VNode::ViewDir { view, .. } => {
                if let Some(l) = lock(&self.listings).get(&ino).filter(|_| !fresh) {
                    return Ok(l.1.clone());
                }
                for e in self.hooks.view_entries(caller, &view).unwrap_or_default() {
                    let link = self.bind(ino, e.name.as_bytes(), VNode::ViewLink(view_target(&e.path)));
                    out.push((link, FileType::Symlink, e.name.into_bytes()));
                }
                lock(&self.listings).insert(ino, (Instant::now(), out.clone()));
            }
            VNode::AtDir { tree, root, .. } => {
                let t = self.hooks.lake().read_tree(&tree).map_err(io_err)?;
                for e in t.entries {
                    let Some(node) = self.at_child(&tree, &root, &e.name)? else {
                        continue;
                    };
                    let kind = match &node {
                        VNode::AtDir { .. } => FileType::Directory,
                        VNode::AtLink { .. } => FileType::Symlink,
                        VNode::AtOther { kind, .. } => *kind,
                        _ => FileType::RegularFile,
                    };
                    let c = self.bind(ino, &e.name, node);
                    out.push((c, kind, e.name));
                }
            }
            _ => return Err(Errno::ENOTDIR),
        }
        Ok(out)
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>, Errno> {
        match self.node(ino).ok_or(Errno::ENOENT)? {
            VNode::ViewLink(t) | VNode::AtLink { target: t, .. } => Ok(t),
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn open(&self, ino: u64, write: bool) -> Result<VOpen, Errno> {
        match self.node(ino).ok_or(Errno::ENOENT)? {
            VNode::Control => Ok(VOpen::Control),
            _ if write => Err(Errno::EROFS),
            VNode::Info => Ok(VOpen::Bytes(self.hooks.info())),
            VNode::AtFile { content: Content::Chunked(list), .. } => {
                let list = self.hooks.lake().read_chunklist(&list).map_err(io_err)?;
                let mut chunks = Vec::with_capacity(list.pieces.len());
                let mut start = 0u64;
                for piece in list.pieces {
                    let id = match piece {
                        Piece::Chunk(id, _) => Some(id),
                        Piece::Hole(_) => None,
                    };
                    chunks.push((id, start, piece.len()));
                    start += piece.len();
                }
                Ok(VOpen::Chunked(ChunkedFile { chunks, cache: Mutex::new(None) }))
            }
            VNode::AtFile { content, .. } => {
                // Whole objects are the small files (chunked above a few MiB): read at once.
                let mut buf = Vec::new();
                self.hooks.lake().write_content(&content, &mut buf).map_err(io_err)?;
                Ok(VOpen::Bytes(buf))
            }
            VNode::LakeDir | VNode::At | VNode::Views | VNode::ViewDir { .. } | VNode::AtDir { .. } => Err(Errno::EISDIR),
            _ => Err(Errno::EACCES),
        }
    }
}

/// A past file read by chunks (random access without reading the whole file).
pub struct ChunkedFile {
    /// (chunk id or None for a hole, offset of its first byte, length)
    chunks: Vec<(Option<ObjectId>, u64, u64)>,
    /// The last chunk read: sequential reads of it need one lake read.
    cache: Mutex<Option<(usize, Arc<Vec<u8>>)>>,
}

impl ChunkedFile {
    /// `lseek` SEEK_DATA or SEEK_HOLE at `offset`: the chunk list's holes are the
    /// file's (and its end is one), so a sparse copy of a past file (a restore) stays sparse.
    pub fn seek(&self, offset: u64, whence: i32) -> Result<u64, Errno> {
        let size = self.chunks.last().map_or(0, |c| c.1 + c.2);
        let data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return Err(Errno::EINVAL),
        };
        if offset >= size {
            return Err(Errno::ENXIO);
        }
        let first = self.chunks.partition_point(|c| c.1 + c.2 <= offset);
        match self.chunks[first..].iter().find(|c| c.0.is_some() == data) {
            Some(c) => Ok(c.1.max(offset)),
            None if data => Err(Errno::ENXIO),
            None => Ok(size),
        }
    }
}

impl Virt {
    pub fn read_chunked(&self, f: &ChunkedFile, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(size as usize);
        let mut i = f.chunks.partition_point(|c| c.1 <= offset).saturating_sub(1);
        let mut pos = offset;
        while out.len() < size as usize && i < f.chunks.len() {
            let (id, start, len) = f.chunks[i];
            if pos >= start + len {
                i += 1;
                continue;
            }
            let Some(id) = id else {
                // A hole reads as zeros.
                let take = (start + len - pos).min((size as usize - out.len()) as u64) as usize;
                out.resize(out.len() + take, 0);
                pos += take as u64;
                i += 1;
                continue;
            };
            let cached = lock(&f.cache).as_ref().filter(|c| c.0 == i).map(|c| c.1.clone());
            let data = match cached {
                Some(d) => d,
                None => {
                    let d = Arc::new(self.hooks.lake().read_object(&id).map_err(io_err)?.1);
                    if d.len() as u64 != len {
                        return Err(Errno::EIO);
                    }
                    *lock(&f.cache) = Some((i, d.clone()));
                    d
                }
            };
            let from = (pos - start) as usize;
            let take = (data.len() - from).min(size as usize - out.len());
            out.extend_from_slice(&data[from..from + take]);
            pos += take as u64;
            i += 1;
        }
        Ok(out)
    }
}

/// `views/NAME/ENTRY` points two levels up, back into the volume, at the name's
/// bytes (the catalog holds paths in their escaped text form).
fn view_target(path: &str) -> Vec<u8> {
    let path = path.trim_start_matches('/');
    let mut t = b"../../".to_vec();
    t.extend_from_slice(&lakefs::names::from_escaped(path));
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_past_file_reports_its_holes() {
        let id = Some(ObjectId::hash(b"x"));
        // data 0..10, hole 10..110, data 110..115, hole 115..200
        let f = ChunkedFile { chunks: vec![(id, 0, 10), (None, 10, 100), (id, 110, 5), (None, 115, 85)], cache: Mutex::new(None) };
        let (data, hole) = (libc::SEEK_DATA, libc::SEEK_HOLE);
        assert_eq!(f.seek(0, data), Ok(0));
        assert_eq!(f.seek(5, hole), Ok(10));
        assert_eq!(f.seek(10, data), Ok(110));
        assert_eq!(f.seek(50, hole), Ok(50), "inside a hole");
        assert_eq!(f.seek(112, hole), Ok(115));
        assert_eq!(f.seek(120, data), Err(Errno::ENXIO), "only a hole follows");
        assert_eq!(f.seek(200, hole), Err(Errno::ENXIO), "at the end");
        assert_eq!(f.seek(0, libc::SEEK_END), Err(Errno::EINVAL));
        let dense = ChunkedFile { chunks: vec![(id, 0, 10)], cache: Mutex::new(None) };
        assert_eq!(dense.seek(3, hole), Ok(10), "the end is a hole");
    }
}
