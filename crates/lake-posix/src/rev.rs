//! The POSIX zone's revision names, on top of the store's (`lakefs::rev`):
//!
//! - `gen:N` (or `generation:N`): the commit generation N was deployed from;
//! - `before:last-apt-upgrade`: the POSIX-zone state just before the newest
//!   package run (its "pre" commit), `last-apt-upgrade`: just after it.
//!
//! Everything else (refs, ids, `REV~N`, times) is the store's.

use lakefs::error::{Error, Result};
use lakefs::{Lake, ObjectId};

/// Resolves `rev` to a commit id: the POSIX zone's names, then the store's;
/// times are looked up on `default_ref`.
pub fn resolve(lake: &Lake, rev: &str, default_ref: &str) -> Result<ObjectId> {
    lakefs::rev::resolve_with(lake, rev, default_ref, &lakefs::rev::now_local(), &names)
}

fn names(lake: &Lake, rev: &str, default_ref: &str) -> Result<Option<ObjectId>> {
    if let Some(n) = rev.strip_prefix("gen:").or_else(|| rev.strip_prefix("generation:")) {
        let n: u32 = n.trim().parse().map_err(|_| Error::UnknownRevision(rev.to_owned()))?;
        return crate::generation::get(lake, n)?
            .map(|g| Some(g.commit))
            .ok_or_else(|| Error::UnknownRevision(format!("{rev} (no generation {n})")));
    }
    if rev == "before:last-apt-upgrade" || rev == "last-apt-upgrade" {
        let head =
            lake.get_ref(default_ref)?.ok_or_else(|| Error::UnknownRevision(format!("{rev} (ref '{default_ref}' does not exist)")))?;
        let (pre, post) = crate::posix::last_package_run(lake, head)?
            .ok_or_else(|| Error::UnknownRevision(format!("{rev} (no apt or dpkg run recorded on '{default_ref}')")))?;
        return Ok(Some(if rev.starts_with("before:") { pre } else { post }));
    }
    Ok(None)
}
