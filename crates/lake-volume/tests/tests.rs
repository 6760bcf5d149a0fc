//! The volume's integration tests: real FUSE mounts of the driver and the volume daemon.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod fuse_bounds;
mod fuse_common;
mod fuse_fidelity;
mod fuse_names;
mod fuse_pjdfstest;
mod fuse_posix;
