//! The passthrough file system (in the style of libfuse's passthrough_ll): every
//! FUSE inode holds an O_PATH fd of its backing inode in the working directory.
#![allow(unsafe_code)] // each operation is one syscall on a backing fd (libfuse's passthrough_ll, in Rust)

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    BsdFileFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, Notifier, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use super::caller::Caller;
use super::hooks::VolumeHooks;
use super::inode::{Inode, Table, ROOT};
use super::privs;
use super::sys::{self, attr_of, check, fstat, last_errno, AsCaller, CName, ProcPath, SysResult};
use super::virt::{self, VOpen, Virt};
use super::MountOptions;

/// Entries and attributes are cached for long: every change goes through this driver.
const TTL: Duration = Duration::from_secs(3600);
/// Virtual entries change behind the kernel's back (new commits, views).
const VTTL: Duration = Duration::ZERO;
/// No FLUSH on every close(2): the backing ext4 has no delayed errors to report
/// there, and locks are the kernel's. Saves a round trip per close.
const FILE_OPEN_FLAGS: FopenFlags = FopenFlags::FOPEN_NOFLUSH;
/// File handles above this are table handles (dirs, virtual files); below, a raw fd.
const TABLE_FH: u64 = 1 << 40;

enum Handle {
    Bytes(Vec<u8>),
    Chunked(virt::ChunkedFile),
    /// The reply to the last request, and where that request's write ended (the
    /// reply is read from there on, or from 0 by a pread before it).
    Control(Mutex<(u64, Vec<u8>)>),
}

/// A looked-up entry: what an ENTRY reply carries.
struct Found {
    attr: FileAttr,
    generation: u32,
    attr_ttl: Duration,
}

pub struct Driver {
    table: Table,
    hooks: Arc<dyn VolumeHooks>,
    virt: Virt,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    next_fh: AtomicU64,
    want_passthrough: bool,
    passthrough: Arc<AtomicBool>,
    /// Set once the session exists (see `super::session`): to drop cached attributes.
    notifier: Arc<OnceLock<Notifier>>,
    /// The working tree's root opened for reading: open_by_handle_at wants a real
    /// fd of the mount (not O_PATH).
    mount_fd: OwnedFd,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn to_timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Some(TimeOrNow::Now) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        Some(TimeOrNow::SpecificTime(st)) => match st.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec { tv_sec: d.as_secs().min(i64::MAX as u64) as i64, tv_nsec: d.subsec_nanos() as i64 },
            // fuser 0.18 decodes a time before 1970 (seconds < 0, nanoseconds >= 0,
            // as the kernel sends it) as `epoch - (|seconds| + nanoseconds)`: -0.5 s
            // arrives as -1.5 s. Undo exactly that, to get the kernel's values back.
            Err(e) => {
                libc::timespec { tv_sec: (e.duration().as_secs() as i64).wrapping_neg(), tv_nsec: e.duration().subsec_nanos() as i64 }
            }
        },
    }
}

/// Who sent a request (the catalog and control file answer as them).
fn caller_of(req: &Request) -> Caller {
    Caller::new(req.uid(), req.gid(), req.pid())
}

impl Driver {
    /// A driver over the working directory `workdir`.
    pub fn new(workdir: &Path, hooks: Arc<dyn VolumeHooks>, opts: &MountOptions) -> std::io::Result<Driver> {
        let c = std::ffi::CString::new(workdir.as_os_str().as_bytes()).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        let fd = match opts.atime_attr() {
            Some(attr) => sys::detached_tree(&c, attr).map_err(|e| {
                std::io::Error::new(e.kind(), format!("a private mount of it for the atime options (needs root and Linux 5.12+): {e}"))
            })?,
            None => {
                let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                unsafe { OwnedFd::from_raw_fd(fd) }
            }
        };
        let st = fstat(fd.as_raw_fd()).map_err(|e| std::io::Error::from_raw_os_error(e.code()))?;
        let mount_fd =
            sys::reopen(fd.as_raw_fd(), libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| std::io::Error::from_raw_os_error(e.code()))?;
        Ok(Driver {
            table: Table::new(fd, &st),
            virt: Virt::new(hooks.clone()),
            hooks,
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(TABLE_FH),
            want_passthrough: opts.passthrough,
            passthrough: Arc::new(AtomicBool::new(false)),
            notifier: Arc::new(OnceLock::new()),
            mount_fd,
        })
    }

    /// Where the session puts its notifier once it exists.
    pub fn notifier_slot(&self) -> Arc<OnceLock<Notifier>> {
        self.notifier.clone()
    }

    /// Set once the kernel granted FUSE passthrough (known after the mount's handshake).
    pub fn passthrough_flag(&self) -> Arc<AtomicBool> {
        self.passthrough.clone()
    }

