//! Who is asking, and what they may read: the catalog, the history and the
//! control file answer as the caller of the FUSE request (docs/security.md).
//!
//! - [`Caller`]: uid and gid of the request, supplementary groups from
//!   `/proc/PID/status` (unknown: everything is denied);
//! - [`as_caller`]: the kernel's answer about the working tree, asked on a helper
//!   thread that takes on the caller's file-system identity;
//! - [`Caller::may`]: the same rules over recorded metadata (past trees), with a
//!   POSIX ACL folded into the mode bits by [`effective_mode`].

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use super::sys;
use lakefs::names;
use lakefs::tree::Meta;

pub const R: u32 = 4;
pub const X: u32 = 1;

/// The identity of one request.
#[derive(Debug)]
pub struct Caller {
    uid: u32,
    gid: u32,
    pid: u32,
    /// What /proc says of the process, read on first use; None when it could not be known.
    proc: OnceLock<Option<Proc>>,
}

/// The parts of `/proc/PID/status` the rules need.
#[derive(Debug, Default)]
struct Proc {
    groups: Vec<u32>,
    /// CAP_FSETID in the effective set (keeps setuid/setgid bits on writes).
    fsetid: bool,
}

const CAP_FSETID: u32 = 4;

impl Caller {
    /// The caller of a FUSE request (its fsuid, fsgid and the pid of the thread).
    pub fn new(uid: u32, gid: u32, pid: u32) -> Caller {
        Caller { uid, gid, pid, proc: OnceLock::new() }
    }

    /// A caller with known groups and capability (tests of the rules).
    #[cfg(test)]
    pub fn with(uid: u32, gid: u32, groups: Vec<u32>, fsetid: bool) -> Caller {
        let proc = OnceLock::new();
        let _ = proc.set(Some(Proc { groups, fsetid }));
        Caller { uid, gid, pid: 0, proc }
    }

    /// Root: the daemon itself, and tests.
    pub fn root() -> Caller {
        let proc = OnceLock::new();
        let _ = proc.set(Some(Proc { groups: Vec::new(), fsetid: true }));
        Caller { uid: 0, gid: 0, pid: 0, proc }
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// The supplementary groups. FUSE requests do not carry them: they are read from
    /// `/proc/PID/status`, and only trusted when that process still has the request's
    /// fsuid and fsgid (a pid reused by another process does not lend its groups).
    pub fn groups(&self) -> Option<&[u32]> {
        self.proc().map(|p| p.groups.as_slice())
    }

    fn proc(&self) -> Option<&Proc> {
        self.proc.get_or_init(|| proc_of(self.pid, self.uid, self.gid)).as_ref()
    }

    /// Whether the caller holds CAP_FSETID (unknown: no).
    pub fn fsetid(&self) -> bool {
        self.proc().is_some_and(|p| p.fsetid)
    }

    /// The kernel's `in_group_or_capable`: a member of `gid`, or holding CAP_FSETID.
    /// A caller whose groups are unknown is a member of its own group only, so
    /// setuid/setgid bits go rather than stay.
    pub fn in_group_or_fsetid(&self, gid: u32) -> bool {
        self.fsetid() || gid == self.gid || self.groups().is_some_and(|g| g.contains(&gid))
    }

    fn in_group(&self, gid: u32, groups: &[u32]) -> bool {
        gid == self.gid || groups.contains(&gid)
    }

    /// Whether the caller may `want` (bits of [`R`], [`X`]) an inode with recorded
    /// metadata `meta`, as the kernel decides from mode bits; a recorded POSIX ACL can
    /// only take permission away (see [`effective_mode`]). Root may everything; a
    /// caller whose groups are unknown nothing.
    pub fn may(&self, meta: &Meta, want: u32) -> bool {
        if self.is_root() {
            return true;
        }
        let Some(groups) = self.groups() else {
            return false;
        };
        let mode = effective_mode(meta);
        let bits = if meta.uid == self.uid {
            mode >> 6
        } else if self.in_group(meta.gid, groups) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }
}

/// `Groups:` and CAP_FSETID of /proc/PID/status when its `Uid:`/`Gid:` fs fields
/// are `uid`/`gid` (a pid reused by another process lends nothing).
fn proc_of(pid: u32, uid: u32, gid: u32) -> Option<Proc> {
    if pid == 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<Vec<u32>> {
        let line = text.lines().find_map(|l| l.strip_prefix(name))?;
        line.split_whitespace().map(|n| n.parse().ok()).collect()
    };
    // Real, effective, saved, fs.
    let (uids, gids) = (field("Uid:")?, field("Gid:")?);
    if uids.get(3) != Some(&uid) || gids.get(3) != Some(&gid) {
        return None;
    }
    let cap_eff = text.lines().find_map(|l| l.strip_prefix("CapEff:")).and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
    Some(Proc { groups: field("Groups:")?, fsetid: cap_eff.is_some_and(|caps| caps & (1 << CAP_FSETID) != 0) })
}

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;

/// The permission bits of `meta` that no caller of a class exceeds under its POSIX
/// ACL: a past tree is shown and checked by mode bits only (the kernel reads no ACL
/// of a virtual inode), and an ACL can deny a member of the owning group (`group::---`
/// with a mask from a named entry) or a named user what the mode bits grant. Each
/// class gets the least any caller in it gets; a named user or group loses what the
/// ACL grants it beyond that (denied where the ACL allowed: fail closed). Without an
/// ACL, the mode as recorded; with a malformed one, owner bits only.
pub fn effective_mode(meta: &Meta) -> u32 {
    let Some((_, acl)) = meta.xattrs.iter().find(|(k, _)| k == ACL_ACCESS) else {
        return meta.mode;
    };
    let special = meta.mode & 0o7000;
    let owner_only = special | (meta.mode & 0o700);
    if acl.len() < 4 || (acl.len() - 4) % 8 != 0 || acl[..4] != [2, 0, 0, 0] {
        return owner_only;
    }
    let entries: Vec<(u16, u32)> =
        acl[4..].chunks_exact(8).map(|e| (u16::from_le_bytes([e[0], e[1]]), u32::from(u16::from_le_bytes([e[2], e[3]]) & 7))).collect();
    let perm = |tag: u16| entries.iter().find(|e| e.0 == tag).map(|e| e.1);
    let (Some(user_obj), Some(group_obj), Some(other)) = (perm(ACL_USER_OBJ), perm(ACL_GROUP_OBJ), perm(ACL_OTHER)) else {
        return owner_only;
    };
    let mask = perm(ACL_MASK).unwrap_or(7);
    let all = |tag: u16| entries.iter().filter(|e| e.0 == tag).fold(7, |acc, e| acc & e.1 & mask);
    let (users, groups) = (all(ACL_USER), all(ACL_GROUP));
    let group = group_obj & mask & users;
    let other = other & users & groups;
    special | user_obj << 6 | group << 3 | other
}

/// Which names of the working tree a caller is shown: a file it may read, reached
/// through directories it may search; the names it did not give (those below
/// `scope`, a directory it named) only from directories it may also list.
pub struct Look {
    work: OwnedFd,
    root: bool,
    scope: Vec<u8>,
    dirs: HashMap<Vec<u8>, bool>,
    /// Files whose inode changed after this (ns) are not shown: see [`Look::indexed_at`].
    unchanged_since: Option<i128>,
}

impl Look {
    /// The names asked about come from a catalog of the tree scanned at `scan_ns`: a
    /// file changed since (ctime, which no user can set back) may not be the file its
    /// row describes (someone with write access to its directory can put their own
    /// file in its place), so it is not shown until it is indexed again.
    pub fn indexed_at(&mut self, scan_ns: i128) {
        self.unchanged_since = Some(scan_ns);
    }

