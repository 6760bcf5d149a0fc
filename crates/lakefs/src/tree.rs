//! Tree objects: the canonical encoding of one directory's entries (sorted by name),
//! with everything an inode carries. Layout and golden vectors in docs/format.md.

use crate::encoding::{Reader, Writer};
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const MAGIC: &[u8; 8] = b"LKTREE01";

/// Inode metadata that a tree records for every non-hard-link entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Meta {
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// Extended attributes sorted by name (`security.capability` included).
    #[serde(skip)]
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Content {
    Whole(ObjectId),
    Chunked(ObjectId),
}

impl Content {
    pub fn id(&self) -> ObjectId {
        match self {
            Content::Whole(id) | Content::Chunked(id) => *id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A file's content is either one object (`Whole`, id = BLAKE3 of the bytes) or a
    /// chunk list object (`Chunked`). The form is part of the entry, so reading never
    /// depends on how the index labels an object.
    File {
        meta: Meta,
        size: u64,
        content: Content,
    },
    Dir {
        meta: Meta,
        tree: ObjectId,
    },
    Symlink {
        meta: Meta,
        target: Vec<u8>,
    },
    /// A further name of an inode met earlier in the walk: `target` is the
    /// root-relative path (no leading '/') of its first name, as tar records them.
    Hardlink {
        target: Vec<u8>,
    },
    CharDev {
        meta: Meta,
        rdev: u64,
    },
    BlockDev {
        meta: Meta,
        rdev: u64,
    },
    Fifo {
        meta: Meta,
    },
    Socket {
        meta: Meta,
    },
}

impl Node {
    /// The entry kind byte of the encoding (1 file .. 8 socket).
    pub fn tag(&self) -> u8 {
        match self {
            Node::File { .. } => 1,
            Node::Dir { .. } => 2,
            Node::Symlink { .. } => 3,
            Node::Hardlink { .. } => 4,
            Node::CharDev { .. } => 5,
            Node::BlockDev { .. } => 6,
            Node::Fifo { .. } => 7,
            Node::Socket { .. } => 8,
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match self {
            Node::File { .. } => "file",
            Node::Dir { .. } => "dir",
            Node::Symlink { .. } => "symlink",
            Node::Hardlink { .. } => "hardlink",
            Node::CharDev { .. } => "chardev",
            Node::BlockDev { .. } => "blockdev",
            Node::Fifo { .. } => "fifo",
            Node::Socket { .. } => "socket",
        }
    }

    pub fn meta(&self) -> Option<&Meta> {
        match self {
            Node::File { meta, .. }
            | Node::Dir { meta, .. }
            | Node::Symlink { meta, .. }
            | Node::CharDev { meta, .. }
            | Node::BlockDev { meta, .. }
            | Node::Fifo { meta }
            | Node::Socket { meta } => Some(meta),
            Node::Hardlink { .. } => None,
        }
    }

    pub fn meta_mut(&mut self) -> Option<&mut Meta> {
        match self {
            Node::File { meta, .. }
            | Node::Dir { meta, .. }
            | Node::Symlink { meta, .. }
            | Node::CharDev { meta, .. }
            | Node::BlockDev { meta, .. }
            | Node::Fifo { meta }
            | Node::Socket { meta } => Some(meta),
            Node::Hardlink { .. } => None,
        }
    }

    /// Same kind and content, ignoring inode metadata (used by diff).
    pub fn same_content(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::File { content: a, size: sa, .. }, Node::File { content: b, size: sb, .. }) => a == b && sa == sb,
            (Node::Dir { tree: a, .. }, Node::Dir { tree: b, .. }) => a == b,
            (Node::Symlink { target: a, .. }, Node::Symlink { target: b, .. }) => a == b,
            (Node::Hardlink { target: a }, Node::Hardlink { target: b }) => a == b,
            (Node::CharDev { rdev: a, .. }, Node::CharDev { rdev: b, .. }) => a == b,
            (Node::BlockDev { rdev: a, .. }, Node::BlockDev { rdev: b, .. }) => a == b,
            (Node::Fifo { .. }, Node::Fifo { .. }) | (Node::Socket { .. }, Node::Socket { .. }) => true,
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub node: Node,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// Sorted by name (bytewise), names unique, non-empty, without '/' or NUL.
    pub entries: Vec<Entry>,
}

pub fn put_meta(w: &mut Writer, m: &Meta) {
    w.uvar(u64::from(m.mode));
    w.uvar(u64::from(m.uid));
    w.uvar(u64::from(m.gid));
    w.svar(m.mtime);
    w.uvar(u64::from(m.mtime_nsec));
    w.uvar(m.xattrs.len() as u64);
    for (k, v) in &m.xattrs {
        w.bytes(k);
        w.bytes(v);
    }
}

pub fn get_meta(r: &mut Reader) -> Result<Meta> {
    let small = |r: &Reader, v: u64, what: &str| u32::try_from(v).map_err(|_| r.err(&format!("{what} out of range")));
    let v = r.uvar()?;
    let mode = small(r, v, "mode")?;
    if mode & !0o7777 != 0 {
        return Err(r.err("mode has file-type bits"));
    }
    let v = r.uvar()?;
    let uid = small(r, v, "uid")?;
    let v = r.uvar()?;
    let gid = small(r, v, "gid")?;
    let mtime = r.svar()?;
    let v = r.uvar()?;
    let mtime_nsec = small(r, v, "nsec")?;
    if mtime_nsec >= 1_000_000_000 {
        return Err(r.err("nanoseconds out of range"));
    }
    let n = r.uvar()?;
    let mut xattrs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for _ in 0..n {
        let k = r.bytes()?.to_vec();
        let v = r.bytes()?.to_vec();
        if xattrs.last().is_some_and(|(p, _)| *p >= k) {
            return Err(r.err("xattrs not sorted"));
        }
        xattrs.push((k, v));
    }
    Ok(Meta { mode, uid, gid, mtime, mtime_nsec, xattrs })
}

impl Tree {
    /// The canonical encoding. Callers must have sorted entries (see [`Tree::sort`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_magic(MAGIC);
        w.uvar(self.entries.len() as u64);
        for e in &self.entries {
            w.bytes(&e.name);
            w.u8(e.node.tag());
            if let Some(m) = e.node.meta() {
                put_meta(&mut w, m);
            }
            match &e.node {
                Node::File { size, content, .. } => {
                    w.uvar(*size);
                    match content {
                        Content::Whole(id) => {
                            w.u8(0);
                            w.id(id);
                        }
                        Content::Chunked(id) => {
                            w.u8(1);
                            w.id(id);
                        }
                    }
                }
                Node::Dir { tree, .. } => w.id(tree),
                Node::Symlink { target, .. } | Node::Hardlink { target } => w.bytes(target),
                Node::CharDev { rdev, .. } | Node::BlockDev { rdev, .. } => w.uvar(*rdev),
                Node::Fifo { .. } | Node::Socket { .. } => {}
            }
        }
        w.buf
    }

    pub fn id(&self) -> ObjectId {
        ObjectId::hash(&self.encode())
    }

    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
        for e in &mut self.entries {
            if let Some(m) = e.node.meta_mut() {
                m.xattrs.sort();
            }
        }
    }

    /// Decodes and insists on canonical form, so that one tree has exactly one id.
    pub fn decode(buf: &[u8]) -> Result<Tree> {
        let mut r = Reader::with_magic(buf, MAGIC, "tree")?;
        let n = r.uvar()?;
        let mut entries: Vec<Entry> = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            let name = r.bytes()?.to_vec();
            if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
                return Err(r.err("invalid entry name"));
            }
            if entries.last().is_some_and(|p| p.name >= name) {
                return Err(r.err("entries not sorted or duplicated"));
            }
            let tag = r.u8()?;
            let meta = if tag == 4 { Meta::default() } else { get_meta(&mut r)? };
            let node = match tag {
                1 => {
                    let size = r.uvar()?;
                    let content = match r.u8()? {
                        0 => Content::Whole(r.id()?),
                        1 => Content::Chunked(r.id()?),
                        f => return Err(r.err(&format!("unknown content form {f}"))),
                    };
                    Node::File { meta, size, content }
                }
                2 => Node::Dir { meta, tree: r.id()? },
                3 => Node::Symlink { meta, target: r.bytes()?.to_vec() },
                4 => Node::Hardlink { target: r.bytes()?.to_vec() },
                5 => Node::CharDev { meta, rdev: r.uvar()? },
                6 => Node::BlockDev { meta, rdev: r.uvar()? },
                7 => Node::Fifo { meta },
                8 => Node::Socket { meta },
                _ => return Err(r.err(&format!("unknown entry kind {tag}"))),
            };
            entries.push(Entry { name, node });
        }
        r.finish()?;
        Ok(Tree { entries })
    }

    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.binary_search_by(|e| e.name.as_slice().cmp(name)).ok().map(|i| &self.entries[i])
    }
}