    fn node(&self, ino: INodeNo) -> SysResult<Arc<Inode>> {
        self.table.get(ino.0).ok_or(Errno::ESTALE)
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(h));
        fh
    }

    fn handle(&self, fh: FileHandle) -> Option<Arc<Handle>> {
        lock(&self.handles).get(&fh.0).cloned()
    }

    /// Looks `name` up under `parent` and registers it.
    fn do_lookup(&self, parent: u64, dir: RawFd, name: &OsStr) -> SysResult<Found> {
        let cname = CName::new(name)?;
        let fd = sys::open_path(dir, &cname)?;
        let st = fstat(fd.as_raw_fd())?;
        let ino = self.table.remember(fd, &st, parent, name);
        Ok(self.found(ino, &st))
    }

    fn found(&self, ino: u64, st: &libc::stat) -> Found {
        let node = self.table.get(ino);
        Found {
            attr: attr_of(ino, st),
            generation: node.as_ref().map_or(0, |n| n.generation),
            attr_ttl: node.as_ref().map_or(TTL, |n| self.attr_ttl(n)),
        }
    }

    /// How long the kernel may keep `node`'s attributes: not at all while it is
    /// open for writing through FUSE passthrough, because writes through a shared
    /// mmap of the backing file change its mtime and ctime without the kernel's
    /// FUSE layer hearing of it (write(2) through passthrough does invalidate).
    fn attr_ttl(&self, node: &Inode) -> Duration {
        let st = lock(&node.open);
        if st.writers > 0 && st.backing.is_some() {
            Duration::ZERO
        } else {
            TTL
        }
    }

    fn reply_entry(&self, reply: ReplyEntry, r: SysResult<Found>) {
        match r {
            Ok(f) => reply.entry_with_ttls(&f.attr_ttl, &TTL, &f.attr, Generation(u64::from(f.generation))),
            Err(e) => reply.error(e),
        }
    }

    /// LOOKUP of "." and "..", which the kernel sends to turn a file handle into an
    /// inode (FUSE_EXPORT_SUPPORT): "." of a node id it does not hold (after a
    /// restart, or once it forgot it), ".." for a directory's parent. Node ids are
    /// backing inode numbers, so an unknown one is opened by number.
    fn lookup_dot(&self, ino: u64, dotdot: bool) -> SysResult<Found> {
        let Some(node) = self.table.get(ino) else {
            return if dotdot { Err(Errno::ESTALE) } else { self.lookup_by_number(ino) };
        };
        // Nothing above the working tree: the root's ".." is itself, as on ext4.
        let fd = if dotdot && ino != ROOT {
            sys::open_path(node.raw(), &CName::new(OsStr::new(".."))?)?
        } else {
            sys::reopen(node.raw(), libc::O_PATH)?
        };
        let st = fstat(fd.as_raw_fd())?;
        let id = self.table.remember(fd, &st, 0, OsStr::new(""));
        Ok(self.found(id, &st))
    }

    /// A node id the kernel had from a file handle: the backing inode of that
    /// number, if it is alive and inside the working tree (a handle must not
    /// reach the rest of the lake's file system).
    fn lookup_by_number(&self, ino: u64) -> SysResult<Found> {
        if !Table::is_numbered(ino) {
            return Err(Errno::ESTALE);
        }
        let root = self.node(INodeNo(ROOT))?;
        let fd = sys::open_by_ino(self.mount_fd.as_raw_fd(), ino)?;
        let st = fstat(fd.as_raw_fd())?;
        if st.st_dev != root.key.0 || st.st_ino != ino || self.table.path_inside(fd.as_raw_fd()).is_none() {
            return Err(Errno::ESTALE);
        }
        let id = self.table.remember(fd, &st, 0, OsStr::new(""));
        Ok(self.found(id, &st))
    }

    /// Drops what the kernel's rules drop from `node`'s setuid/setgid bits after
    /// `req`'s caller changed its contents (write, truncate, fallocate) or its mode
    /// or owner, which FUSE leaves to us (see `privs`).
    fn drop_privs(&self, req: &Request, node: &Inode, contents: bool, mode_or_owner: bool) -> SysResult<()> {
        if !contents && !mode_or_owner {
            return Ok(());
        }
        let st = fstat(node.raw())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || !privs::has_bits(st.st_mode) {
            return Ok(());
        }
        let caller = caller_of(req);
        let mut kill = 0;
        if contents {
            kill |= privs::suidgid_to_drop(st.st_mode, st.st_gid, &caller);
        }
        if mode_or_owner {
            kill |= privs::outsider_sgid_to_drop(st.st_mode, st.st_gid, &caller);
        }
        self.drop_bits(node, &st, kill)
    }

    /// chmod (as root) of `node` (stat `st`) to its mode without the bits `drop`.
    fn drop_bits(&self, node: &Inode, st: &libc::stat, drop: u32) -> SysResult<()> {
        let mode = st.st_mode & 0o7777;
        if mode & drop == 0 {
            return Ok(());
        }
        check(unsafe { libc::chmod(ProcPath::new(node.raw()).ptr(), mode & !drop) }).map(|_| ())
    }

    /// A file created (`fd`) with the setgid bit that the kernel let the caller
    /// have (it knows the caller's supplementary groups) but ext4 took, seeing
    /// only the daemon's groups: the bit goes back (see `privs`).
    fn keep_sgid(fd: RawFd, asked: u32) {
        if asked & libc::S_ISGID == 0 {
            return;
        }
        if let Ok(st) = fstat(fd) {
            if st.st_mode & libc::S_ISGID == 0 {
                unsafe { libc::fchmod(fd, (st.st_mode & 0o7777) | libc::S_ISGID) };
            }
        }
    }

    /// mknod, mkdir and symlink: `make` creates `name` in the parent's directory
    /// fd as the caller (with `umask`: see [`AsCaller`]); then the new entry is
    /// looked up, reported and replied.
    fn make_entry(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        umask: u32,
        reply: ReplyEntry,
        make: impl FnOnce(RawFd, &CName, &AsCaller) -> SysResult<libc::c_int>,
    ) {
        let r = self.creating(parent, name).and_then(|p| {
            let cname = CName::new(name)?;
            {
                let caller = AsCaller::new(req.uid(), req.gid(), umask);
                make(p.raw(), &cname, &caller)?;
            }
            self.do_lookup(parent.0, p.raw(), name)
        });
        if r.is_ok() {
            self.hooks.changed(&self.rel(parent, name));
        }
        self.reply_entry(reply, r)
    }

    /// Common checks for creating `name` in `parent`.
    fn creating(&self, parent: INodeNo, name: &OsStr) -> SysResult<Arc<Inode>> {
        if virt::is_virtual(parent.0) {
            return Err(Errno::EROFS);
        }
        if parent.0 == ROOT && virt::is_reserved_root_name(name) {
            return Err(Errno::EEXIST);
        }
        self.node(parent)
    }

    fn attr_now(&self, ino: u64, node: &Inode) -> SysResult<FileAttr> {
        Ok(attr_of(ino, &fstat(node.raw())?))
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
    ) -> SysResult<FileAttr> {
        let node = self.node(ino)?;
        let fd = node.raw();
        let file_fd = fh.filter(|f| f.0 < TABLE_FH).map(|f| f.0 as RawFd);
        if let Some(mode) = mode {
            if node.is_symlink {
                return Err(Errno::EOPNOTSUPP);
            }
            let r = match file_fd {
                Some(f) => unsafe { libc::fchmod(f, mode & 0o7777) },
                None => unsafe { libc::chmod(ProcPath::new(fd).ptr(), mode & 0o7777) },
            };
            check(r)?;
        }
        if uid.is_some() || gid.is_some() {
            let u = uid.unwrap_or(u32::MAX);
            let g = gid.unwrap_or(u32::MAX);
            check(unsafe { libc::fchownat(fd, c"".as_ptr(), u, g, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) })?;
        }
        if let Some(size) = size {
            // Our fd of the handle may be read-only (open(O_RDONLY|O_TRUNC) truncates
            // through it): then truncate through a writable reopen.
            let via_fh = file_fd.map(|f| unsafe { libc::ftruncate(f, size as i64) });
            if via_fh != Some(0) {
                let e = last_errno();
                if via_fh.is_some() && e != Errno::EINVAL && e != Errno::EBADF {
                    return Err(e);
                }
                let f = sys::reopen(fd, libc::O_WRONLY)?;
                check(unsafe { libc::ftruncate(f.as_raw_fd(), size as i64) })?;
            }
        }
        if atime.is_some() || mtime.is_some() {
            let times = [to_timespec(atime), to_timespec(mtime)];
            let r = if node.is_symlink {
                let loc = lock(&node.loc);
                let parent = self.table.get(loc.parent).ok_or(Errno::ESTALE)?;
                let cname = CName::new(&loc.name)?;
                unsafe { libc::utimensat(parent.raw(), cname.ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }
            } else if let Some(f) = file_fd {
                unsafe { libc::futimens(f, times.as_ptr()) }
            } else {
                unsafe { libc::utimensat(libc::AT_FDCWD, ProcPath::new(fd).ptr(), times.as_ptr(), 0) }
            };
            check(r)?;
        }
        let owner_or_mode = mode.is_some() || uid.is_some() || gid.is_some();
        let asked = owner_or_mode || atime.is_some() || mtime.is_some();
        // A SETATTR with nothing in it is the kernel's file_remove_privs (a write or
        // fallocate) after FUSE took out the part only we can do; a truncate carries
        // that part too. (A utimensat that omits both times looks the same: it may
        // drop bits where ext4 would keep them, never the other way.)
        self.drop_privs(req, &node, size.is_some() || !asked, owner_or_mode)?;
        self.attr_now(ino.0, &node)
    }

    fn open_file(&self, flags: i32, node: &Inode) -> SysResult<(OwnedFd, bool)> {
        // The kernel handles O_DIRECT and creation; the backing fd needs neither.
        let f = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_NOCTTY | libc::O_DIRECT);
        let fd = sys::reopen(node.raw(), f)?;
        let writable = (flags & libc::O_ACCMODE) != libc::O_RDONLY;
        Ok((fd, writable))
    }

    /// Registers an open of `node`: counts, hooks, and the passthrough backing id.
    /// Returns the backing id to answer with, if passthrough is on.
    #[allow(clippy::too_many_arguments)] // one call site per open path; a struct would only rename them
    fn note_open(
        &self,
        ino: u64,
        node: &Inode,
        fd: &OwnedFd,
        writable: bool,
        truncated: bool,
        rel: Option<Vec<u8>>,
        open_backing: impl FnOnce(&OwnedFd) -> std::io::Result<fuser::BackingId>,
    ) -> Option<Arc<fuser::BackingId>> {
        let mut st = lock(&node.open);
        st.opens += 1;
        let first_writer = writable && st.writers == 0;
        if writable {
            st.writers += 1;
        }
        let mut backing = None;
        if self.passthrough.load(Ordering::Relaxed) {
            if st.backing.is_none() {
                match open_backing(fd) {
                    Ok(b) => st.backing = Some(Arc::new(b)),
                    Err(_) => {
                        // The backing fs may be too deeply stacked: serve data ourselves from now on.
                        self.passthrough.store(false, Ordering::Relaxed);
                    }
                }
            }
            backing = st.backing.clone();
        }
        drop(st);
        if first_writer && backing.is_some() {
            // Attributes the kernel cached before (for an hour) would hide what
            // writes through mmap do to mtime (see `attr_ttl`). Only attributes:
            // offset -1 leaves the page cache alone, so this is safe inside OPEN.
            if let Some(n) = self.notifier.get() {
                let _ = n.inval_inode(INodeNo(ino), -1, 0);
            }
        }
        // The path is computed only when a hook needs it (walks the names up to the root).
        if writable && (first_writer || truncated) {
            let rel = rel.unwrap_or_else(|| self.table.rel_path(ino));
            if first_writer {
                self.hooks.opened_for_write(&rel);
            }
            if truncated {
                self.hooks.changed(&rel);
            }
        }
        backing
    }

    fn rel(&self, parent: INodeNo, name: &OsStr) -> Vec<u8> {
        self.table.child_path(parent.0, name)
    }
}

