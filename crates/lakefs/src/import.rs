//! Importing a directory tree into the lake as trees and content objects.
//!
//! A full import walks the whole source in sorted order (so hard-link "first
//! names" are deterministic), then stores file contents in parallel. An
//! incremental import takes a parent tree and a list of changed paths (what an
//! overlay upper layer holds): only those paths are scanned and only the trees on
//! their way to the root are rewritten, so the cost follows the change.
//!
//! Scan options ([`ScanOptions`]) leave out excluded paths (a volume's POSIX
//! zone) and reuse content ids like git's index: a file whose size, mtime (ns),
//! mode, owner and xattrs equal those recorded for the same path in a base tree,
//! or for the same inode by an earlier import ([`StatCache`]), is not read again,
//! unless its mtime is so close to that scan that a later write could have kept it.
//!
//! Paths longer than PATH_MAX (a volume's working tree sits below
//! `LAKE/state/NAME/`, so a path that fits below the mount point may not fit
//! below the working tree) are reached through their parent directory, opened
//! piece by piece: see [`long_path`]. Shorter paths take the plain calls.
//!
//! Limitation of incremental imports: hard links are recorded among the scanned
//! paths only; a new link between a changed and an unchanged path is stored as a
//! separate file. A full import records every hard link. (A LAKE-zone volume
//! lists every name of a linked file together: see `lake_volume::links`,
//! fed by [`ScanOptions::on_link`].)

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::chunklist::ChunkList;
use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::ObjectId;
use crate::pack::Kind;
use crate::progress::Progress;
use crate::tree::{Content, Entry, Meta, Node, Tree};
use crate::writer::WriteSession;

/// Files up to this size are read whole; larger ones are streamed.
const READ_WHOLE_MAX: u64 = 64 << 20;

#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Store file contents as loose, hard-linkable objects (POSIX zone) instead of packs.
    pub loose: bool,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportStats {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Bytes appended to packs (compressed) by this import.
    pub packed_bytes: u64,
    /// Files whose content id was reused from a base tree or the stat cache (not read).
    pub reused: u64,
}

/// A write landing within this long of a scan may leave mtime unchanged (coarse
/// kernel clocks); files modified that close to the scan are always read.
const RACY_NS: i128 = 50_000_000;

/// Content ids of files imported earlier, by inode, so a renamed directory is
/// not read again. Bounded: cleared when it grows past `max` entries.
pub struct StatCache {
    max: usize,
    map: Mutex<HashMap<(u64, u64), Remembered>>,
}

#[derive(Clone)]
struct Remembered {
    size: u64,
    meta: Meta,
    content: Content,
    scanned_ns: i128,
}

impl StatCache {
    pub fn new(max: usize) -> StatCache {
        StatCache { max, map: Mutex::new(HashMap::new()) }
    }

    fn get(&self, key: (u64, u64)) -> Option<Remembered> {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned()
    }

    fn put(&self, key: (u64, u64), r: Remembered) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= self.max {
            m.clear();
        }
        m.insert(key, r);
    }

    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A predicate over source-relative paths (bytes, no leading '/').
pub type PathFilter = Arc<dyn Fn(&[u8]) -> bool + Send + Sync>;

/// What to leave out and what to reuse (see the module notes).
#[derive(Clone, Default)]
pub struct ScanOptions {
    /// Source-relative paths for which this is true are left out, with
    /// everything below them.
    pub exclude: Option<PathFilter>,
    /// Remembers and reuses content ids by inode across imports.
    pub cache: Option<Arc<StatCache>>,
    /// Root tree whose files may be reused at the same path by a full import
    /// (an incremental import uses its parent tree).
    pub reuse_base: Option<ObjectId>,
    /// When the scan that produced the base tree started (ns since the epoch);
    /// without it, base-tree entries are not reused.
    pub base_scanned_ns: Option<i128>,
    /// Incremental imports take exactly the listed paths: a directory on the way
    /// to one that the parent lacks gets only the listed children (instead of
    /// being scanned whole).
    pub exact: bool,
    /// Source-relative paths for which this is true keep what the base (or
    /// parent) tree holds, whatever is on disk: paths that could not be read
    /// (a volume's skipped paths) are neither rescanned nor recorded as removed.
    pub hold: Option<PathFilter>,
    /// Told of every non-directory the scan meets that has more than one name:
    /// its source-relative path and (device, inode). A volume learns from it
    /// which names share an inode, so a change through one name rescans all.
    #[allow(clippy::type_complexity)]
    pub on_link: Option<Arc<dyn Fn(&[u8], (u64, u64)) + Send + Sync>>,
    /// Directories on another file system than the source root (mount points)
    /// are recorded, empty, without descending into them (`tar --one-file-system`).
    pub one_file_system: bool,
}