/// Errors if a tree decoded from object `id` is not what the id promises.
pub fn decode_checked(id: &ObjectId, buf: &[u8]) -> Result<Tree> {
    Tree::decode(buf).map_err(|e| Error::CorruptObject { id: *id, why: e.to_string() })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> Tree {
        let meta = |mode| Meta { mode, uid: 0, gid: 0, mtime: 1_700_000_000, mtime_nsec: 5, xattrs: vec![] };
        let mut t = Tree {
            entries: vec![
                Entry {
                    name: b"ping".to_vec(),
                    node: Node::File {
                        meta: Meta { xattrs: vec![(b"security.capability".to_vec(), vec![1, 0, 0, 2, 0, 32, 0, 0])], ..meta(0o755) },
                        size: 5,
                        content: Content::Whole(ObjectId::hash(b"hello")),
                    },
                },
                Entry { name: b"bin".to_vec(), node: Node::Symlink { meta: meta(0o777), target: b"usr/bin".to_vec() } },
                Entry { name: b"etc".to_vec(), node: Node::Dir { meta: meta(0o755), tree: ObjectId::hash(b"x") } },
                Entry { name: b"null".to_vec(), node: Node::CharDev { meta: meta(0o666), rdev: 0x103 } },
                Entry { name: b"sda".to_vec(), node: Node::BlockDev { meta: meta(0o660), rdev: 0x800 } },
                Entry { name: b"fifo".to_vec(), node: Node::Fifo { meta: meta(0o600) } },
                Entry { name: b"sock".to_vec(), node: Node::Socket { meta: meta(0o755) } },
                Entry { name: b"ping2".to_vec(), node: Node::Hardlink { target: b"ping".to_vec() } },
                Entry {
                    name: b"big".to_vec(),
                    node: Node::File { meta: meta(0o644), size: 1 << 30, content: Content::Chunked(ObjectId::hash(b"list")) },
                },
            ],
        };
        t.sort();
        t
    }

    #[test]
    fn round_trips_every_kind() {
        let t = sample();
        let enc = t.encode();
        assert_eq!(Tree::decode(&enc).unwrap(), t);
    }

    #[test]
    fn golden_vector() {
        // If this changes, the tree encoding changed: bump the magic's version instead.
        assert_eq!(sample().id().to_string(), "b3:a3aba29c139b51286da1348e6c7b99a8098ae03027fedefacb9d460041c485a5");
    }

    #[test]
    fn rejects_non_canonical() {
        let mut t = sample();
        t.entries.swap(0, 1);
        assert!(Tree::decode(&t.encode()).is_err(), "unsorted entries");
        let mut enc = sample().encode();
        enc.push(0);
        assert!(Tree::decode(&enc).is_err(), "trailing byte");
        let enc = sample().encode();
        assert!(Tree::decode(&enc[..enc.len() - 1]).is_err(), "truncated");
    }
}
