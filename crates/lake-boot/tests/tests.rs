//! lake-boot's integration tests: deploying generations onto a real FAT file system.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod vfat;
