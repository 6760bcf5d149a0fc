//! lake-boot: what the boot loader sees of a lake's generations.
//!
//! Where things are:
//! - [`bls`]: systemd-boot's loader.conf and Boot Loader Specification entries
//!   (`lake-N.conf`, `lake-N+T.conf` with boot counting), kernels and initrds
//!   stored by content hash;
//! - [`chain`]: the Secure Boot chain on the ESP (shim, MokManager, signed
//!   systemd-boot where shim looks for its second stage);
//! - [`counting`]: reading the boot-counting state out of entry file names;
//! - [`esp`]: a mounted ESP directory: finding it, installing kernels, writing,
//!   listing and removing entries, dropping unused kernels, free space;
//! - [`retention`]: removing and pruning generations together with their entries;
//! - [`deploy`]: deploying a commit as a new generation with a counted entry,
//!   after checking the lake and the ESP have room.
//!
//! lakefs knows nothing of the ESP; this crate builds on it.

pub mod bls;
pub mod chain;
pub mod counting;
pub mod deploy;
pub mod error;
pub mod esp;
pub mod retention;

pub use error::{Error, Result};

/// Bytes as people read them, with the exact count: `1.5 MiB (1572864 bytes)`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {} ({bytes} bytes)", UNITS[u])
    }
}
