//! The hot-cache view: a compact serialized index of a generation's tree (path,
//! kind, inode metadata, size, object id), written beside its checkout. Early
//! boot, commits and diffs read it instead of walking SQLite and tree objects or
//! re-hashing files, as Git reads its index. zstd-compressed; format below.
//!
//! `LKHOTC01`, then zstd of: uvar root-tree id count (1) + root tree id, uvar n,
//! then n entries in sorted depth-first order: bytes path (no leading '/'),
//! u8 kind (tree.rs tags), meta (absent for hard links), uvar size, u8 has_id,
//! [id], bytes target (symlink / hard-link target, else empty), uvar rdev.

use std::path::Path;

use lakefs::encoding::{Reader, Writer};
use lakefs::error::{Error, IoContext, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::{get_meta, put_meta, Meta, Node};

const MAGIC: &[u8; 8] = b"LKHOTC01";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HotEntry {
    pub path: Vec<u8>,
    pub kind: u8,
    pub meta: Option<Meta>,
    pub size: u64,
    pub id: Option<ObjectId>,
    pub target: Vec<u8>,
    pub rdev: u64,
}

fn walk(lake: &Lake, tree: &ObjectId, prefix: &[u8], out: &mut Vec<HotEntry>) -> Result<()> {
    for e in lake.read_tree(tree)?.entries {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&e.name);
        let (size, id, target, rdev) = match &e.node {
            Node::File { size, content, .. } => (*size, Some(content.id()), Vec::new(), 0),
            Node::Dir { tree, .. } => (0, Some(*tree), Vec::new(), 0),
            Node::Symlink { target, .. } | Node::Hardlink { target } => (0, None, target.clone(), 0),
            Node::CharDev { rdev, .. } | Node::BlockDev { rdev, .. } => (0, None, Vec::new(), *rdev),
            _ => (0, None, Vec::new(), 0),
        };
        out.push(HotEntry { path: path.clone(), kind: e.node.tag(), meta: e.node.meta().cloned(), size, id, target, rdev });
        if let Node::Dir { tree, .. } = &e.node {
            walk(lake, tree, &path, out)?;
        }
    }
    Ok(())
}

pub fn build(lake: &Lake, tree: &ObjectId) -> Result<Vec<HotEntry>> {
    let mut out = Vec::new();
    walk(lake, tree, b"", &mut out)?;
    Ok(out)
}

pub fn encode(tree: &ObjectId, entries: &[HotEntry]) -> Vec<u8> {
    let mut w = Writer::default();
    w.id(tree);
    w.uvar(entries.len() as u64);
    for e in entries {
        w.bytes(&e.path);
        w.u8(e.kind);
        if let Some(m) = &e.meta {
            put_meta(&mut w, m);
        }
        w.uvar(e.size);
        match &e.id {
            Some(id) => {
                w.u8(1);
                w.id(id);
            }
            None => w.u8(0),
        }
        w.bytes(&e.target);
        w.uvar(e.rdev);
    }
    let mut out = MAGIC.to_vec();
    out.extend(zstd::bulk::compress(&w.buf, 3).unwrap_or_default());
    out
}

pub fn decode(buf: &[u8]) -> Result<(ObjectId, Vec<HotEntry>)> {
    let bad = |why: &str| Error::Decode { what: "hot-cache view", why: why.into() };
    if buf.len() < 8 || &buf[..8] != MAGIC {
        return Err(bad("wrong magic"));
    }
    let raw = zstd::stream::decode_all(&buf[8..]).map_err(|e| bad(&e.to_string()))?;
    let mut framed = MAGIC.to_vec();
    framed.extend(raw);
    let mut r = Reader::with_magic(&framed, MAGIC, "hot-cache view")?;
    let tree = r.id()?;
    let n = r.uvar()?;
    let mut out = Vec::with_capacity(n.min(1 << 20) as usize);
    for _ in 0..n {
        let path = r.bytes()?.to_vec();
        let kind = r.u8()?;
        let meta = if kind == 4 { None } else { Some(get_meta(&mut r)?) };
        let size = r.uvar()?;
        let id = if r.u8()? == 1 { Some(r.id()?) } else { None };
        let target = r.bytes()?.to_vec();
        let rdev = r.uvar()?;
        out.push(HotEntry { path, kind, meta, size, id, target, rdev });
    }
    r.finish()?;
    Ok((tree, out))
}

pub fn write(lake: &Lake, tree: &ObjectId, path: &Path) -> Result<()> {
    use std::io::Write;
    let entries = build(lake, tree)?;
    // Names every path of the generation: private, as the lake's other files.
    lakefs::privacy::new_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(&encode(tree, &entries)))
        .at(path)
}

pub fn read(path: &Path) -> Result<(ObjectId, Vec<HotEntry>)> {
    decode(&std::fs::read(path).at(path)?)
}