impl std::fmt::Debug for ScanOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanOptions")
            .field("exclude", &self.exclude.is_some())
            .field("cache", &self.cache.as_ref().map(|c| c.len()))
            .field("reuse_base", &self.reuse_base)
            .field("base_scanned_ns", &self.base_scanned_ns)
            .field("exact", &self.exact)
            .field("hold", &self.hold.is_some())
            .field("on_link", &self.on_link.is_some())
            .field("one_file_system", &self.one_file_system)
            .finish()
    }
}

impl ScanOptions {
    fn excluded(&self, rel: &Path) -> bool {
        self.exclude.as_ref().is_some_and(|f| f(rel.as_os_str().as_bytes()))
    }

    fn held(&self, rel: &Path) -> bool {
        self.hold.as_ref().is_some_and(|f| f(rel.as_os_str().as_bytes()))
    }
}

/// Paths longer than the kernel takes in one call (PATH_MAX, counting the NUL).
pub(crate) mod long_path {
    use std::ffi::OsStr;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};

    use nix::fcntl::{openat, OFlag, AT_FDCWD};
    use nix::sys::stat::Mode;

    use crate::error::{Error, IoContext, Result};

    /// The longest path passed to the kernel as it is.
    pub(crate) const LIMIT: usize = libc::PATH_MAX as usize - 1;

    fn too_long() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENAMETOOLONG)
    }

    /// Opens the parent directory of `path` (O_PATH) in pieces of at most
    /// [`LIMIT`] bytes, each relative to the previous one; returns it and the
    /// last component.
    fn open_parent(path: &Path) -> std::io::Result<(OwnedFd, &OsStr)> {
        let name = path.file_name().ok_or_else(too_long)?;
        let parent = path.parent().ok_or_else(too_long)?.as_os_str().as_bytes();
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let mut dir: Option<OwnedFd> = None;
        let mut rest = parent;
        while !rest.is_empty() {
            let n = if rest.len() <= LIMIT {
                rest.len()
            } else {
                // Cut at the last '/' that fits (a component is at most NAME_MAX).
                rest[..=LIMIT].iter().rposition(|b| *b == b'/').filter(|i| *i > 0).ok_or_else(too_long)?
            };
            let piece = OsStr::from_bytes(&rest[..n]);
            let next = match &dir {
                Some(d) => openat(d, piece, flags, Mode::empty()),
                None => openat(AT_FDCWD, piece, flags, Mode::empty()),
            };
            dir = Some(next.map_err(std::io::Error::from)?);
            rest = &rest[n..];
            while let [b'/', tail @ ..] = rest {
                rest = tail;
            }
        }
        Ok((dir.ok_or_else(too_long)?, name))
    }

    /// Runs `f` on `path`; a path longer than [`LIMIT`] is handed to `f` as
    /// `/proc/self/fd/N/NAME`, N its parent opened piecewise (errors still name
    /// `path`). The last component is looked up by `f` itself, so no-follow
    /// calls keep their meaning.
    pub(crate) fn with<T>(path: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
        if path.as_os_str().len() <= LIMIT {
            return f(path);
        }
        let (dir, name) = open_parent(path).at(path)?;
        let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        let r = f(&short);
        drop(dir);
        r.map_err(|e| match e {
            Error::Io { source, .. } => Error::io(path, source),
            e => e,
        })
    }

    /// lstat; `Ok(None)` when nothing is there (nor its parent).
    pub(crate) fn lstat(path: &Path) -> Result<Option<std::fs::Metadata>> {
        match with(path, |p| std::fs::symlink_metadata(p).at(p)) {
            Ok(m) => Ok(Some(m)),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens for reading without moving the file's atime (as backup tools do: a
    /// commit is no access by the user; under a `noatime` mount, or for a
    /// timestamp from before 1970, it would show). O_NOATIME needs the owner or
    /// CAP_FOWNER: without them, a plain open.
    pub(crate) fn open(path: &Path) -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        with(path, |p| {
            match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOATIME).open(p) {
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => std::fs::File::open(p),
                r => r,
            }
            .at(p)
        })
    }
}

