//! Checking a tree out to a directory, exactly: content, modes, owners, times,
//! xattrs, hard links, device nodes, fifos, sockets, holes. Files are either
//! written as copies or hard-linked to loose objects (a checkout farm sharing the
//! store's inodes, for the POSIX zone's read-only lower layer).
//!
//! A tree may come from elsewhere (an install medium, a remote), so it is
//! planned and validated before anything is written ([`plan`]: hard-link
//! targets relative, normalised, inside the tree, to an entry that may be
//! linked; no deeper than [`MAX_DEPTH`]), and every entry is then created
//! beneath the target through [`crate::beneath`], never through a symlink, so
//! even a validation bug cannot write outside it.
//!
//! A hard-link checkout hands out the store's own inodes: a write through one
//! changes the loose object. Before a loose object is linked again it is checked
//! (size, mtime and owner as recorded; the whole content re-hashed when someone
//! other than root could have written it) and, if changed, rewritten from an
//! intact copy (packed, or another loose object of the same content) or refused.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::Mode;
use rayon::prelude::*;

use crate::beneath::Beneath;
use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::progress::Progress;
use crate::tree::{Content, Meta, Node};
use crate::writer::WriteSession;

/// Directories nested deeper than this are refused (a crafted tree could
/// otherwise exhaust the stack; real trees stay far below it).
pub const MAX_DEPTH: usize = 1024;

#[derive(Clone, Copy, Debug, Default)]
pub struct CheckoutOptions {
    /// Hard-link files to loose objects instead of copying (materialising them first).
    pub hardlink: bool,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct CheckoutStats {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Loose objects found changed (written to through a hard-link checkout) and rewritten.
    pub healed: u64,
}

struct FileJob {
    rel: Vec<u8>,
    meta: Meta,
    size: u64,
    content: Content,
}

/// Everything a checkout will create, in order, validated.
pub struct Plan {
    /// Directories, parents first.
    dirs: Vec<(Vec<u8>, Meta)>,
    files: Vec<FileJob>,
    /// Symlinks and special files (created as they are).
    others: Vec<(Vec<u8>, Node)>,
    /// (target, new name), both tree-relative.
    links: Vec<(Vec<u8>, Vec<u8>)>,
    stats: CheckoutStats,
}

/// Why a tree is refused.
fn unsafe_tree(path: &[u8], why: impl Into<String>) -> Error {
    Error::UnsafeTree { path: String::from_utf8_lossy(path).into_owned(), why: why.into() }
}

/// Reads the whole tree and validates it, writing nothing (see the module notes).
pub fn plan(lake: &Lake, tree: &ObjectId) -> Result<Plan> {
    let mut plan = Plan { dirs: Vec::new(), files: Vec::new(), others: Vec::new(), links: Vec::new(), stats: CheckoutStats::default() };
    // Tree-relative path of every entry that is not a directory -> whether it may be linked to.
    let mut linkable: HashMap<Vec<u8>, bool> = HashMap::new();
    walk(lake, tree, b"", 0, &mut plan, &mut linkable)?;
    for (target, name) in &plan.links {
        let normal = !target.is_empty()
            && !target.starts_with(b"/")
            && target.split(|b| *b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..");
        if !normal {
            return Err(unsafe_tree(
                name,
                format!("hard-link target '{}' is not a plain path inside the tree", String::from_utf8_lossy(target)),
            ));
        }
        match linkable.get(target.as_slice()) {
            Some(true) => {}
            Some(false) => {
                return Err(unsafe_tree(name, format!("hard-link target '{}' is itself a hard link", String::from_utf8_lossy(target))))
            }
            None => {
                return Err(unsafe_tree(
                    name,
                    format!(
                        "hard-link target '{}' is not a file of the tree (missing, a directory, or reached through a symlink)",
                        String::from_utf8_lossy(target)
                    ),
                ))
            }
        }
    }
    Ok(plan)
}

fn walk(lake: &Lake, tree: &ObjectId, dir: &[u8], depth: usize, plan: &mut Plan, linkable: &mut HashMap<Vec<u8>, bool>) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(unsafe_tree(dir, format!("directories nested deeper than {MAX_DEPTH} levels")));
    }
    // Entry names were checked when the tree was decoded: no '/', NUL, '.', '..'.
    let t = lake.read_tree(tree)?;
    for e in t.entries {
        let rel = crate::names::join(dir, &e.name);
        match e.node {
            Node::Dir { meta, tree } => {
                plan.stats.dirs += 1;
                plan.dirs.push((rel.clone(), meta));
                walk(lake, &tree, &rel, depth + 1, plan, linkable)?;
            }
            Node::File { meta, size, content } => {
                plan.stats.files += 1;
                plan.stats.bytes += size;
                linkable.insert(rel.clone(), true);
                plan.files.push(FileJob { rel, meta, size, content });
            }
            Node::Hardlink { target } => {
                plan.stats.others += 1;
                linkable.insert(rel.clone(), false);
                plan.links.push((target, rel));
            }
            other => {
                plan.stats.others += 1;
                linkable.insert(rel.clone(), true);
                plan.others.push((rel, other));
            }
        }
    }
    Ok(())
}