    /// Whether the file at mount-relative `rel` (bytes, no leading '/') is shown to the caller.
    pub fn visible(&mut self, rel: &[u8]) -> bool {
        self.root || self.shown(rel).is_some()
    }

    /// The first `max` bytes of the regular file at `rel`, read as the caller; None
    /// when it is not shown to the caller or cannot be read.
    pub fn read(&mut self, rel: &[u8], max: usize) -> Option<Vec<u8>> {
        let fd = match self.root {
            true => sys::open_beneath(self.work.as_raw_fd(), rel, false).ok()?,
            false => self.shown(rel)?,
        };
        sys::read_head(fd.as_raw_fd(), max)
    }

    /// An O_PATH fd of the file at `rel` when it is shown to the (non-root) caller:
    /// the one inode both the checks and a read are about.
    fn shown(&mut self, rel: &[u8]) -> Option<OwnedFd> {
        if !self.listable_dirs(rel)? {
            return None;
        }
        let fd = sys::open_beneath(self.work.as_raw_fd(), rel, false).ok()?;
        let unchanged = self.unchanged_since.is_none_or(|t| sys::ctime_ns(fd.as_raw_fd()).is_some_and(|c| c <= t));
        (unchanged && sys::may_access(fd.as_raw_fd(), libc::R_OK)).then_some(fd)
    }

