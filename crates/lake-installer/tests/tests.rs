//! The installer's integration tests: installs and install media built for real.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod install;
mod iso;
