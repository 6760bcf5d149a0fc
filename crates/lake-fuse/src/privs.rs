//! The kernel's rules for dropping setuid/setgid bits, where FUSE leaves them to us.
//!
//! The daemon runs as root, so the backing ext4 would keep every bit for it
//! (CAP_FSETID). The kernel clears the setuid bit, and the setgid bit of a
//! group-executable file, itself (a SETATTR of the mode) on write, truncate,
//! fallocate and chown by a caller without CAP_FSETID; but its FUSE layer
//! (`fuse_setattr`) narrows `setattr_should_drop_sgid`: the setgid bit of a file
//! that is *not* group-executable must also go when the caller is outside the
//! file's group (Linux `fs/attr.c`). What reaches us then is the narrowed mode
//! change, or, when nothing is left of it, a SETATTR with nothing in it (the
//! kernel still sends one). Setting an access ACL drops setgid on the same
//! condition (`posix_acl_update_mode`), which ext4 does only for the caller it
//! sees (root, here). FUSE tells the caller's uid, gid and pid; its
//! supplementary groups and capabilities are read from `/proc/<pid>/status`,
//! only when a file has one of the bits.

use super::caller::Caller;

/// Whether `mode` has a bit these rules may drop (callers skip reading /proc otherwise).
pub fn has_bits(mode: u32) -> bool {
    mode & (libc::S_ISUID | libc::S_ISGID) != 0
}

/// `setattr_should_drop_sgid`: the setgid bit goes when the file is group-executable,
/// or when the caller is outside its group and lacks CAP_FSETID.
pub fn sgid_to_drop(mode: u32, file_gid: u32, caller: &Caller) -> u32 {
    if mode & libc::S_ISGID == 0 {
        return 0;
    }
    if mode & libc::S_IXGRP != 0 || !caller.in_group_or_fsetid(file_gid) {
        return libc::S_ISGID;
    }
    0
}

/// `setattr_should_drop_suidgid`: what a write, truncate or fallocate by `caller`
/// drops from a regular file's `mode` (nothing for a caller with CAP_FSETID).
pub fn suidgid_to_drop(mode: u32, file_gid: u32, caller: &Caller) -> u32 {
    if mode & libc::S_IFMT != libc::S_IFREG || caller.fsetid() {
        return 0;
    }
    (mode & libc::S_ISUID) | sgid_to_drop(mode, file_gid, caller)
}

/// The setgid bit goes unless the caller is in the file's group or holds
/// CAP_FSETID: after setting an access ACL (`posix_acl_update_mode`), a chmod
/// (`setattr_prepare`) and a kill of privileges (`setattr_should_drop_sgid`),
/// whichever FUSE sent. (The kernel already cleared it from a chmod's mode and
/// from a group-executable file.)
pub fn outsider_sgid_to_drop(mode: u32, file_gid: u32, caller: &Caller) -> u32 {
    if mode & libc::S_ISGID != 0 && !caller.in_group_or_fsetid(file_gid) {
        libc::S_ISGID
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = libc::S_IFREG;

    fn outsider() -> Caller {
        Caller::with(1000, 100, vec![100, 7], false)
    }

    #[test]
    fn writes_by_an_outsider_drop_both_bits() {
        // 6666 (-rwSrwSrw-): setuid always, setgid (not group-executable) because outside group 50.
        assert_eq!(suidgid_to_drop(REG | 0o6666, 50, &outsider()), libc::S_ISUID | libc::S_ISGID);
        // A member of the group (supplementary) keeps a non-executable setgid bit.
        assert_eq!(suidgid_to_drop(REG | 0o2666, 7, &outsider()), 0);
        // Group-executable: setgid goes for members too.
        assert_eq!(suidgid_to_drop(REG | 0o2676, 7, &outsider()), libc::S_ISGID);
    }

    #[test]
    fn cap_fsetid_and_directories_keep_their_bits() {
        let root = Caller::with(0, 0, vec![], true);
        assert_eq!(suidgid_to_drop(REG | 0o6777, 50, &root), 0);
        assert_eq!(suidgid_to_drop(libc::S_IFDIR | 0o2777, 50, &outsider()), 0);
    }

    #[test]
    fn acls_and_modes_drop_setgid_outside_the_group_only() {
        assert_eq!(outsider_sgid_to_drop(REG | 0o2755, 50, &outsider()), libc::S_ISGID);
        assert_eq!(outsider_sgid_to_drop(REG | 0o2755, 100, &outsider()), 0);
        assert_eq!(outsider_sgid_to_drop(REG | 0o0755, 50, &outsider()), 0);
    }

    #[test]
    fn this_process_is_read_from_proc() {
        let me = Caller::new(nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw(), std::process::id());
        // The tests run as root: CAP_FSETID.
        if nix::unistd::geteuid().is_root() {
            assert!(me.fsetid());
        }
        let gone = Caller::new(1000, 5, u32::MAX);
        assert!(!gone.fsetid() && gone.groups().is_none() && gone.in_group_or_fsetid(5) && !gone.in_group_or_fsetid(6));
    }
}