/// Nanoseconds since the epoch now (scan start times).
pub fn now_ns() -> i128 {
    let (s, n) = crate::util::now();
    i128::from(s) * 1_000_000_000 + i128::from(n)
}

fn mtime_ns(m: &Meta) -> i128 {
    i128::from(m.mtime) * 1_000_000_000 + i128::from(m.mtime_nsec)
}

enum Scan {
    Dir { meta: Meta, children: Vec<(Vec<u8>, Scan)> },
    File { meta: Meta, size: u64, path: PathBuf, ino: (u64, u64), content: Option<(Content, u64)> },
    Other(Node),
}

struct Scanner<'a> {
    src: &'a Path,
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: ImportStats,
    opts: &'a ScanOptions,
    lake: &'a crate::lake::Lake,
    scanned_ns: i128,
    /// The source root's device, for [`ScanOptions::one_file_system`].
    root_dev: u64,
}

fn rel_bytes(rel: &Path) -> Vec<u8> {
    rel.as_os_str().as_bytes().to_vec()
}

impl<'a> Scanner<'a> {
    fn new(src: &'a Path, opts: &'a ScanOptions, lake: &'a crate::lake::Lake) -> Self {
        let root_dev = std::fs::symlink_metadata(src).map(|m| m.dev()).unwrap_or(0);
        Scanner { src, links: HashMap::new(), stats: ImportStats::default(), opts, lake, scanned_ns: now_ns(), root_dev }
    }

    /// A content id known for this file without reading it, if any.
    fn reusable(&self, md: &std::fs::Metadata, meta: &Meta, base: Option<&Node>) -> Option<(Content, u64)> {
        if let (Some(Node::File { meta: bm, size, content }), Some(before)) = (base, self.opts.base_scanned_ns) {
            if *size == md.len() && bm == meta && mtime_ns(meta) < before - RACY_NS {
                return Some((*content, *size));
            }
        }
        let r = self.opts.cache.as_ref()?.get((md.dev(), md.ino()))?;
        (r.size == md.len() && r.meta == *meta && mtime_ns(meta) < r.scanned_ns - RACY_NS).then_some((r.content, r.size))
    }

    /// Scans `rel` (relative to the source root); `md` is its lstat; `base` is
    /// what a base tree holds at the same path (for reuse).
    fn scan(&mut self, rel: &Path, md: &std::fs::Metadata, base: Option<&Node>) -> Result<Scan> {
        let path = self.src.join(rel);
        let ft = md.file_type();
        if !ft.is_dir() && md.nlink() > 1 {
            let key = (md.dev(), md.ino());
            if let Some(f) = &self.opts.on_link {
                f(rel.as_os_str().as_bytes(), key);
            }
            if let Some(first) = self.links.get(&key) {
                self.stats.others += 1;
                return Ok(Scan::Other(Node::Hardlink { target: first.clone() }));
            }
            self.links.insert(key, rel_bytes(rel));
        }
        let meta = fsmeta::meta_from(md, long_path::with(&path, fsmeta::read_xattrs)?);
        if ft.is_dir() {
            self.stats.dirs += 1;
            if self.opts.one_file_system && md.dev() != self.root_dev {
                return Ok(Scan::Dir { meta, children: Vec::new() });
            }
            let mut names: Vec<_> = long_path::with(&path, |p| {
                std::fs::read_dir(p).at(p)?.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>().at(p)
            })?;
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            let base_tree = match base {
                // Reuse needs the base scan time; held paths need the base either way.
                Some(Node::Dir { tree, .. }) if self.opts.base_scanned_ns.is_some() || self.opts.hold.is_some() => {
                    Some(self.lake.read_tree(tree)?)
                }
                _ => None,
            };
            let mut children = Vec::with_capacity(names.len());
            for name in names {
                let crel = rel.join(&name);
                if self.opts.excluded(&crel) {
                    continue;
                }
                let cbase = base_tree.as_ref().and_then(|t| t.get(name.as_bytes())).map(|e| &e.node);
                if self.opts.held(&crel) {
                    // Kept as recorded (only a base tree can say what that is).
                    if let Some(n) = cbase {
                        children.push((name.as_bytes().to_vec(), Scan::Other(n.clone())));
                    }
                    continue;
                }
                let cpath = self.src.join(&crel);
                // None: removed while we listed the directory (the tree is live): left out.
                let Some(cmd) = long_path::lstat(&cpath)? else {
                    continue;
                };
                children.push((name.as_bytes().to_vec(), self.scan(&crel, &cmd, cbase)?));
            }
            return Ok(Scan::Dir { meta, children });
        }
        if ft.is_file() {
            self.stats.files += 1;
            self.stats.bytes += md.len();
            let content = self.reusable(md, &meta, base);
            if content.is_some() {
                self.stats.reused += 1;
            }
            return Ok(Scan::File { meta, size: md.len(), path, ino: (md.dev(), md.ino()), content });
        }
        self.stats.others += 1;
        let node = if ft.is_symlink() {
            let t = long_path::with(&path, |p| std::fs::read_link(p).at(p))?;
            Node::Symlink { meta, target: t.as_os_str().as_bytes().to_vec() }
        } else if ft.is_char_device() {
            Node::CharDev { meta, rdev: md.rdev() }
        } else if ft.is_block_device() {
            Node::BlockDev { meta, rdev: md.rdev() }
        } else if ft.is_fifo() {
            Node::Fifo { meta }
        } else if ft.is_socket() {
            Node::Socket { meta }
        } else {
            return Err(Error::UnsupportedFileType { path });
        };
        Ok(Scan::Other(node))
    }
}