/// Checks that `tree` could be checked out safely (what `verify` and `fsck` run).
pub fn validate(lake: &Lake, tree: &ObjectId) -> Result<()> {
    plan(lake, tree).map(|_| ())
}

fn check_target(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut it) => {
            if it.next().is_some() {
                return Err(Error::TargetNotEmpty { path: dest.to_owned() });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(dest).at(dest),
        Err(e) => Err(Error::io(dest, e)),
    }
}

/// Creates a new regular file `rel` (no symlink followed, none replaced).
fn create_file(out: &Beneath, rel: &[u8]) -> Result<std::fs::File> {
    let e = out.entry(rel)?;
    let fd = openat(
        &e.dir,
        e.name_os(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|err| Error::io(out.path().join(OsStr::from_bytes(rel)), err.into()))?;
    Ok(std::fs::File::from(fd))
}

fn write_copy(lake: &Lake, out: &Beneath, job: &FileJob) -> Result<()> {
    let path = out.path().join(OsStr::from_bytes(&job.rel));
    let mut f = create_file(out, &job.rel)?;
    let n = lake.write_content_to_file(&job.content, &mut f, &path)?;
    if n != job.size {
        return Err(Error::CorruptObject { id: job.content.id(), why: format!("content is {n} bytes, the tree says {}", job.size) });
    }
    fsmeta::apply_fd(&f, &path, &job.meta)
}

/// Whether someone other than root could have written a file with this metadata
/// (its owner, group or others, or an ACL): then only its content proves it intact.
fn others_may_write(meta: &Meta) -> bool {
    meta.uid != 0 || meta.mode & 0o022 != 0 || meta.xattrs.iter().any(|(k, _)| k.as_slice() == b"system.posix_acl_access")
}

fn hashes_to(path: &Path, id: &ObjectId) -> bool {
    let mut h = blake3::Hasher::new();
    std::fs::File::open(path).and_then(|f| h.update_reader(f).map(|_| ())).is_ok() && ObjectId::from(h.finalize()) == *id
}

/// Whether loose object `obj` still is what key `job` names: its stat fields as
/// recorded, and its content re-hashed when they differ or when someone other
/// than root could have written it.
fn loose_state(obj: &Path, job: &FileJob, id: &ObjectId) -> Result<Loose> {
    let md = match std::fs::symlink_metadata(obj) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loose::Changed),
        Err(e) => return Err(Error::io(obj, e)),
    };
    let m = &job.meta;
    if !md.is_file() || md.len() != job.size {
        return Ok(Loose::Changed);
    }
    let same_stat = md.mode() & 0o7777 == m.mode
        && md.uid() == m.uid
        && md.gid() == m.gid
        && md.mtime() == m.mtime
        && md.mtime_nsec() == i64::from(m.mtime_nsec);
    if same_stat && !others_may_write(m) {
        return Ok(Loose::Intact);
    }
    Ok(match (hashes_to(obj, id), same_stat) {
        (true, true) => Loose::Intact,
        (true, false) => Loose::MetaChanged,
        (false, _) => Loose::Changed,
    })
}

/// What a hard-link checkout found a loose object to be.
#[derive(PartialEq)]
enum Loose {
    Intact,
    /// Content as recorded, but mode, owner or times changed through a checkout.
    MetaChanged,
    /// Content changed (or gone).
    Changed,
}

