//! The workspace's built binaries. `CARGO_BIN_EXE_*` only names a test's own
//! package's binaries; the others sit in the same target directory, next to
//! the test executable's `deps/` directory (`cargo build --workspace` or
//! `cargo test --workspace` builds them, same profile).

use std::path::PathBuf;

/// The path of binary `name` (e.g. `lakefs`, `lakectl`, `mkfs-lakefs`) of this
/// build; panics with what to run when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| if d.ends_with("deps") { d.parent() } else { Some(d) }).expect("the target directory");
    let p = dir.join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace` (same profile) first", p.display());
    p
}