fn collect_files<'s>(s: &'s mut Scan, out: &mut Vec<&'s mut Scan>) {
    match s {
        Scan::Dir { children, .. } => children.iter_mut().for_each(|(_, c)| collect_files(c, out)),
        Scan::File { .. } => out.push(s),
        Scan::Other(_) => {}
    }
}

/// Reads `path` and stores its content; returns the content reference and the
/// number of bytes actually read (the file may have changed since it was stat'ed).
pub fn store_file(w: &WriteSession, path: &Path, size: u64, meta: &Meta, opts: &ImportOptions) -> Result<(Content, u64)> {
    let params = w.lake().superblock().chunker;
    if opts.loose {
        return store_loose(w, path, size, meta);
    }
    let mut f = long_path::open(path)?;
    if size <= u64::from(params.max) {
        let mut buf = Vec::with_capacity(size as usize);
        f.read_to_end(&mut buf).at(path)?;
        if buf.len() <= params.max as usize {
            let id = ObjectId::hash(&buf);
            w.put_with_id(id, Kind::Data, &buf)?;
            return Ok((Content::Whole(id), buf.len() as u64));
        }
        // Grew while we looked: chunk what we have plus the rest.
        let rest = f;
        return store_chunked(w, path, std::io::Cursor::new(buf).chain(rest));
    }
    let extents = crate::sparse::data_extents(&f, size);
    if crate::sparse::has_holes(&extents, size) {
        return store_sparse(w, path, f, size, &extents);
    }
    store_chunked(w, path, f)
}

fn store_chunked(w: &WriteSession, path: &Path, reader: impl Read) -> Result<(Content, u64)> {
    let mut list = ChunkList::default();
    chunk_into(w, path, reader, &mut list)?;
    let n = list.size();
    let id = w.put(Kind::ChunkList, &list.encode())?;
    Ok((Content::Chunked(id), n))
}

/// A file with holes: only its data extents are read and chunked (each on its
/// own); the holes are recorded as holes. Time follows the data, not the size.
fn store_sparse(w: &WriteSession, path: &Path, mut f: std::fs::File, size: u64, extents: &[(u64, u64)]) -> Result<(Content, u64)> {
    use std::io::{Seek, SeekFrom};
    let mut list = ChunkList::default();
    let mut pos = 0u64;
    let mut whole = true;
    for &(off, len) in extents {
        list.push_hole(off - pos);
        f.seek(SeekFrom::Start(off)).at(path)?;
        let got = chunk_into(w, path, (&mut f).take(len), &mut list)?;
        pos = off + got;
        if got < len {
            // Shrank while we read: the content ends here.
            whole = false;
            break;
        }
    }
    if whole {
        list.push_hole(size - pos);
    }
    let n = list.size();
    if list.has_holes() {
        w.lake().enable_incompat(crate::superblock::INCOMPAT_SPARSE)?;
    }
    let id = w.put(Kind::ChunkList, &list.encode())?;
    Ok((Content::Chunked(id), n))
}