/// Rewrites loose object `key` from an intact copy of content `id`: the object
/// itself when only its metadata changed, else the packed object, or another
/// loose object of the same content that still hashes right. The changed inode
/// stays with the checkouts that changed it.
fn heal_loose(lake: &Lake, key: &ObjectId, id: &ObjectId, job: &FileJob, obj: &Path, state: Loose) -> Result<()> {
    let mut source: Option<std::path::PathBuf> = (state == Loose::MetaChanged).then(|| obj.to_owned());
    if source.is_none() && lake.db().location(id)?.is_none() {
        source = lake
            .db()
            .loose_keys_of(id)?
            .into_iter()
            .filter(|other| other != key)
            .map(|other| crate::loose::path(lake.root(), &other))
            .find(|p| hashes_to(p, id));
        if source.is_none() {
            return Err(Error::CorruptObject {
                id: *id,
                why: format!(
                    "loose object {} (content of {}) was changed in place, through a hard-link checkout, and the lake holds no intact copy; \
                     checkouts of it fail until the file is restored (lakectl verify names every path that uses it)",
                    obj.display(),
                    String::from_utf8_lossy(&job.rel)
                ),
            });
        }
    }
    crate::loose::write(lake.root(), key, &job.meta, |f| {
        match &source {
            Some(p) => {
                // Hashed as copied: the source was checked, but a writer could be at it.
                let mut h = blake3::Hasher::new();
                crate::sparse::copy(&mut std::fs::File::open(p).at(p)?, job.size, f, |b| {
                    h.update(b);
                })
                .at(p)?;
                if ObjectId::from(h.finalize()) != *id {
                    return Err(Error::CorruptObject { id: *id, why: format!("{} changed while it was copied", p.display()) });
                }
            }
            None => {
                lake.write_content_to_file(&job.content, f, obj)?;
            }
        }
        Ok(())
    })?;
    eprintln!(
        "lakefs: loose object {} (content of {}) had been changed through a hard-link checkout; rewritten from an intact copy",
        obj.display(),
        String::from_utf8_lossy(&job.rel)
    );
    Ok(())
}

/// Returns whether the loose object had to be healed.
fn write_link(w: &WriteSession, out: &Beneath, job: &FileJob) -> Result<bool> {
    let lake = w.lake();
    let Content::Whole(id) = job.content else {
        // Chunked content has no whole-file id to key a loose object on: copy it.
        write_copy(lake, out, job)?;
        return Ok(false);
    };
    let key = crate::loose::key(&id, &job.meta);
    let obj = crate::loose::path(lake.root(), &key);
    let mut healed = false;
    if !w.has_loose(&key) {
        crate::loose::write(lake.root(), &key, &job.meta, |f| lake.write_content_to_file(&job.content, f, &obj).map(|_| ()))?;
    } else {
        let state = loose_state(&obj, job, &id)?;
        if state != Loose::Intact {
            heal_loose(lake, &key, &id, job, &obj, state)?;
            healed = true;
        }
    }
    w.note_loose(key, id, job.size);
    let e = out.entry(&job.rel)?;
    // The objects directory is the lake's own (private, and the write session holds
    // the lock), so the object checked above is the one linked. Two threads may
    // write the same new object; link(2) of a name that the other's rename is just
    // replacing fails with ENOENT (the old inode's last link is going), so retry.
    let mut r = nix::unistd::linkat(nix::fcntl::AT_FDCWD, &obj, &e.dir, e.name_os(), AtFlags::empty());
    for _ in 0..8 {
        if r != Err(nix::errno::Errno::ENOENT) {
            break;
        }
        std::thread::yield_now();
        r = nix::unistd::linkat(nix::fcntl::AT_FDCWD, &obj, &e.dir, e.name_os(), AtFlags::empty());
    }
    match r {
        Ok(()) => Ok(healed),
        // Too many links on one inode: this one file is a copy.
        Err(nix::errno::Errno::EMLINK) => write_copy(lake, out, job).map(|_| healed),
        Err(nix::errno::Errno::EXDEV) => Err(Error::Invalid(format!(
            "{}: a hard-link checkout must be on the lake's file system ({}); check out without --hardlink to copy",
            out.path().display(),
            lake.root().display()
        ))),
        Err(err) => Err(Error::io(out.path().join(OsStr::from_bytes(&job.rel)), err.into())),
    }
}

fn make_other(out: &Beneath, rel: &[u8], node: &Node) -> Result<()> {
    let e = out.entry(rel)?;
    let path = out.path().join(OsStr::from_bytes(rel));
    let (kind, meta, rdev) = match node {
        Node::Symlink { meta, target } => {
            nix::unistd::symlinkat(OsStr::from_bytes(target), &e.dir, e.name_os()).map_err(|err| Error::io(&path, err.into()))?;
            return fsmeta::apply(&e.via, meta, true).map_err(|err| rename_path(err, &path));
        }
        Node::CharDev { meta, rdev } => (libc::S_IFCHR, meta, *rdev),
        Node::BlockDev { meta, rdev } => (libc::S_IFBLK, meta, *rdev),
        Node::Fifo { meta } => (libc::S_IFIFO, meta, 0),
        Node::Socket { meta } => (libc::S_IFSOCK, meta, 0),
        Node::Dir { .. } | Node::File { .. } | Node::Hardlink { .. } => {
            return Err(Error::Invalid(format!("{}: not a special file", path.display())))
        }
    };
    make_special(&e.via, kind, meta, rdev).map_err(|err| rename_path(err, &path))
}

/// Errors about `/proc/self/fd/N/NAME` name the real path instead.
fn rename_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Io { source, .. } => Error::io(path, source),
        e => e,
    }
}

