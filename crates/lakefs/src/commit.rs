//! Commit objects: a tree, its parents, the scope it covers (zone / app / path),
//! when and why it was made. Canonical encoding in docs/format.md.

use crate::encoding::{Reader, Writer};
use crate::error::Result;
use crate::id::ObjectId;
use crate::tree::{get_meta, put_meta, Meta};

pub const MAGIC: &[u8; 8] = b"LKCOMT01";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Commit {
    pub tree: ObjectId,
    /// Metadata of the root directory itself (trees record their entries' metadata,
    /// so the root's own mode, owner, times and xattrs live here).
    pub root: Meta,
    pub parents: Vec<ObjectId>,
    /// What the commit covers, e.g. `zone:posix`, `path:/home/ann`, `app:firefox`.
    pub scope: String,
    /// Seconds since the epoch (UTC) and nanoseconds.
    pub time: i64,
    pub time_nsec: u32,
    /// What made it: `manual`, `apt`, `dpkg-pre`, `timer`, `close`, ...
    pub trigger: String,
    pub message: String,
    /// Further facts as sorted key/value pairs (e.g. `cmdline`, `host`).
    pub extra: Vec<(String, String)>,
}

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_magic(MAGIC);
        w.id(&self.tree);
        put_meta(&mut w, &self.root);
        w.uvar(self.parents.len() as u64);
        for p in &self.parents {
            w.id(p);
        }
        w.bytes(self.scope.as_bytes());
        w.svar(self.time);
        w.uvar(u64::from(self.time_nsec));
        w.bytes(self.trigger.as_bytes());
        w.bytes(self.message.as_bytes());
        let mut extra = self.extra.clone();
        extra.sort();
        w.uvar(extra.len() as u64);
        for (k, v) in &extra {
            w.bytes(k.as_bytes());
            w.bytes(v.as_bytes());
        }
        w.buf
    }

    pub fn id(&self) -> ObjectId {
        ObjectId::hash(&self.encode())
    }

    pub fn decode(buf: &[u8]) -> Result<Commit> {
        let mut r = Reader::with_magic(buf, MAGIC, "commit")?;
        let tree = r.id()?;
        let root = get_meta(&mut r)?;
        let n = r.uvar()?;
        let mut parents = Vec::new();
        for _ in 0..n {
            parents.push(r.id()?);
        }
        let scope = r.string()?;
        let time = r.svar()?;
        let time_nsec = u32::try_from(r.uvar()?).map_err(|_| r.err("nanoseconds out of range"))?;
        let trigger = r.string()?;
        let message = r.string()?;
        let n = r.uvar()?;
        let mut extra: Vec<(String, String)> = Vec::new();
        for _ in 0..n {
            let kv = (r.string()?, r.string()?);
            if extra.last().is_some_and(|p| *p >= kv) {
                return Err(r.err("extra fields not sorted"));
            }
            extra.push(kv);
        }
        r.finish()?;
        Ok(Commit { tree, root, parents, scope, time, time_nsec, trigger, message, extra })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Commit {
        Commit {
            tree: ObjectId::hash(b"tree"),
            root: Meta { mode: 0o755, uid: 0, gid: 0, mtime: 1_750_000_000, mtime_nsec: 0, xattrs: vec![] },
            parents: vec![ObjectId::hash(b"parent")],
            scope: "zone:posix".into(),
            time: 1_750_000_000,
            time_nsec: 42,
            trigger: "apt".into(),
            message: "install hello".into(),
            extra: vec![("cmdline".into(), "apt-get install hello".into())],
        }
    }

    #[test]
    fn round_trip_and_golden_vector() {
        let c = sample();
        assert_eq!(Commit::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.id().to_string(), "b3:638168beba28207ccefa99a85f0d246ff72845bf0a874d26855155e741772038");
    }
}
