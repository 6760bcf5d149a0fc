//! The catalog's integration tests: indexing and views on a real lake.
//!
//! One integration-test binary per crate (`autotests = false` in Cargo.toml):
//! each module below was a test binary of its own; they link once.

mod catalog_index;
