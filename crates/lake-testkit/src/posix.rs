//! Committing a directory as the POSIX zone does (ref `posix/main`, loose
//! objects, the zone's scope), without the 9-field request in every test.

use std::path::Path;

use lakefs::import::ImportOptions;
use lakefs::ops::{commit_dir, CommitOutcome, CommitRequest};
use lakefs::progress::Silent;
use lakefs::Lake;

/// The POSIX zone's ref (`lake_posix::generation::POSIX_REF`; the kit sits below that crate).
pub const POSIX_REF: &str = "posix/main";

/// Commits `src` onto `posix/main` with `message` (trigger `test`); with
/// `allow_empty`, a commit is made even when nothing changed.
pub fn commit(lake: &Lake, src: &Path, message: &str, allow_empty: bool) -> CommitOutcome {
    let req = CommitRequest {
        src,
        reference: POSIX_REF,
        message,
        scope: "zone:posix",
        trigger: "test",
        changed: None,
        options: ImportOptions { loose: true },
        extra: vec![],
        allow_empty,
    };
    commit_dir(lake, &req, &Silent).expect("POSIX commit")
}
