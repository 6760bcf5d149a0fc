//! Checking a tree out to a directory, exactly: content, modes, owners, times,
//! xattrs, hard links, device nodes, fifos, sockets. Files are either written as
//! copies or hard-linked to loose objects (a checkout farm sharing the store's
//! inodes, for the POSIX zone's read-only lower layer).

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, IoContext, Result};
use crate::fsmeta;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::progress::Progress;
use crate::tree::{Content, Meta, Node};
use crate::writer::WriteSession;

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
}

struct FileJob {
    path: PathBuf,
    meta: Meta,
    size: u64,
    content: Content,
}

struct Plan {
    files: Vec<FileJob>,
    links: Vec<(PathBuf, PathBuf)>,
    dirs: Vec<(PathBuf, Meta)>,
    stats: CheckoutStats,
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

fn walk(lake: &Lake, tree: &ObjectId, dir: &Path, dest: &Path, plan: &mut Plan) -> Result<()> {
    let t = lake.read_tree(tree)?;
    for e in t.entries {
        let path = dir.join(OsStr::from_bytes(&e.name));
        match e.node {
            Node::Dir { meta, tree } => {
                std::fs::create_dir(&path).at(&path)?;
                plan.stats.dirs += 1;
                walk(lake, &tree, &path, dest, plan)?;
                plan.dirs.push((path, meta));
            }
            Node::File { meta, size, content } => {
                plan.stats.files += 1;
                plan.stats.bytes += size;
                plan.files.push(FileJob { path, meta, size, content });
            }
            Node::Hardlink { target } => {
                plan.stats.others += 1;
                plan.links.push((dest.join(OsStr::from_bytes(&target)), path));
            }
            Node::Symlink { meta, target } => {
                plan.stats.others += 1;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).at(&path)?;
                fsmeta::apply(&path, &meta, true)?;
            }
            Node::CharDev { meta, rdev } => special(&path, libc::S_IFCHR, &meta, rdev, plan)?,
            Node::BlockDev { meta, rdev } => special(&path, libc::S_IFBLK, &meta, rdev, plan)?,
            Node::Fifo { meta } => special(&path, libc::S_IFIFO, &meta, 0, plan)?,
            Node::Socket { meta } => special(&path, libc::S_IFSOCK, &meta, 0, plan)?,
        }
    }
    Ok(())
}

fn special(path: &Path, kind: libc::mode_t, meta: &Meta, rdev: u64, plan: &mut Plan) -> Result<()> {
    plan.stats.others += 1;
    make_special(path, kind, meta, rdev)
}

fn write_copy(lake: &Lake, job: &FileJob) -> Result<()> {
    let mut f = std::fs::File::create(&job.path).at(&job.path)?;
    let n = lake.write_content_to_file(&job.content, &mut f, &job.path)?;
    if n != job.size {
        return Err(Error::CorruptObject { id: job.content.id(), why: format!("content is {n} bytes, the tree says {}", job.size) });
    }
    fsmeta::apply_fd(&f, &job.path, &job.meta)
}

fn write_link(w: &WriteSession, job: &FileJob) -> Result<()> {
    let lake = w.lake();
    let Content::Whole(id) = job.content else {
        // Chunked content has no whole-file id to key a loose object on: copy it.
        return write_copy(lake, job);
    };
    let key = crate::loose::key(&id, &job.meta);
    let obj = crate::loose::path(lake.root(), &key);
    if !w.has_loose(&key) {
        crate::loose::write(lake.root(), &key, &job.meta, |f| {
            let mut bw = std::io::BufWriter::new(f);
            lake.write_content(&job.content, &mut bw)?;
            bw.flush().at(&job.path)
        })?;
    }
    w.note_loose(key, id, job.size);
    match std::fs::hard_link(&obj, &job.path) {
        Ok(()) => Ok(()),
        // Too many links on one inode, or another file system: fall back to a copy.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMLINK) | Some(libc::EXDEV)) => write_copy(lake, job),
        Err(e) => Err(Error::io(&job.path, e)),
    }
}

/// Checks out root tree `tree` (with root metadata `root`) into `dest`, which
/// must be empty or absent.
pub fn checkout(
    lake: &Lake,
    tree: &ObjectId,
    root: &Meta,
    dest: &Path,
    opts: CheckoutOptions,
    progress: &dyn Progress,
) -> Result<CheckoutStats> {
    check_target(dest)?;
    let mut plan = Plan { files: Vec::new(), links: Vec::new(), dirs: Vec::new(), stats: CheckoutStats::default() };
    progress.phase("creating directories", 0, 0);
    walk(lake, tree, dest, dest, &mut plan)?;
    progress.phase("writing files", plan.stats.files, plan.stats.bytes);
    let session = if opts.hardlink { Some(WriteSession::begin(lake)?) } else { None };
    plan.files.par_iter().try_for_each(|job| {
        match &session {
            Some(w) => write_link(w, job)?,
            None => write_copy(lake, job)?,
        }
        progress.advance(1, job.size);
        Ok::<_, Error>(())
    })?;
    if let Some(w) = session {
        w.finish(&[], &[])?;
    }
    for (target, path) in &plan.links {
        std::fs::hard_link(target, path)
            .map_err(|e| Error::Invalid(format!("{}: cannot hard-link to {}: {e}", path.display(), target.display())))?;
    }
    // Directory metadata last, deepest first, so creating children does not
    // disturb a parent's mtime (or a read-only mode) that is already set.
    for (path, meta) in &plan.dirs {
        fsmeta::apply(path, meta, false)?;
    }
    fsmeta::apply(dest, root, false)?;
    progress.finish();
    Ok(plan.stats)
}

/// Creates one node at `path` (which must not exist) as a copy: a file, a whole
/// directory tree, a symlink, a special file, or a hard link to `/target` under
/// `root`. Used to write single changes into a live root.
pub fn materialize(lake: &Lake, node: &Node, path: &Path, root: &Path) -> Result<()> {
    match node {
        Node::Dir { meta, tree } => {
            checkout(lake, tree, meta, path, CheckoutOptions::default(), &crate::progress::Silent)?;
        }
        Node::File { meta, size, content } => {
            write_copy(lake, &FileJob { path: path.to_owned(), meta: meta.clone(), size: *size, content: *content })?;
        }
        Node::Hardlink { target } => {
            let t = root.join(OsStr::from_bytes(target));
            std::fs::hard_link(&t, path)
                .map_err(|e| Error::Invalid(format!("{}: cannot hard-link to {}: {e}", path.display(), t.display())))?;
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
