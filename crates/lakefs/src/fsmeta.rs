//! Reading and applying inode metadata (owner, mode, times, xattrs) with the
//! no-follow system calls, so symlinks are handled as themselves.
#![allow(unsafe_code)] // lchown/chmod/utimensat/mknod on paths: calls std has no no-follow form of

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::tree::Meta;

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Invalid(format!("{}: path contains NUL", p.display())))
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        // File systems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(v) = xattr::get(path, &name).at(path)? {
            out.push((name.as_bytes().to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

pub fn meta_from(md: &std::fs::Metadata, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Meta {
    Meta { mode: md.mode() & 0o7777, uid: md.uid(), gid: md.gid(), mtime: md.mtime(), mtime_nsec: md.mtime_nsec() as u32, xattrs }
}

fn check(r: libc::c_int, path: &Path) -> Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(Error::io(path, std::io::Error::last_os_error()))
    }
}

/// Applies owner, mode, xattrs and mtime to `path` in the order that keeps them:
/// chown first (it clears setuid bits and file capabilities), then mode, then
/// xattrs (security.capability), then times. Symlinks get no chmod.
pub fn apply(path: &Path, meta: &Meta, is_symlink: bool) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of each call.
    unsafe {
        check(libc::lchown(c.as_ptr(), meta.uid, meta.gid), path)?;
        if !is_symlink {
            check(libc::chmod(c.as_ptr(), meta.mode), path)?;
        }
    }
    set_xattrs(path, &meta.xattrs)?;
    set_mtime(&c, path, meta)
}

pub fn set_xattrs(path: &Path, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Result<()> {
    for (k, v) in xattrs {
        xattr::set(path, std::ffi::OsStr::from_bytes(k), v).map_err(|e| {
            Error::Invalid(format!(
                "{}: cannot set xattr {}: {e} (the target file system must support it)",
                path.display(),
                String::from_utf8_lossy(k)
            ))
        })?;
    }
    Ok(())
}

/// atime and mtime both set to the recorded mtime (atime is not recorded).
fn times(meta: &Meta) -> [libc::timespec; 2] {
    let t = libc::timespec { tv_sec: meta.mtime as libc::time_t, tv_nsec: meta.mtime_nsec as libc::c_long };
    [t, t]
}

/// Sets `path`'s atime and mtime to `meta`'s mtime, not following a symlink.
pub fn set_times(path: &Path, meta: &Meta) -> Result<()> {
    set_mtime(&cpath(path)?, path, meta)
}

fn set_mtime(c: &CString, path: &Path, meta: &Meta) -> Result<()> {
    let ts = times(meta);
    // SAFETY: valid path and a two-element timespec array.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }, path)
}

/// Like [`apply`] on an open regular file (used for loose objects before they
/// are renamed into place).
pub fn apply_fd(f: &File, path: &Path, meta: &Meta) -> Result<()> {
    use std::os::fd::AsRawFd;
    use xattr::FileExt;
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `f`.
    unsafe {
        check(libc::fchown(fd, meta.uid, meta.gid), path)?;
        check(libc::fchmod(fd, meta.mode), path)?;
    }
    for (k, v) in &meta.xattrs {
        f.set_xattr(std::ffi::OsStr::from_bytes(k), v).at(path)?;
    }
    let ts = times(meta);
    // SAFETY: as above.
    check(unsafe { libc::futimens(fd, ts.as_ptr()) }, path)
}

pub fn mknod(path: &Path, kind: libc::mode_t, mode: u32, rdev: u64) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid path.
    check(unsafe { libc::mknod(c.as_ptr(), kind | (mode & 0o7777), rdev as libc::dev_t) }, path)
}
