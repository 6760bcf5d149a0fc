//! lake-testkit: what the integration tests of every crate share (dev-only,
//! `publish = false`). Depends on the store only, so any crate can use it.
//!
//! - [`bytes`]: deterministic bytes that neither compress nor dedupe by accident;
//! - [`tree`]: a tree with every kind of entry the lake must round-trip
//!   ([`tree::special_tree`]), exact snapshots of a tree and their comparison;
//! - [`fuse`]: [`require_fuse`], the one policy for FUSE tests (under CI a
//!   missing FUSE fails, elsewhere the test skips with a note), and mount checks;
//! - [`bins`]: finding the workspace's built binaries ([`bin`]);
//! - [`mount`]: a real `lakefs mount` of a volume, unmounted on drop;
//! - [`posix`]: committing a directory as the POSIX zone does.
//!
//! Tests panic on failure, so these helpers unwrap freely.

pub mod bins;
pub mod bytes;
pub mod fuse;
pub mod mount;
pub mod posix;
pub mod tree;

pub use bins::bin;
pub use bytes::bytes;
pub use fuse::require_fuse;
pub use mount::Mounted;
