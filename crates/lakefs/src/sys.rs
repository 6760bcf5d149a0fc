//! The store's raw syscalls, in one place: whole-file locks, `syncfs`, the
//! kernel's random bytes. Everything else in the store is safe code; these wrap
//! calls std does not offer on the supported toolchain (rust-version 1.85).
#![allow(unsafe_code)] // the one module of the store that calls libc directly

use std::io;
use std::os::fd::AsRawFd;

/// `flock(LOCK_EX)` on `f`: waits for the lock when `wait`, else fails with
/// `ErrorKind::WouldBlock` when another holder has it. The lock lives as long
/// as the descriptor.
pub fn lock_exclusive(f: &impl AsRawFd, wait: bool) -> io::Result<()> {
    let op = if wait { libc::LOCK_EX } else { libc::LOCK_EX | libc::LOCK_NB };
    // SAFETY: `f` owns a valid descriptor for the duration of the call.
    if unsafe { libc::flock(f.as_raw_fd(), op) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `syncfs(2)`: makes everything written to the file system holding `f` durable.
pub fn syncfs(f: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: `f` owns a valid descriptor for the duration of the call.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Fills `buf` from the kernel's CSPRNG (`getrandom(2)`, retried until full).
pub fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let r = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if r > 0 {
            filled += r as usize;
        }
    }
}
