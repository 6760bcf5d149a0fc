//! The POSIX zone's integration tests: generations on a real lake.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod generation;
mod generation_retention;