/// Checks out root tree `tree` (with root metadata `root`) into `dest`, which
/// must be empty or absent. The tree is validated first; nothing is written if
/// it is refused.
pub fn checkout(
    lake: &Lake,
    tree: &ObjectId,
    root: &Meta,
    dest: &Path,
    opts: CheckoutOptions,
    progress: &dyn Progress,
) -> Result<CheckoutStats> {
    progress.phase("reading the tree", 0, 0);
    let mut plan = plan(lake, tree)?;
    check_target(dest)?;
    let out = Beneath::open(dest)?;
    progress.phase("creating directories", 0, 0);
    for (rel, _) in &plan.dirs {
        let e = out.entry(rel)?;
        nix::sys::stat::mkdirat(&e.dir, e.name_os(), Mode::from_bits_truncate(0o700))
            .map_err(|err| Error::io(dest.join(OsStr::from_bytes(rel)), err.into()))?;
    }
    for (rel, node) in &plan.others {
        make_other(&out, rel, node)?;
    }
    progress.phase("writing files", plan.stats.files, plan.stats.bytes);
    let session = if opts.hardlink { Some(WriteSession::begin(lake)?) } else { None };
    let healed = std::sync::atomic::AtomicU64::new(0);
    plan.files.par_iter().try_for_each(|job| {
        match &session {
            Some(w) => {
                if write_link(w, &out, job)? {
                    healed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            None => write_copy(lake, &out, job)?,
        }
        progress.advance(1, job.size);
        Ok::<_, Error>(())
    })?;
    if let Some(w) = session {
        w.finish(&[], &[])?;
    }
    plan.stats.healed = healed.into_inner();
    for (target, rel) in &plan.links {
        let from = out.entry(target)?;
        let to = out.entry(rel)?;
        nix::unistd::linkat(&from.dir, from.name_os(), &to.dir, to.name_os(), AtFlags::empty()).map_err(|e| {
            Error::Invalid(format!(
                "{}: cannot hard-link to {}: {e}",
                dest.join(OsStr::from_bytes(rel)).display(),
                dest.join(OsStr::from_bytes(target)).display()
            ))
        })?;
    }
    // Directory metadata last, deepest first, so creating children does not
    // disturb a parent's mtime (or a read-only mode) that is already set.
    for (rel, meta) in plan.dirs.iter().rev() {
        let e = out.entry(rel)?;
        fsmeta::apply(&e.via, meta, false).map_err(|err| rename_path(err, &dest.join(OsStr::from_bytes(rel))))?;
    }
    fsmeta::apply(dest, root, false)?;
    progress.finish();
    Ok(plan.stats)
}

/// Creates one node at `path` (which must not exist) as a copy: a file, a whole
/// directory tree, a symlink, a special file, or a hard link to `target` (a
/// tree-relative path, resolved beneath `root`). Used to write single changes
/// into a live root.
pub fn materialize(lake: &Lake, node: &Node, path: &Path, root: &Path) -> Result<()> {
    match node {
        Node::Dir { meta, tree } => {
            checkout(lake, tree, meta, path, CheckoutOptions::default(), &crate::progress::Silent)?;
        }
        Node::File { meta, size, content } => {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(path).at(path)?;
            let n = lake.write_content_to_file(content, &mut f, path)?;
            if n != *size {
                return Err(Error::CorruptObject { id: content.id(), why: format!("content is {n} bytes, the tree says {size}") });
            }
            fsmeta::apply_fd(&f, path, meta)?;
        }
        Node::Hardlink { target } => {
            let within = Beneath::open(root)?;
            let from = within.entry(target).map_err(|e| {
                unsafe_tree(path.as_os_str().as_bytes(), format!("hard-link target '{}': {e}", String::from_utf8_lossy(target)))
            })?;
            std::fs::hard_link(&from.via, path).map_err(|e| {
                Error::Invalid(format!("{}: cannot hard-link to {}: {e}", path.display(), root.join(OsStr::from_bytes(target)).display()))
            })?;
        }
        Node::Symlink { meta, target } => {
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).at(path)?;
            fsmeta::apply(path, meta, true)?;
        }
        Node::CharDev { meta, rdev } => make_special(path, libc::S_IFCHR, meta, *rdev)?,
        Node::BlockDev { meta, rdev } => make_special(path, libc::S_IFBLK, meta, *rdev)?,
        Node::Fifo { meta } => make_special(path, libc::S_IFIFO, meta, 0)?,
        Node::Socket { meta } => make_special(path, libc::S_IFSOCK, meta, 0)?,
    }
    Ok(())
}

fn make_special(path: &Path, kind: libc::mode_t, meta: &Meta, rdev: u64) -> Result<()> {
    fsmeta::mknod(path, kind, meta.mode, rdev)?;
    fsmeta::apply(path, meta, false)
}
