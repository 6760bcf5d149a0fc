//! The tools' integration tests: the binaries mkfs.lakefs, fsck.lakefs, lakefs and mount.lakefs run for real.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod branch_mount;
mod fuse_mount_cli;
mod substrate;
mod volume_crash;