    /// Some(true) when every directory of `rel` from `scope` down to its parent may be
    /// listed (the kernel's answer, cached) or `rel` is the scope; None when `rel` is
    /// not inside `scope`.
    fn listable_dirs(&mut self, rel: &[u8]) -> Option<bool> {
        if rel == self.scope {
            return Some(true);
        }
        if !names::within(rel, &self.scope) {
            return None;
        }
        // The scope and each directory below it down to the parent; the root ("", no
        // ancestor of a path) when the scope is all of the tree.
        let (from, whole) = (self.scope.len(), self.scope.is_empty());
        let root: &[u8] = b"";
        for dir in whole.then_some(root).into_iter().chain(names::ancestors(rel).filter(|a| a.len() >= from)) {
            let ok = match self.dirs.get(dir) {
                Some(&ok) => ok,
                None => {
                    let ok = sys::open_beneath(self.work.as_raw_fd(), dir, true)
                        .is_ok_and(|fd| sys::may_access(fd.as_raw_fd(), libc::R_OK | libc::X_OK));
                    self.dirs.insert(dir.to_owned(), ok);
                    ok
                }
            };
            if !ok {
                return Some(false);
            }
        }
        Some(true)
    }
}

/// Runs `f` with a [`Look`] over the working tree `work` (below `scope`, mount-relative
/// bytes as `names::check_rel` gives them, "" for all of it) on a helper thread that
/// has taken on the caller's file-system identity, so every answer is the kernel's
/// for that caller. None when the identity cannot be taken (groups unknown, the
/// thread not started): the caller is shown nothing.
pub fn as_caller<T: Send>(caller: &Caller, work: &Path, scope: &[u8], f: impl FnOnce(&mut Look) -> T + Send) -> Option<T> {
    let fd = std::fs::File::open(work).ok()?;
    let mut look =
        Look { work: OwnedFd::from(fd), root: caller.is_root(), scope: scope.to_vec(), dirs: HashMap::new(), unchanged_since: None };
    if caller.is_root() {
        return Some(f(&mut look));
    }
    let groups = caller.groups()?.to_vec();
    let (uid, gid) = (caller.uid, caller.gid);
    std::thread::scope(|s| {
        let t = std::thread::Builder::new().name("lakefs-as-caller".into()).spawn_scoped(s, move || {
            // The identity dies with this thread: nothing to restore.
            sys::take_identity(uid, gid, &groups).then(|| f(&mut look))
        });
        t.ok()?.join().ok().flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u32, uid: u32, gid: u32, acl: Option<&[(u16, u16, u32)]>) -> Meta {
        let mut m = Meta { mode, uid, gid, ..Default::default() };
        if let Some(entries) = acl {
            let mut v = vec![2, 0, 0, 0];
            for (tag, perm, id) in entries {
                v.extend_from_slice(&tag.to_le_bytes());
                v.extend_from_slice(&perm.to_le_bytes());
                v.extend_from_slice(&id.to_le_bytes());
            }
            m.xattrs.push((ACL_ACCESS.to_vec(), v));
        }
        m
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller::with(uid, gid, groups.to_vec(), false)
    }

    #[test]
    fn mode_bits_by_class() {
        let f = meta(0o640, 10, 20, None);
        assert!(user(10, 99, &[]).may(&f, R));
        assert!(user(11, 20, &[]).may(&f, R), "primary group");
        assert!(user(11, 99, &[20]).may(&f, R), "supplementary group");
        assert!(!user(11, 99, &[]).may(&f, R));
        assert!(!user(11, 20, &[]).may(&f, X));
        // The owner class is decided first, as the kernel does: 0o070 denies its owner.
        assert!(!user(10, 20, &[]).may(&meta(0o070, 10, 20, None), R));
        assert!(Caller::root().may(&meta(0, 10, 20, None), R | X));
        let unknown = Caller::new(11, 20, 0);
        assert!(!unknown.may(&f, R), "groups unknown: nothing");
    }

    #[test]
    fn an_acl_only_takes_away() {
        // setfacl -m g::- -m u:30:r on a 640 file: the mode shows group r (the mask),
        // but the owning group may not read; the named user loses its grant (fail closed).
        let acl = [(ACL_USER_OBJ, 6, 0), (ACL_USER, 4, 30), (ACL_GROUP_OBJ, 0, 0), (ACL_MASK, 4, 0), (ACL_OTHER, 0, 0)];
        let f = meta(0o640, 10, 20, Some(&acl));
        assert_eq!(effective_mode(&f), 0o600);
        assert!(!user(11, 20, &[]).may(&f, R));
        assert!(!user(30, 99, &[]).may(&f, R));
        assert!(user(10, 20, &[]).may(&f, R));
        // A named user denied what its group and others get takes it from both classes.
        let acl = [(ACL_USER_OBJ, 7, 0), (ACL_USER, 0, 30), (ACL_GROUP_OBJ, 5, 0), (ACL_MASK, 5, 0), (ACL_OTHER, 5, 0)];
        assert_eq!(effective_mode(&meta(0o755, 10, 20, Some(&acl))), 0o700);
        // A minimal ACL is the mode.
        let acl = [(ACL_USER_OBJ, 6, 0), (ACL_GROUP_OBJ, 4, 0), (ACL_OTHER, 4, 0)];
        assert_eq!(effective_mode(&meta(0o644, 10, 20, Some(&acl))), 0o644);
        let mut bad = meta(0o4755, 10, 20, None);
        bad.xattrs.push((ACL_ACCESS.to_vec(), vec![2, 0, 0]));
        assert_eq!(effective_mode(&bad), 0o4700);
    }

    #[test]
    fn groups_come_from_the_process_and_must_match_its_ids() {
        let me = std::process::id();
        let (uid, gid) = (nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw());
        assert!(proc_of(me, uid, gid).is_some());
        assert!(proc_of(me, uid + 1, gid).is_none(), "another uid than the process's");
        assert!(proc_of(0, uid, gid).is_none());
        assert!(proc_of(u32::MAX - 1, uid, gid).is_none(), "no such process");
    }
}