/// Chunks `reader` to its end, storing the chunks and appending them to `list`;
/// returns the number of bytes read.
fn chunk_into(w: &WriteSession, path: &Path, reader: impl Read, list: &mut ChunkList) -> Result<u64> {
    let io_err = |e| Error::io(path, e);
    let mut n = 0u64;
    crate::chunker::for_each_window(reader, w.lake().superblock().chunker, io_err, |chunks| -> Result<()> {
        // Hash and compress the window's chunks on all cores; keep their order.
        let ids: Vec<ObjectId> = chunks
            .par_iter()
            .map(|c| {
                let id = ObjectId::hash(c);
                w.put_chunk(id, c).map(|_| id)
            })
            .collect::<Result<_>>()?;
        for (id, c) in ids.into_iter().zip(chunks) {
            list.push_chunk(id, c.len() as u32);
            n += c.len() as u64;
        }
        Ok(())
    })?;
    Ok(n)
}

fn store_loose(w: &WriteSession, path: &Path, size: u64, meta: &Meta) -> Result<(Content, u64)> {
    if size <= READ_WHOLE_MAX {
        let buf = long_path::with(path, |p| std::fs::read(p).at(p))?;
        let id = ObjectId::hash(&buf);
        let key = crate::loose::key(&id, meta);
        if !w.has_loose(&key) {
            crate::loose::write(w.lake().root(), &key, meta, |f| std::io::Write::write_all(f, &buf).at(path))?;
            w.note_loose(key, id, buf.len() as u64);
        }
        return Ok((Content::Whole(id), buf.len() as u64));
    }
    // Large: copy into a scratch loose file (holes stay holes) while hashing,
    // then name it by the hash (the content must match the id we record).
    let mut f = long_path::open(path)?;
    let (id, n) = w.put_loose_stream(meta, |dst| {
        let mut h = blake3::Hasher::new();
        let n = crate::sparse::copy(&mut f, size, dst, |b| {
            h.update(b);
        })
        .at(path)?;
        Ok((ObjectId::from(h.finalize()), n))
    })?;
    Ok((Content::Whole(id), n))
}

fn store_all(w: &WriteSession, scans: &mut [&mut Scan], opts: &ImportOptions, progress: &dyn Progress) -> Result<()> {
    let mut files: Vec<&mut Scan> = Vec::new();
    for s in scans.iter_mut() {
        collect_files(s, &mut files);
    }
    // Large files first, so a big one does not start last and run alone.
    files.sort_by_key(|s| match s {
        Scan::File { size, .. } => std::cmp::Reverse(*size),
        _ => std::cmp::Reverse(0),
    });
    files.par_iter_mut().try_for_each(|s| {
        if let Scan::File { meta, size, path, content, .. } = &mut **s {
            if let Some((_, n)) = content {
                progress.advance(1, *n);
                return Ok(());
            }
            let r = match store_file(w, path, *size, meta, opts) {
                Ok(r) => r,
                // Removed between scan and read (the tree is live): recorded empty;
                // its removal is the next change the caller reports.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    let id = ObjectId::hash(b"");
                    w.put_with_id(id, Kind::Data, b"")?;
                    (Content::Whole(id), 0)
                }
                Err(e) => return Err(e),
            };
            progress.advance(1, r.1);
            *content = Some(r);
        }
        Ok(())
    })
}

/// Remembers the content ids of scanned files by inode (see [`StatCache`]).
fn remember(scans: &mut [&mut Scan], cache: Option<&StatCache>, scanned_ns: i128) {
    let Some(cache) = cache else { return };
    let mut files: Vec<&mut Scan> = Vec::new();
    for s in scans.iter_mut() {
        collect_files(s, &mut files);
    }
    for s in files {
        if let Scan::File { meta, size, ino, content: Some((c, n)), .. } = &*s {
            if n == size {
                cache.put(*ino, Remembered { size: *n, meta: meta.clone(), content: *c, scanned_ns });
            }
        }
    }
}

