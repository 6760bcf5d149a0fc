//! Gating FUSE tests: one policy for every crate.

use std::path::Path;

/// Whether CI is set (`CI=true`, as CI services set it; `CI=0`/`false`/empty: not).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Whether real FUSE mounts can run here (root, and /dev/fuse opens read-write).
/// When they cannot: under CI this panics, so a FUSE test never passes in CI
/// without running; elsewhere it prints a note and returns false (skip).
pub fn require_fuse() -> bool {
    let ok = nix::unistd::geteuid().is_root() && std::fs::OpenOptions::new().read(true).write(true).open("/dev/fuse").is_ok();
    if !ok {
        if under_ci() {
            panic!("FUSE tests need root and /dev/fuse (CI is set, so not skipping)");
        }
        eprintln!("skipping: FUSE tests need root and /dev/fuse");
    }
    ok
}

/// Whether `p` is a mount point of this process's mount namespace.
pub fn is_mounted(p: &Path) -> bool {
    let Ok(m) = std::fs::read_to_string("/proc/self/mounts") else {
        return false;
    };
    let p = p.to_string_lossy();
    m.lines().any(|l| l.split(' ').nth(1) == Some(&*p))
}
