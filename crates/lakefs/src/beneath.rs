//! Paths resolved beneath a root directory and never through a symlink
//! (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`): what a checkout
//! uses for every entry it creates, so that neither a crafted tree nor a
//! process racing it in the target can make it write outside the target.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

use crate::error::{Error, Result};

/// Longest piece of a relative path handed to one `openat2` (below PATH_MAX).
const PIECE: usize = 3072;

/// A root directory (held open) under which paths are resolved.
pub struct Beneath {
    root: OwnedFd,
    path: PathBuf,
}

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

impl Beneath {
    /// Holds `root` open (it may itself be reached through symlinks: the caller chose it).
    pub fn open(root: &Path) -> Result<Beneath> {
        let f = std::fs::File::open(root).map_err(|e| Error::io(root, e))?;
        Ok(Beneath { root: f.into(), path: root.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens directory `rel` (relative, '/'-separated; empty = the root) as an
    /// O_PATH descriptor, refusing any component that is a symlink or leaves the
    /// root. Paths longer than PATH_MAX are opened piece by piece, each piece
    /// beneath the directory the previous one reached.
    pub fn dir(&self, rel: &[u8]) -> Result<OwnedFd> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let err = |e: nix::errno::Errno| Error::io(self.path.join(OsStr::from_bytes(rel)), e.into());
        let mut rest = trim_slashes(rel);
        let mut cur: Option<OwnedFd> = None;
        if rest.is_empty() {
            return openat2(&self.root, ".", how(flags)).map_err(err);
        }
        while !rest.is_empty() {
            let n = if rest.len() <= PIECE {
                rest.len()
            } else {
                rest[..=PIECE].iter().rposition(|b| *b == b'/').filter(|i| *i > 0).ok_or_else(|| err(nix::errno::Errno::ENAMETOOLONG))?
            };
            let piece = OsStr::from_bytes(&rest[..n]);
            let next = match &cur {
                Some(d) => openat2(d, piece, how(flags)),
                None => openat2(&self.root, piece, how(flags)),
            }
            .map_err(err)?;
            cur = Some(next);
            rest = trim_slashes(&rest[n..]);
        }
        cur.ok_or_else(|| err(nix::errno::Errno::ENOENT))
    }

    /// The parent directory of `rel` (opened as [`Beneath::dir`] does) and its last
    /// component, plus a path that names the entry through the parent's
    /// descriptor (`/proc/self/fd/N/NAME`) for calls that take paths. The
    /// descriptor must outlive the path's use.
    pub fn entry<'a>(&self, rel: &'a [u8]) -> Result<Entry<'a>> {
        let rel = trim_slashes(rel);
        let (parent, name) = match rel.iter().rposition(|b| *b == b'/') {
            Some(i) => (&rel[..i], &rel[i + 1..]),
            None => (&rel[..0], rel),
        };
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Error::Invalid(format!("{}: not an entry name", String::from_utf8_lossy(rel))));
        }
        let dir = self.dir(parent)?;
        let via = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(OsStr::from_bytes(name));
        Ok(Entry { dir, name, via })
    }
}

/// An entry to create or change: its parent held open, its name, and a path to it through the parent.
pub struct Entry<'a> {
    pub dir: OwnedFd,
    pub name: &'a [u8],
    pub via: PathBuf,
}

impl Entry<'_> {
    pub fn name_os(&self) -> &OsStr {
        OsStr::from_bytes(self.name)
    }
}

fn trim_slashes(mut b: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_symlinks_and_escapes_but_reaches_long_paths() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        std::os::unix::fs::symlink("/etc", root.join("link")).expect("symlink");
        std::os::unix::fs::symlink("a", root.join("rel")).expect("symlink");
        let b = Beneath::open(&root).expect("open");
        assert!(b.dir(b"a/b").is_ok());
        assert!(b.dir(b"").is_ok());
        for bad in [&b"link"[..], b"rel/b", b"../root/a", b"a/../../x", b"/etc"] {
            assert!(b.dir(bad).is_err(), "{} must be refused", String::from_utf8_lossy(bad));
        }
        assert!(b.entry(b"link/passwd").is_err());
        let e = b.entry(b"a/b/new").expect("entry");
        std::fs::write(&e.via, b"x").expect("write through the parent");
        assert_eq!(std::fs::read(root.join("a/b/new")).expect("read"), b"x");
        // Longer than PATH_MAX, in pieces.
        let comp = "d".repeat(200);
        let mut rel = String::new();
        let mut p = root.clone();
        for _ in 0..25 {
            p.push(&comp);
            rel.push_str(&comp);
            rel.push('/');
            let fd = b.dir(rel.trim_end_matches('/').as_bytes()).ok();
            if fd.is_none() {
                let parent = b.entry(rel.trim_end_matches('/').as_bytes()).expect("entry");
                nix::sys::stat::mkdirat(&parent.dir, parent.name_os(), nix::sys::stat::Mode::from_bits_truncate(0o755)).expect("mkdirat");
            }
        }
        assert!(rel.len() > 4096);
        assert!(b.dir(rel.as_bytes()).is_ok(), "a path of {} bytes", rel.len());
    }
}