impl Filesystem for Driver {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let caps = config.capabilities();
        // Not FUSE_ATOMIC_O_TRUNC: with it the kernel sends O_TRUNC with the open, before
        // its ETXTBSY check, so a running executable would be truncated (SIGBUS) even
        // though open(2) fails. Without it the kernel truncates by SETATTR after the check.
        // FUSE_POSIX_ACL: the kernel checks permissions with the files' ACLs (not only
        // their mode bits) and leaves applying default ACLs to us; FUSE_DONT_MASK: it
        // sends modes unmasked with the umask beside, so a parent's default ACL can
        // win over the umask (see `AsCaller`); FUSE_EXPORT_SUPPORT: file handles
        // (name_to_handle_at, NFS) that outlive the daemon (see `lookup_dot`).
        let want = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_ASYNC_DIO
            | InitFlags::FUSE_POSIX_ACL
            | InitFlags::FUSE_DONT_MASK
            | InitFlags::FUSE_EXPORT_SUPPORT;
        let _ = config.add_capabilities(caps & want);
        if self.want_passthrough
            && caps.contains(InitFlags::FUSE_PASSTHROUGH)
            && config.add_capabilities(InitFlags::FUSE_PASSTHROUGH).is_ok()
            && config.set_max_stack_depth(1).is_ok()
        {
            self.passthrough.store(true, Ordering::Relaxed);
        }
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if virt::is_virtual(parent.0) {
            return match self.virt.lookup(&caller_of(req), parent.0, name) {
                Ok(a) => reply.entry(&VTTL, &a, Generation(0)),
                Err(e) => reply.error(e),
            };
        }
        if parent.0 == ROOT && virt::is_reserved_root_name(name) {
            let ino = if name == ".lake" { virt::LAKE_DIR } else { virt::VIEWS };
            return match self.virt.getattr(ino) {
                Ok(a) => reply.entry(&VTTL, &a, Generation(0)),
                Err(e) => reply.error(e),
            };
        }
        if name == "." || name == ".." {
            return self.reply_entry(reply, self.lookup_dot(parent.0, name == ".."));
        }
        let r = self.node(parent).and_then(|p| self.do_lookup(parent.0, p.raw(), name));
        match r {
            r @ Ok(_) => self.reply_entry(reply, r),
            // A negative entry: the kernel remembers the name is absent until we create it.
            Err(e) if e == Errno::ENOENT => {
                let mut a = self.virt_dummy();
                a.ino = INodeNo(0);
                reply.entry(&TTL, &a, Generation(0))
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        if !virt::is_virtual(ino.0) {
            self.table.forget(ino.0, nlookup);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        if virt::is_virtual(ino.0) {
            return match self.virt.getattr(ino.0) {
                Ok(a) => reply.attr(&VTTL, &a),
                Err(e) => reply.error(e),
            };
        }
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let r = match fh.filter(|f| f.0 < TABLE_FH) {
            Some(f) => {
                let mut st: libc::stat = unsafe { std::mem::zeroed() };
                check(unsafe { libc::fstat(f.0 as RawFd, &mut st) }).map(|_| attr_of(ino.0, &st))
            }
            None => self.attr_now(ino.0, &node),
        };
        match r {
            Ok(a) => reply.attr(&self.attr_ttl(&node), &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        if virt::is_virtual(ino.0) {
            return reply.error(Errno::EROFS);
        }
        match self.do_setattr(req, ino, mode, uid, gid, size, atime, mtime, fh) {
            Ok(a) => {
                self.hooks.changed(&self.table.rel_path(ino.0));
                let ttl = self.table.get(ino.0).map_or(TTL, |n| self.attr_ttl(&n));
                reply.attr(&ttl, &a)
            }
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        if virt::is_virtual(ino.0) {
            return match self.virt.readlink(ino.0) {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(e),
            };
        }
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let mut buf = [0u8; libc::PATH_MAX as usize];
        let n = unsafe { libc::readlinkat(node.raw(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return reply.error(last_errno());
        }
        reply.data(&buf[..n as usize])
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        self.make_entry(req, parent, name, umask, reply, |dir, cname, caller| {
            check(unsafe { libc::mknodat(dir, cname.ptr(), caller.mode(mode), libc::dev_t::from(rdev)) })
        })
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        self.make_entry(req, parent, name, umask, reply, |dir, cname, caller| {
            check(unsafe { libc::mkdirat(dir, cname.ptr(), caller.mode(mode)) })
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, 0, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, libc::AT_REMOVEDIR, reply)
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        self.make_entry(req, parent, link_name, 0, reply, |dir, cname, _| {
            let t = std::ffi::CString::new(target.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
            check(unsafe { libc::symlinkat(t.as_ptr(), dir, cname.ptr()) })
        })
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if virt::is_virtual(parent.0) || virt::is_virtual(newparent.0) {
            return reply.error(Errno::EROFS);
        }
        if (parent.0 == ROOT && virt::is_reserved_root_name(name)) || (newparent.0 == ROOT && virt::is_reserved_root_name(newname)) {
            return reply.error(Errno::EBUSY);
        }
        let r = (|| -> SysResult<()> {
            let p = self.node(parent)?;
            let np = self.node(newparent)?;
            let a = CName::new(name)?;
            let b = CName::new(newname)?;
            // Which inodes move, to keep their names for hook paths right.
            let moved = sys::open_path(p.raw(), &a).ok().and_then(|fd| fstat(fd.as_raw_fd()).ok());
            let exchanged = if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                sys::open_path(np.raw(), &b).ok().and_then(|fd| fstat(fd.as_raw_fd()).ok())
            } else {
                None
            };
            check(unsafe { libc::renameat2(p.raw(), a.ptr(), np.raw(), b.ptr(), flags.bits()) as libc::c_int })?;
            if let Some(st) = moved {
                if let Some(ino) = self.table.ino_of_key((st.st_dev, st.st_ino)) {
                    self.table.moved(ino, newparent.0, newname);
                }
            }
            if let Some(st) = exchanged {
                if let Some(ino) = self.table.ino_of_key((st.st_dev, st.st_ino)) {
                    self.table.moved(ino, parent.0, name);
                }
            }
            Ok(())
        })();
        match r {
            Ok(()) => {
                // Report the old name before recomputing the new one (they share ancestors).
                let old = self.rel(parent, name);
                let new = self.rel(newparent, newname);
                self.hooks.changed(&old);
                self.hooks.changed(&new);
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn link(&self, _req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        if virt::is_virtual(ino.0) {
            return reply.error(Errno::EPERM);
        }
        // The name the inode had: both names are reported, so they are recorded as one file's links.
        let old = self.table.rel_path(ino.0);
        let r = self.creating(newparent, newname).and_then(|np| {
            let node = self.node(ino)?;
            let cname = CName::new(newname)?;
            check(unsafe { libc::linkat(node.raw(), c"".as_ptr(), np.raw(), cname.ptr(), libc::AT_EMPTY_PATH) })?;
            self.do_lookup(newparent.0, np.raw(), newname)
        });
        if r.is_ok() {
            self.hooks.changed(&old);
            self.hooks.changed(&self.rel(newparent, newname));
        }
        self.reply_entry(reply, r)
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let flags = flags.0;
        let writable = (flags & libc::O_ACCMODE) != libc::O_RDONLY;
        if virt::is_virtual(ino.0) {
            return match self.virt.open(ino.0, writable) {
                Ok(VOpen::Bytes(b)) => reply.opened(FileHandle(self.add_handle(Handle::Bytes(b))), FopenFlags::FOPEN_DIRECT_IO),
                Ok(VOpen::Chunked(c)) => reply.opened(FileHandle(self.add_handle(Handle::Chunked(c))), FopenFlags::empty()),
                // Parallel writes: the kernel would otherwise serialise every program's
                // requests on the one inode, so a status would wait for another user's
                // commit (see `virt::CONTROL_SIZE`).
                Ok(VOpen::Control) => reply.opened(
                    FileHandle(self.add_handle(Handle::Control(Mutex::new((0, Vec::new()))))),
                    FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_PARALLEL_DIRECT_WRITES,
                ),
                Err(e) => reply.error(e),
            };
        }
        let node = match self.node(ino) {
            Ok(n) => n,
            Err(e) => return reply.error(e),
        };
        let (fd, writable) = match self.open_file(flags, &node) {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let truncated = writable && flags & libc::O_TRUNC != 0;
        let backing = self.note_open(ino.0, &node, &fd, writable, truncated, None, |fd| reply.open_backing(fd));
        let fh = FileHandle(fd.into_raw_fd() as u64);
        match backing {
            Some(b) => reply.opened_passthrough(fh, FILE_OPEN_FLAGS, &b),
            None => reply.opened(fh, FILE_OPEN_FLAGS | FopenFlags::FOPEN_KEEP_CACHE),
        }
    }

    fn create(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let r = self.creating(parent, name).and_then(|p| {
            let cname = CName::new(name)?;
            let f = (flags | libc::O_CREAT | libc::O_CLOEXEC | libc::O_NOFOLLOW) & !(libc::O_NOCTTY | libc::O_DIRECT);
            let fd = {
                let caller = AsCaller::new(req.uid(), req.gid(), umask);
                let fd = unsafe { libc::openat(p.raw(), cname.ptr(), f, caller.mode(mode)) };
                if fd < 0 {
                    return Err(last_errno());
                }
                unsafe { OwnedFd::from_raw_fd(fd) }
            };
            Self::keep_sgid(fd.as_raw_fd(), mode);
            let found = self.do_lookup(parent.0, p.raw(), name)?;
            Ok((fd, found))
        });
        let (fd, found) = match r {
            Ok(x) => x,
            Err(e) => return reply.error(e),
        };
        let attr = found.attr;
        let generation = Generation(u64::from(found.generation));
        let node = match self.table.get(attr.ino.0) {
            Some(n) => n,
            None => return reply.error(Errno::ESTALE),
        };
        let writable = (flags & libc::O_ACCMODE) != libc::O_RDONLY;
        let rel = self.rel(parent, name);
        self.hooks.changed(&rel);
        let backing = self.note_open(attr.ino.0, &node, &fd, writable, false, Some(rel), |fd| reply.open_backing(fd));
        let fh = FileHandle(fd.into_raw_fd() as u64);
        // The entry's attributes may be kept for long even while open: the file is
        // empty, and whatever grows it (write, truncate, fallocate) refreshes them.
        match backing {
            Some(b) => reply.created_passthrough(&TTL, &attr, generation, fh, FILE_OPEN_FLAGS, &b),
            None => reply.created(&TTL, &attr, generation, fh, FILE_OPEN_FLAGS | FopenFlags::FOPEN_KEEP_CACHE),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if fh.0 >= TABLE_FH {
            return match self.handle(fh).as_deref() {
                Some(Handle::Bytes(b)) => reply.data(slice_at(b, offset, size)),
                Some(Handle::Chunked(c)) => match self.virt.read_chunked(c, offset, size) {
                    Ok(d) => reply.data(&d),
                    Err(e) => reply.error(e),
                },
                Some(Handle::Control(r)) => {
                    let r = lock(r);
                    let rel = if offset >= r.0 { offset - r.0 } else { offset };
                    reply.data(slice_at(&r.1, rel, size))
                }
                _ => reply.error(Errno::EBADF),
            };
        }
        thread_local! {
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with(|b| {
            let mut buf = b.borrow_mut();
            if buf.len() < size as usize {
                buf.resize(size as usize, 0);
            }
            let n = unsafe { libc::pread(fh.0 as RawFd, buf.as_mut_ptr().cast(), size as usize, offset as i64) };
            if n < 0 {
                reply.error(last_errno())
            } else {
                reply.data(&buf[..n as usize])
            }
        })
    }

    fn write(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if fh.0 >= TABLE_FH {
            return match self.handle(fh) {
                Some(h) if matches!(*h, Handle::Control(_)) => {
                    // The writer's credentials, read while its request is live: the
                    // reply is for that caller. A flush or commit waits for the
                    // committer: not on a request thread.
                    let caller = caller_of(req);
                    let hooks = self.hooks.clone();
                    let data = data.to_vec();
                    off_thread("lakefs-control", move || {
                        let answer = hooks.control(&caller, &data);
                        if let Handle::Control(r) = &*h {
                            *lock(r) = (offset + data.len() as u64, answer);
                        }
                        reply.written(data.len() as u32)
                    })
                }
                _ => reply.error(Errno::EROFS),
            };
        }
        let n = unsafe { libc::pwrite(fh.0 as RawFd, data.as_ptr().cast(), data.len(), offset as i64) };
        if n < 0 {
            reply.error(last_errno())
        } else {
            reply.written(n as u32)
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        if fh.0 >= TABLE_FH {
            return reply.ok();
        }
        // Like close(2) of a dup: reports delayed write errors without closing ours.
        let r = unsafe { libc::dup(fh.0 as RawFd) };
        if r < 0 {
            return reply.error(last_errno());
        }
        if unsafe { libc::close(r) } < 0 {
            return reply.error(last_errno());
        }
        reply.ok()
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if fh.0 >= TABLE_FH {
            lock(&self.handles).remove(&fh.0);
            return reply.ok();
        }
        drop(unsafe { OwnedFd::from_raw_fd(fh.0 as RawFd) });
        let writable = (flags.0 & libc::O_ACCMODE) != libc::O_RDONLY;
        let mut last_writer = false;
        let mut forgotten = false;
        let node = self.node(ino).ok();
        if let Some(node) = &node {
            let mut st = lock(&node.open);
            st.opens = st.opens.saturating_sub(1);
            if writable {
                st.writers = st.writers.saturating_sub(1);
                last_writer = st.writers == 0;
            }
            if st.opens == 0 {
                st.backing = None;
                forgotten = node.nlookup.load(Ordering::Relaxed) == 0;
            }
        }
        reply.ok();
        if let Some(node) = node.filter(|_| last_writer) {
            // released() marks the file changed itself (and ends its open state).
            // The path comes from the node held here: once its opens reached 0, a
            // FORGET on another thread may already have taken it out of the table.
            self.hooks.released(&self.table.rel_path_of(&node));
        }
        if forgotten {
            self.table.drop_unused(ino.0);
        }
    }

    fn fsync(&self, _req: &Request, ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if fh.0 >= TABLE_FH {
            return reply.ok();
        }
        // The disk flush and the wait for the commit run off the request threads, so
        // a few fsyncing programs do not stall everyone else. The kernel keeps the
        // file (and so our fd) open until we reply.
        let fd = fh.0 as RawFd;
        let rel = self.table.rel_path(ino.0);
        let hooks = self.hooks.clone();
        off_thread("lakefs-fsync", move || {
            if let Err(e) = sys::sync(fd, datasync) {
                return reply.error(e);
            }
            match hooks.fsync(&rel) {
                Ok(()) => reply.ok(),
                // The data is on disk, but no commit holds it: the lake is full.
                Err(lakefs::error::Error::DiskFull { .. }) => reply.error(Errno::ENOSPC),
                Err(_) => reply.error(Errno::EIO),
            }
        })
    }

    /// No directory handles: ENOSYS tells the kernel (5.1+) to stop sending OPENDIR
    /// and RELEASEDIR for good, and to keep every listing in its cache (as with
    /// FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE). That halves the requests of a tree
    /// walk like `git status`. The kernel drops a directory's cached listing when
    /// the directory changes through the mount, or when its mtime is seen to
    /// change: the virtual directories whose contents come and go report a new
    /// mtime each time they are looked up (see `virt`).
    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS)
    }

    fn readdir(&self, req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if virt::is_virtual(ino.0) {
            let list = match self.virt.list(&caller_of(req), ino.0, offset == 0) {
                Ok(l) => l,
                Err(e) => return reply.error(e),
            };
            // Offsets: 1 and 2 are "." and "..", then 3.. the entries.
            let mut i = offset;
            while i < 2 + list.len() as u64 {
                let full = match i {
                    0 => reply.add(ino, 1, FileType::Directory, "."),
                    1 => reply.add(INodeNo(self.virt.parent(ino.0)), 2, FileType::Directory, ".."),
                    _ => {
                        let (c, k, n) = &list[(i - 2) as usize];
                        reply.add(INodeNo(*c), i + 1, *k, OsStr::from_bytes(n))
                    }
                };
                if full {
                    break;
                }
                i += 1;
            }
            return reply.ok();
        }
        let dir = self.node(ino).and_then(|n| sys::reopen(n.raw(), libc::O_RDONLY | libc::O_DIRECTORY));
        match dir.and_then(|fd| self.readdir_real(ino, &fd, offset, &mut reply)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        if virt::is_virtual(ino.0) {
            return reply.ok();
        }
        let dir = self.node(ino).and_then(|n| sys::reopen(n.raw(), libc::O_RDONLY | libc::O_DIRECTORY));
        match dir.and_then(|fd| sys::sync(fd.as_raw_fd(), datasync)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let Some(root) = self.table.get(ROOT) else {
            return reply.error(Errno::EIO);
        };
        let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstatvfs(root.raw(), &mut s) } < 0 {
            return reply.error(last_errno());
        }
        reply.statfs(s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree, s.f_bsize as u32, s.f_namemax as u32, s.f_frsize as u32)
    }

    fn setxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, value: &[u8], flags: i32, _position: u32, reply: ReplyEmpty) {
        if virt::is_virtual(ino.0) {
            return reply.error(Errno::EROFS);
        }
        let r = self.xattr_target(ino).and_then(|p| {
            let n = CName::new(name)?;
            check(unsafe { libc::setxattr(p.ptr(), n.ptr(), value.as_ptr().cast(), value.len(), flags) })?;
            if name == "system.posix_acl_access" {
                // ext4 updated the mode from the ACL, keeping setgid for us (root).
                let node = self.node(ino)?;
                let st = fstat(node.raw())?;
                let kill = privs::outsider_sgid_to_drop(st.st_mode, st.st_gid, &caller_of(req));
                self.drop_bits(&node, &st, kill)?;
            }
            Ok(())
        });
        match r {
            Ok(()) => {
                self.hooks.changed(&self.table.rel_path(ino.0));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if virt::is_virtual(ino.0) {
            return reply.error(Errno::ENODATA);
        }
        let r = self.xattr_target(ino).and_then(|p| {
            let n = CName::new(name)?;
            let mut buf = vec![0u8; size as usize];
            let k = unsafe { libc::getxattr(p.ptr(), n.ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if k < 0 {
                return Err(last_errno());
            }
            buf.truncate(k as usize);
            Ok((k as u32, buf))
        });
        match r {
            Ok((k, _)) if size == 0 => reply.size(k),
            Ok((_, b)) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if virt::is_virtual(ino.0) {
            return if size == 0 { reply.size(0) } else { reply.data(&[]) };
        }
        let r = self.xattr_target(ino).and_then(|p| {
            let mut buf = vec![0u8; size as usize];
            let k = unsafe { libc::listxattr(p.ptr(), buf.as_mut_ptr().cast(), buf.len()) };
            if k < 0 {
                return Err(last_errno());
            }
            buf.truncate(k as usize);
            Ok((k as u32, buf))
        });
        match r {
            Ok((k, _)) if size == 0 => reply.size(k),
            Ok((_, b)) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if virt::is_virtual(ino.0) {
            return reply.error(Errno::EROFS);
        }
        let r = self.xattr_target(ino).and_then(|p| {
            let n = CName::new(name)?;
            check(unsafe { libc::removexattr(p.ptr(), n.ptr()) })
        });
        match r {
            Ok(_) => {
                self.hooks.changed(&self.table.rel_path(ino.0));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, length: u64, mode: i32, reply: ReplyEmpty) {
        if fh.0 >= TABLE_FH {
            return reply.error(Errno::EROFS);
        }
        let r = unsafe { libc::fallocate(fh.0 as RawFd, mode, offset as i64, length as i64) };
        if r < 0 {
            return reply.error(last_errno());
        }
        self.hooks.changed(&self.table.rel_path(ino.0));
        reply.ok()
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        if fh.0 >= TABLE_FH {
            // A past file reports its holes; other virtual files are not seekable by data.
            return match self.handle(fh).as_deref() {
                Some(Handle::Chunked(c)) => match u64::try_from(offset).map_err(|_| Errno::ENXIO).and_then(|o| c.seek(o, whence)) {
                    Ok(o) => reply.offset(o as i64),
                    Err(e) => reply.error(e),
                },
                _ => reply.error(Errno::ESPIPE),
            };
        }
        let r = unsafe { libc::lseek(fh.0 as RawFd, offset, whence) };
        if r < 0 {
            return reply.error(last_errno());
        }
        reply.offset(r)
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        if fh_in.0 >= TABLE_FH || fh_out.0 >= TABLE_FH {
            return reply.error(Errno::EXDEV);
        }
        let mut oi = offset_in as i64;
        let mut oo = offset_out as i64;
        let n = unsafe { libc::copy_file_range(fh_in.0 as RawFd, &mut oi, fh_out.0 as RawFd, &mut oo, len as usize, 0) };
        if n < 0 {
            return reply.error(last_errno());
        }
        self.hooks.changed(&self.table.rel_path(ino_out.0));
        reply.written(n as u32)
    }
}

/// Runs `work` (which replies to a request) on a thread of its own, so requests
/// that wait for the committer hold no request thread: a few of them must not
/// stall the mount for everybody. With no thread to be had, runs it here.
fn off_thread(name: &str, work: impl FnOnce() + Send + 'static) {
    let pending = Arc::new(Mutex::new(Some(work)));
    let for_thread = pending.clone();
    let spawned = std::thread::Builder::new().name(name.into()).spawn(move || {
        let work = lock(&for_thread).take();
        if let Some(work) = work {
            work()
        }
    });
    if spawned.is_err() {
        let work = lock(&pending).take();
        if let Some(work) = work {
            work()
        }
    }
}

fn slice_at(b: &[u8], offset: u64, size: u32) -> &[u8] {
    let start = (offset as usize).min(b.len());
    let end = start.saturating_add(size as usize).min(b.len());
    &b[start..end]
}

impl Driver {
    fn virt_dummy(&self) -> FileAttr {
        attr_of(0, &unsafe { std::mem::zeroed::<libc::stat>() })
    }

    /// Path for the xattr syscalls (they do not take O_PATH fds). Following the
    /// /proc magic link lands on the inode itself, symlinks included. The fd stays
    /// open meanwhile: the kernel holds a lookup on `ino` during the request.
    fn xattr_target(&self, ino: INodeNo) -> SysResult<ProcPath> {
        let node = self.node(ino)?;
        Ok(ProcPath::new(node.raw()))
    }

    fn remove(&self, parent: INodeNo, name: &OsStr, flags: i32, reply: ReplyEmpty) {
        if virt::is_virtual(parent.0) {
            return reply.error(Errno::EROFS);
        }
        if parent.0 == ROOT && virt::is_reserved_root_name(name) {
            return reply.error(Errno::EBUSY);
        }
        let r = self.node(parent).and_then(|p| {
            let n = CName::new(name)?;
            check(unsafe { libc::unlinkat(p.raw(), n.ptr(), flags) })
        });
        match r {
            Ok(_) => {
                self.hooks.changed(&self.rel(parent, name));
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    /// A listing of a real directory. At the root, `.lake` and `views` are not
    /// listed (they are still there by name): history and views stay out of every
    /// tree walk (`find`, `du`, `rsync -a`, `rm -rf ~/*`), as ZFS's hidden `.zfs`.
    /// `d_ino` is the node id, so it equals `st_ino` (see `inode`).
    fn readdir_real(&self, ino: INodeNo, fd: &OwnedFd, offset: u64, reply: &mut ReplyDirectory) -> SysResult<()> {
        let is_root = ino.0 == ROOT;
        let fd = fd.as_raw_fd();
        if offset != 0 && unsafe { libc::lseek(fd, offset as i64, libc::SEEK_SET) } < 0 {
            return Err(last_errno());
        }
        let mut buf = vec![0u8; 32768];
        loop {
            let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
            if n < 0 {
                return Err(last_errno());
            }
            if n == 0 {
                return Ok(());
            }
            let mut i = 0usize;
            let n = n as usize;
            while i < n {
                let b = &buf[i..];
                let d_ino = u64::from_ne_bytes(b[0..8].try_into().unwrap_or([0; 8]));
                let d_off = u64::from_ne_bytes(b[8..16].try_into().unwrap_or([0; 8]));
                let reclen = u16::from_ne_bytes(b[16..18].try_into().unwrap_or([0; 2])) as usize;
                let dtype = b[18];
                if reclen == 0 {
                    return Err(Errno::EIO);
                }
                let name_bytes = &b[19..reclen];
                let end = name_bytes.iter().position(|c| *c == 0).unwrap_or(name_bytes.len());
                let name = OsStr::from_bytes(&name_bytes[..end]);
                let skip = is_root && virt::is_reserved_root_name(name);
                // Nothing above the working tree: the root's ".." is itself, as on ext4.
                let id = if is_root && name == ".." { ROOT } else { self.table.dirent_ino(d_ino) };
                // Full: the kernel asks again from the last offset it took.
                if !skip && reply.add(INodeNo(id), d_off, dtype_kind(dtype), name) {
                    return Ok(());
                }
                i += reclen;
            }
        }
    }
}

fn dtype_kind(t: u8) -> FileType {
    match t {
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}