fn node_of(w: &WriteSession, s: Scan) -> Result<Node> {
    Ok(match s {
        Scan::Dir { meta, children } => {
            let mut tree = Tree { entries: Vec::with_capacity(children.len()) };
            for (name, c) in children {
                tree.entries.push(Entry { name, node: node_of(w, c)? });
            }
            tree.sort();
            Node::Dir { meta, tree: w.put_tree(&tree)? }
        }
        // The size recorded is what was read, even if the file changed after its stat.
        Scan::File { meta, content, path, .. } => {
            let (content, n) = content.ok_or_else(|| Error::Invalid(format!("{}: not stored", path.display())))?;
            Node::File { meta, size: n, content }
        }
        Scan::Other(n) => n,
    })
}

/// Imports the whole tree at `src`. Returns the root tree id and the root's metadata.
pub fn import_full(w: &WriteSession, src: &Path, opts: &ImportOptions, progress: &dyn Progress) -> Result<(ObjectId, Meta, ImportStats)> {
    import_full_with(w, src, opts, &ScanOptions::default(), progress)
}

/// [`import_full`] with exclusions and reuse.
pub fn import_full_with(
    w: &WriteSession,
    src: &Path,
    opts: &ImportOptions,
    scan: &ScanOptions,
    progress: &dyn Progress,
) -> Result<(ObjectId, Meta, ImportStats)> {
    let md = std::fs::symlink_metadata(src).at(src)?;
    if !md.is_dir() {
        return Err(Error::Invalid(format!("{} is not a directory", src.display())));
    }
    let mut sc = Scanner::new(src, scan, w.lake());
    progress.phase("scanning", 0, 0);
    let base = scan.reuse_base.map(|tree| Node::Dir { meta: Meta::default(), tree });
    let mut root = sc.scan(Path::new(""), &md, base.as_ref())?;
    let scanned_ns = sc.scanned_ns;
    let mut stats = sc.stats;
    progress.phase("storing", stats.files, stats.bytes);
    store_all(w, &mut [&mut root], opts, progress)?;
    remember(&mut [&mut root], scan.cache.as_deref(), scanned_ns);
    let Node::Dir { meta, tree } = node_of(w, root)? else {
        return Err(Error::Invalid(format!("{} is not a directory", src.display())));
    };
    stats.packed_bytes = w.written_bytes();
    progress.finish();
    Ok((tree, meta, stats))
}

/// A directory of the parent tree being edited: only the directories on the way
/// to changed paths are loaded; the rest stay as ids.
struct Edit {
    meta: Meta,
    children: BTreeMap<Vec<u8>, Slot>,
}

enum Slot {
    Kept(Node),
    Opened(Edit),
    Scanned(Scan),
}

impl Edit {
    fn open(w: &WriteSession, meta: Meta, tree: &ObjectId) -> Result<Edit> {
        let t = w.lake().read_tree(tree)?;
        Ok(Edit { meta, children: t.entries.into_iter().map(|e| (e.name, Slot::Kept(e.node))).collect() })
    }

    fn write(self, w: &WriteSession) -> Result<Node> {
        let mut tree = Tree { entries: Vec::with_capacity(self.children.len()) };
        for (name, slot) in self.children {
            let node = match slot {
                Slot::Kept(n) => n,
                Slot::Opened(e) => e.write(w)?,
                Slot::Scanned(s) => node_of(w, s)?,
            };
            tree.entries.push(Entry { name, node });
        }
        tree.sort();
        Ok(Node::Dir { meta: self.meta, tree: w.put_tree(&tree)? })
    }

    fn scans<'s>(&'s mut self, out: &mut Vec<&'s mut Scan>) {
        for slot in self.children.values_mut() {
            match slot {
                Slot::Opened(e) => e.scans(out),
                Slot::Scanned(s) => out.push(s),
                Slot::Kept(_) => {}
            }
        }
    }
}

/// Normalises change-list paths: relative, no `.`/`..`, no duplicates, and none
/// below another listed path (scanning the ancestor covers it).
fn normalise(changed: &[Vec<u8>]) -> Result<Vec<Vec<Vec<u8>>>> {
    let mut paths: Vec<Vec<Vec<u8>>> = Vec::new();
    for p in changed {
        let comps: Vec<Vec<u8>> = crate::names::components(p).map(<[u8]>::to_vec).collect();
        if comps.iter().any(|c| c == b"..") {
            return Err(Error::Invalid(format!("changed path '{}' contains '..'", crate::names::escape(p))));
        }
        paths.push(comps);
    }
    paths.sort();
    paths.dedup();
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    for p in paths {
        if out.last().is_some_and(|prev| p.starts_with(prev)) {
            continue;
        }
        out.push(p);
    }
    Ok(out)
}

