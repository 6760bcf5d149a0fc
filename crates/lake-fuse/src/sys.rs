//! Thin, allocation-free wrappers over the syscalls the passthrough needs.
#![allow(unsafe_code)] // the driver's syscall layer: *at() calls on O_PATH fds std does not offer

use std::ffi::OsStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

pub type SysResult<T> = Result<T, Errno>;

pub fn last_errno() -> Errno {
    Errno::from_i32(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

pub fn check(r: libc::c_int) -> SysResult<libc::c_int> {
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

/// A NUL-terminated copy of a name on the stack (names are at most 255 bytes).
pub struct CName {
    buf: [u8; 256],
}

impl CName {
    pub fn new(name: &OsStr) -> SysResult<CName> {
        let b = name.as_bytes();
        if b.len() > 255 {
            return Err(Errno::ENAMETOOLONG);
        }
        if b.contains(&0) {
            return Err(Errno::EINVAL);
        }
        let mut buf = [0u8; 256];
        buf[..b.len()].copy_from_slice(b);
        Ok(CName { buf })
    }
    pub fn ptr(&self) -> *const libc::c_char {
        self.buf.as_ptr().cast()
    }
}

/// `/proc/self/fd/N`, the way to reach an O_PATH fd's inode with path-only syscalls.
pub struct ProcPath {
    buf: [u8; 32],
}

impl ProcPath {
    pub fn new(fd: RawFd) -> ProcPath {
        let mut buf = [0u8; 32];
        let prefix = b"/proc/self/fd/";
        buf[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 12];
        let mut n = fd as u32;
        let mut i = 0;
        loop {
            digits[i] = b'0' + (n % 10) as u8;
            i += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for k in 0..i {
            buf[prefix.len() + k] = digits[i - 1 - k];
        }
        ProcPath { buf }
    }
    pub fn ptr(&self) -> *const libc::c_char {
        self.buf.as_ptr().cast()
    }
}

pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstatat(fd, c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) })?;
    Ok(st)
}

/// Opens `name` under `dir` as O_PATH without following a final symlink.
pub fn open_path(dir: RawFd, name: &CName) -> SysResult<OwnedFd> {
    let fd = unsafe { libc::openat(dir, name.ptr(), libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reopens an O_PATH fd's inode with real open flags. O_NOFOLLOW is dropped: the
/// kernel already resolved the caller's path to this inode, and `/proc/self/fd/N`
/// is itself a (magic) symlink, so keeping it would fail every such open with ELOOP.
pub fn reopen(fd: RawFd, flags: i32) -> SysResult<OwnedFd> {
    let p = ProcPath::new(fd);
    // SAFETY: a NUL-terminated path; the new fd is ours.
    let fd = unsafe { libc::open(p.ptr(), (flags & !libc::O_NOFOLLOW) | libc::O_CLOEXEC, 0) };
    if fd < 0 {
        return Err(last_errno());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// fsync, or with `datasync` fdatasync, of `fd`.
pub fn sync(fd: RawFd, datasync: bool) -> SysResult<()> {
    check(unsafe {
        if datasync {
            libc::fdatasync(fd)
        } else {
            libc::fsync(fd)
        }
    })
    .map(|_| ())
}

pub fn kind_of(mode: libc::mode_t) -> FileType {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => FileType::RegularFile,
    }
}

pub fn time(sec: i64, nsec: i64) -> SystemTime {
    if sec >= 0 {
        UNIX_EPOCH + Duration::new(sec as u64, nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(sec.unsigned_abs()) + Duration::from_nanos(nsec as u64)
    }
}

pub fn attr_of(ino: u64, st: &libc::stat) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: st.st_size as u64,
        blocks: st.st_blocks as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime: time(st.st_mtime, st.st_mtime_nsec),
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: time(st.st_ctime, st.st_ctime_nsec),
        kind: kind_of(st.st_mode),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize: st.st_blksize as u32,
        flags: 0,
    }
}

/// The umask of a creating request: with FUSE_DONT_MASK the kernel sends the mode
/// as the program gave it, plus its umask, and leaves both to us, so that the
/// backing ext4 applies the parent's default ACL *instead of* the umask (the
/// kernel's `posix_acl_create`), or the umask where there is none. The umask is
/// made this thread's own first (unshare CLONE_FS), so the process's (and any
/// embedding program's) umask stays as it was. False when the thread cannot
/// have one of its own: the caller then masks the mode itself.
fn set_umask(mask: u32) -> bool {
    thread_local! {
        /// Ok(current umask) once unshared; Err(()) when unshare failed.
        static OWN: std::cell::Cell<Option<Result<u32, ()>>> = const { std::cell::Cell::new(None) };
    }
    OWN.with(|own| {
        let cur = match own.get() {
            Some(c) => c,
            // SAFETY: unshare(CLONE_FS) only detaches this thread's cwd/root/umask.
            None if unsafe { libc::unshare(libc::CLONE_FS) } == 0 => Ok(u32::MAX),
            None => Err(()),
        };
        let next = match cur {
            Ok(m) if m != mask => {
                // SAFETY: umask(2) cannot fail; it affects this thread only (unshared above).
                unsafe { libc::umask((mask & 0o777) as libc::mode_t) };
                Ok(mask)
            }
            c => c,
        };
        own.set(Some(next));
        next.is_ok()
    })
}

/// Runs creating syscalls as the caller (fsuid/fsgid are per thread), so ownership,
/// setgid directories and permission checks come out as on the backing ext4.
/// Dropping fsuid 0 also drops the file-system capabilities (CAP_FSETID, ...):
/// ext4 then applies the kernel's setuid/setgid rules for that caller, except
/// where they depend on supplementary groups, which FUSE does not tell (see `privs`).
pub struct AsCaller {
    active: bool,
    /// The umask to apply by hand (the thread could not take it as its own).
    mask_by_hand: u32,
}

impl AsCaller {
    /// `umask` applies to the modes of new entries (create, mkdir, mknod): pass
    /// them through [`AsCaller::mode`]; 0 for everything else.
    pub fn new(uid: u32, gid: u32, umask: u32) -> AsCaller {
        let mask_by_hand = if set_umask(umask) { 0 } else { umask };
        if uid == 0 && gid == 0 {
            return AsCaller { active: false, mask_by_hand };
        }
        // Group first: once fsuid is not 0 the thread may lose CAP_SETGID's effect.
        // SAFETY: setfsuid/setfsgid change this thread's file-system ids only.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid as libc::c_long);
            libc::syscall(libc::SYS_setfsuid, uid as libc::c_long);
        }
        AsCaller { active: true, mask_by_hand }
    }

    /// The mode to create with.
    pub fn mode(&self, mode: u32) -> u32 {
        mode & !self.mask_by_hand
    }
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        if self.active {
            // SAFETY: back to the daemon's own ids (root).
            unsafe {
                libc::syscall(libc::SYS_setfsuid, 0 as libc::c_long);
                libc::syscall(libc::SYS_setfsgid, 0 as libc::c_long);
            }
        }
    }
}

pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
/// The atime bits of mount attributes (`MOUNT_ATTR__ATIME`).
const MOUNT_ATTR_ATIME_MASK: u64 = 0x70;
const OPEN_TREE_CLONE: libc::c_uint = 1;

/// `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// An O_PATH fd of `path` as the root of a private bind mount of it with the
/// atime attributes `attr` (`MOUNT_ATTR_*`). The mount is attached nowhere: no
/// mount table shows it, and it goes when its last fd closes. Needs Linux 5.12
/// and CAP_SYS_ADMIN.
pub fn detached_tree(path: &std::ffi::CStr, attr: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_tree(2) with a NUL-terminated path; the fd returned is ours.
    let fd =
        unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let ma = MountAttr { attr_set: attr, attr_clr: MOUNT_ATTR_ATIME_MASK | MOUNT_ATTR_NODIRATIME, propagation: 0, userns_fd: 0 };
    // SAFETY: mount_setattr(2) reads `ma` (its size given) and changes the mount of `fd` only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &ma as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// `struct file_handle` with room for the largest handle (MAX_HANDLE_SZ).
#[repr(C)]
struct RawHandle {
    bytes: u32,
    kind: i32,
    f_handle: [u8; 128],
}

/// ext2/3/4's handle type: a 32-bit inode number and its generation.
const FILEID_INO32_GEN: i32 = 1;

/// The backing inode's generation (ext4's `i_generation`), from its file handle;
/// 0 where the file system's handles are not inode + generation.
pub fn generation(fd: RawFd) -> u32 {
    let mut h = RawHandle { bytes: 128, kind: 0, f_handle: [0; 128] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `h` is a file_handle with `bytes` bytes of room after its header.
    let r = unsafe {
        libc::name_to_handle_at(
            fd,
            c"".as_ptr(),
            (&mut h as *mut RawHandle).cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if r != 0 || h.kind != FILEID_INO32_GEN || h.bytes != 8 {
        return 0;
    }
    u32::from_ne_bytes([h.f_handle[4], h.f_handle[5], h.f_handle[6], h.f_handle[7]])
}

/// Opens (O_PATH) the inode numbered `ino` of the file system `mount_fd` is on,
/// whatever its generation; ESTALE when there is no such live inode, or the file
/// system's handles are not ext4's kind.
pub fn open_by_ino(mount_fd: RawFd, ino: u64) -> SysResult<OwnedFd> {
    let ino = u32::try_from(ino).map_err(|_| Errno::ESTALE)?;
    let mut h = RawHandle { bytes: 8, kind: FILEID_INO32_GEN, f_handle: [0; 128] };
    // Generation 0: ext4 skips the generation check; the kernel compares the
    // generation we answer with the one in the caller's handle.
    h.f_handle[..4].copy_from_slice(&ino.to_ne_bytes());
    // SAFETY: `h` is a valid file_handle of 8 bytes; the kernel only reads it.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd,
            (&mut h as *mut RawHandle).cast::<libc::file_handle>(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(match last_errno() {
            e if e == Errno::EINVAL || e == Errno::EOPNOTSUPP || e == Errno::ENOENT => Errno::ESTALE,
            e => e,
        });
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where the inode of `fd` is now, as the kernel names it (`/proc/self/fd/N`).
pub fn path_of(fd: RawFd) -> Option<Vec<u8>> {
    let p = ProcPath::new(fd);
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlink writes at most buf.len() bytes into buf.
    let n = unsafe { libc::readlink(p.ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 || n as usize >= buf.len() {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

/// Makes this thread's file-system identity `uid`, `gid` and supplementary `groups`
/// (see `caller::as_caller`); false when the kernel did not take all of it. The raw
/// syscalls change only the calling thread (glibc's setgroups would change every
/// thread of the daemon). Dropping fsuid from 0 clears the thread's file-system
/// capabilities (CAP_DAC_OVERRIDE ...), so permission checks are the caller's.
pub fn take_identity(uid: u32, gid: u32, groups: &[u32]) -> bool {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: setgroups reads `groups.len()` gids from a live Vec; setfsgid/setfsuid
    // take plain integers. Called with -1 they change nothing and return the current id.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len() as libc::c_long, groups.as_ptr()) != 0 {
            return false;
        }
        libc::syscall(libc::SYS_setfsgid, gid as libc::c_long);
        libc::syscall(libc::SYS_setfsuid, uid as libc::c_long);
        libc::syscall(libc::SYS_setfsgid, -1 as libc::c_long) == gid as libc::c_long
            && libc::syscall(libc::SYS_setfsuid, -1 as libc::c_long) == uid as libc::c_long
    }
}

/// Opens `path` (relative, '/'-separated) beneath `dir` as O_PATH with openat2, never
/// through a symlink or out of `dir`: permission to search every directory on the way
/// is checked with the thread's identity.
pub fn open_beneath(dir: RawFd, path: &[u8], directory: bool) -> SysResult<OwnedFd> {
    let c = std::ffi::CString::new(if path.is_empty() { &b"."[..] } else { path }).map_err(|_| Errno::EINVAL)?;
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC | if directory { libc::O_DIRECTORY } else { 0 }) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `c` is NUL-terminated and `how` a live open_how of the size passed.
    let fd =
        unsafe { libc::syscall(libc::SYS_openat2, dir, c.as_ptr(), &how as *const libc::open_how, std::mem::size_of::<libc::open_how>()) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the thread's identity may `mode` (libc::R_OK, X_OK) the inode of an O_PATH
/// fd: the kernel's answer, mode bits and POSIX ACLs included.
pub fn may_access(fd: RawFd, mode: i32) -> bool {
    // SAFETY: an empty, NUL-terminated path with AT_EMPTY_PATH names `fd` itself.
    unsafe { libc::syscall(libc::SYS_faccessat2, fd, c"".as_ptr(), mode, libc::AT_EACCESS | libc::AT_EMPTY_PATH) == 0 }
}

/// The inode's ctime in nanoseconds since the epoch.
pub fn ctime_ns(fd: RawFd) -> Option<i128> {
    let st = fstat(fd).ok()?;
    Some(i128::from(st.st_ctime) * 1_000_000_000 + i128::from(st.st_ctime_nsec))
}

/// Reads at most `max` bytes of the regular file behind an O_PATH fd (reopened for
/// reading with the thread's identity); None when it is not a regular file or may not be read.
pub fn read_head(fd: RawFd, max: usize) -> Option<Vec<u8>> {
    if fstat(fd).ok()?.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let f = reopen(fd, libc::O_RDONLY | libc::O_NONBLOCK).ok()?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(std::fs::File::from(f), max as u64), &mut out).ok()?;
    Some(out)
}
