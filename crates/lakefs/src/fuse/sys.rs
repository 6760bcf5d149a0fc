//! Thin, allocation-free wrappers over the syscalls the passthrough needs.

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

/// Modes arrive with the caller's umask applied; create them exactly. The umask
/// is made this thread's own first (unshare CLONE_FS), so the process's (and any
/// embedding program's) umask stays as it was.
fn no_umask() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|d| {
        if !d.get() {
            unsafe {
                if libc::unshare(libc::CLONE_FS) == 0 {
                    libc::umask(0);
                }
            }
            d.set(true);
        }
    });
}

/// Runs creating syscalls as the caller (fsuid/fsgid are per thread), so ownership,
/// setgid directories and permission checks come out as on the backing ext4.
pub struct AsCaller {
    active: bool,
}

impl AsCaller {
    pub fn new(uid: u32, gid: u32) -> AsCaller {
        no_umask();
        if uid == 0 && gid == 0 {
            return AsCaller { active: false };
        }
        // Group first: once fsuid is not 0 the thread may lose CAP_SETGID's effect.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid as libc::c_long);
            libc::syscall(libc::SYS_setfsuid, uid as libc::c_long);
        }
        AsCaller { active: true }
    }
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        if self.active {
            unsafe {
                libc::syscall(libc::SYS_setfsuid, 0 as libc::c_long);
                libc::syscall(libc::SYS_setfsgid, 0 as libc::c_long);
            }
        }
    }
}