/// Imports only `changed` paths of `src` (relative, as bytes) on top of
/// `parent` (a root tree id).
pub fn import_changes(
    w: &WriteSession,
    src: &Path,
    parent: &ObjectId,
    changed: &[Vec<u8>],
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<(ObjectId, Meta, ImportStats)> {
    import_changes_with(w, src, parent, changed, opts, &ScanOptions::default(), progress)
}

/// [`import_changes`] with exclusions and reuse: a changed path's entry in
/// `parent` is its base.
pub fn import_changes_with(
    w: &WriteSession,
    src: &Path,
    parent: &ObjectId,
    changed: &[Vec<u8>],
    opts: &ImportOptions,
    scan: &ScanOptions,
    progress: &dyn Progress,
) -> Result<(ObjectId, Meta, ImportStats)> {
    let root_md = std::fs::symlink_metadata(src).at(src)?;
    let paths = normalise(changed)?;
    if paths.iter().any(|p| p.is_empty()) {
        let scan = ScanOptions { reuse_base: Some(*parent), ..scan.clone() };
        return import_full_with(w, src, opts, &scan, progress);
    }
    let mut sc = Scanner::new(src, scan, w.lake());
    let mut root = Edit::open(w, fsmeta::meta_from(&root_md, fsmeta::read_xattrs(src)?), parent)?;
    progress.phase("scanning changes", 0, 0);
    for comps in &paths {
        let mut dir = &mut root;
        let mut rel = PathBuf::new();
        for (i, c) in comps.iter().enumerate() {
            rel.push(std::ffi::OsStr::from_bytes(c));
            // Held: what the parent holds stays, below it too.
            if scan.held(&rel) {
                break;
            }
            let abs = src.join(&rel);
            let md = long_path::lstat(&abs)?;
            let last = i + 1 == comps.len();
            // An excluded path is not in the tree, whatever is on disk.
            let md = if scan.excluded(&rel) { None } else { md };
            let Some(md) = md else {
                dir.children.remove(c);
                break;
            };
            if !last && md.is_dir() {
                // An ancestor: refresh its own metadata, descend into it.
                let meta = fsmeta::meta_from(&md, long_path::with(&abs, fsmeta::read_xattrs)?);
                let slot = dir.children.remove(c);
                let edit = match slot {
                    Some(Slot::Kept(Node::Dir { tree, .. })) => Edit::open(w, meta, &tree)?,
                    Some(Slot::Opened(mut e)) => {
                        e.meta = meta;
                        e
                    }
                    Some(Slot::Scanned(s)) => {
                        dir.children.insert(c.clone(), Slot::Scanned(s));
                        break;
                    }
                    // New or no longer a directory in the parent, and only the listed paths wanted.
                    Some(Slot::Kept(_)) | None if scan.exact => Edit { meta, children: BTreeMap::new() },
                    // New or no longer a directory in the parent: scan it whole.
                    other => {
                        let base = match &other {
                            Some(Slot::Kept(n)) => Some(n),
                            _ => None,
                        };
                        let s = sc.scan(&rel, &md, base)?;
                        dir.children.insert(c.clone(), Slot::Scanned(s));
                        break;
                    }
                };
                dir.children.insert(c.clone(), Slot::Opened(edit));
                let Some(Slot::Opened(next)) = dir.children.get_mut(c) else { unreachable!("just inserted") };
                dir = next;
            } else {
                // The last component, or the path runs through something that is not a directory now.
                let old = dir.children.remove(c);
                let base = match &old {
                    Some(Slot::Kept(n)) => Some(n),
                    _ => None,
                };
                let s = sc.scan(&rel, &md, base)?;
                dir.children.insert(c.clone(), Slot::Scanned(s));
                if !last {
                    break;
                }
            }
        }
    }
    let mut stats = std::mem::take(&mut sc.stats);
    progress.phase("storing", stats.files, stats.bytes);
    let mut scans = Vec::new();
    root.scans(&mut scans);
    store_all(w, &mut scans, opts, progress)?;
    remember(&mut scans, scan.cache.as_deref(), sc.scanned_ns);
    let meta = root.meta.clone();
    let Node::Dir { tree, .. } = root.write(w)? else { unreachable!("an Edit writes a directory") };
    stats.packed_bytes = w.written_bytes();
    progress.finish();
    Ok((tree, meta, stats))
}
