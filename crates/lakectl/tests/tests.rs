//! The lakectl integration tests: one test binary, a module per area (ripgrep's layout).
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod branch_cli;
mod catalog_access;
mod catalog_cli;
mod catalog_mount;
mod common;
mod corruption;
mod format_fixture;
mod generation_cli;
mod history;
mod posix;
mod robustness;
mod roundtrip;
mod security;
mod volume_cli;
mod volume_names;
