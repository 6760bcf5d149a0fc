//! Chunk lists: how a large file is cut into content-defined chunks. The list is an
//! object of its own, and its id is the file's content id in trees.
//!
//! A list may also hold holes (runs of zeros the source file system reported as
//! unallocated, found with SEEK_DATA/SEEK_HOLE), so a sparse file costs what its
//! data costs to import and comes back sparse. A list without holes keeps the
//! first encoding (`LKCHNK01`), so every id written before holes existed stays
//! valid; a list with holes is `LKCHNK02` (superblock feature `INCOMPAT_SPARSE`).

use crate::encoding::{Reader, Writer};
use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const MAGIC: &[u8; 8] = b"LKCHNK01";
pub const MAGIC_SPARSE: &[u8; 8] = b"LKCHNK02";

/// One piece of a file, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A data chunk (an object) and its length.
    Chunk(ObjectId, u32),
    /// A run of zero bytes that is not stored.
    Hole(u64),
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Chunk(_, n) => u64::from(*n),
            Piece::Hole(n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkList {
    pub pieces: Vec<Piece>,
}

impl ChunkList {
    pub fn size(&self) -> u64 {
        self.pieces.iter().map(Piece::len).sum()
    }

    /// The data chunks, in order (what reachability, verify and gc care about).
    pub fn chunk_ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Chunk(id, _) => Some(*id),
            Piece::Hole(_) => None,
        })
    }

    pub fn has_holes(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Hole(_)))
    }

    pub fn push_chunk(&mut self, id: ObjectId, len: u32) {
        self.pieces.push(Piece::Chunk(id, len));
    }

    /// Appends a hole, merged with a hole before it (the canonical form has no
    /// two holes in a row and no empty hole).
    pub fn push_hole(&mut self, len: u64) {
        if len == 0 {
            return;
        }
        match self.pieces.last_mut() {
            Some(Piece::Hole(n)) => *n += len,
            _ => self.pieces.push(Piece::Hole(len)),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        if !self.has_holes() {
            let mut w = Writer::with_magic(MAGIC);
            w.uvar(self.size());
            w.uvar(self.pieces.len() as u64);
            for p in &self.pieces {
                if let Piece::Chunk(id, len) = p {
                    w.id(id);
                    w.uvar(u64::from(*len));
                }
            }
            return w.buf;
        }
        let mut w = Writer::with_magic(MAGIC_SPARSE);
        w.uvar(self.size());
        w.uvar(self.pieces.len() as u64);
        for p in &self.pieces {
            match p {
                Piece::Chunk(id, len) => {
                    w.u8(0);
                    w.id(id);
                    w.uvar(u64::from(*len));
                }
                Piece::Hole(len) => {
                    w.u8(1);
                    w.uvar(*len);
                }
            }
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<ChunkList> {
        let sparse = buf.starts_with(MAGIC_SPARSE);
        let mut r = Reader::with_magic(buf, if sparse { MAGIC_SPARSE } else { MAGIC }, "chunk list")?;
        let size = r.uvar()?;
        let n = r.uvar()?;
        let mut pieces = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let tag = if sparse { r.u8()? } else { 0 };
            match tag {
                0 => {
                    let id = r.id()?;
                    let len = u32::try_from(r.uvar()?).map_err(|_| r.err("chunk length out of range"))?;
                    pieces.push(Piece::Chunk(id, len));
                }
                1 => {
                    let len = r.uvar()?;
                    if len == 0 || matches!(pieces.last(), Some(Piece::Hole(_))) {
                        return Err(r.err("empty or split hole (not canonical)"));
                    }
                    pieces.push(Piece::Hole(len));
                }
                t => return Err(r.err(&format!("unknown piece kind {t}"))),
            }
        }
        r.finish()?;
        let list = ChunkList { pieces };
        if sparse && !list.has_holes() {
            return Err(Error::Decode { what: "chunk list", why: "sparse form without holes (not canonical)".into() });
        }
        let total = list.pieces.iter().try_fold(0u64, |acc, p| acc.checked_add(p.len()));
        if total != Some(size) {
            return Err(Error::Decode { what: "chunk list", why: "total size differs from the chunks".into() });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden_vector() {
        let mut c = ChunkList::default();
        c.push_chunk(ObjectId::hash(b"a"), 1);
        c.push_chunk(ObjectId::hash(b"b"), 1);
        assert_eq!(ChunkList::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.size(), 2);
        // The list without holes is encoded exactly as before holes existed.
        assert_eq!(ObjectId::hash(&c.encode()).to_string(), "b3:847e56506ab73eceb4a75e62d2ab0ee9409c2e6d20da2749babcf5dfff23090b");
    }

    #[test]
    fn sparse_round_trip_and_golden_vector() {
        let mut c = ChunkList::default();
        c.push_hole(1 << 44);
        c.push_hole(5);
        c.push_chunk(ObjectId::hash(b"a"), 1);
        c.push_hole(7);
        assert_eq!(c.pieces.len(), 3, "adjacent holes merge");
        let enc = c.encode();
        assert!(enc.starts_with(MAGIC_SPARSE));
        assert_eq!(ChunkList::decode(&enc).unwrap(), c);
        assert_eq!(c.size(), (1 << 44) + 13);
        assert_eq!(c.chunk_ids().collect::<Vec<_>>(), vec![ObjectId::hash(b"a")]);
        assert_eq!(ObjectId::hash(&enc).to_string(), "b3:d8127159bd8bfc6e42cea80dc6e955a766d40fee4e7293d2755b4f2513398e6e");
    }

    #[test]
    fn rejects_non_canonical_sparse_lists() {
        let raw = |pieces: &[(u8, u64)]| {
            let mut w = Writer::with_magic(MAGIC_SPARSE);
            w.uvar(pieces.iter().map(|p| p.1).sum());
            w.uvar(pieces.len() as u64);
            for (tag, len) in pieces {
                w.u8(*tag);
                if *tag == 0 {
                    w.id(&ObjectId::hash(b"a"));
                }
                w.uvar(*len);
            }
            w.buf
        };
        assert!(ChunkList::decode(&raw(&[(1, 3), (0, 1)])).is_ok());
        assert!(ChunkList::decode(&raw(&[(1, 3), (1, 3)])).is_err(), "split hole");
        assert!(ChunkList::decode(&raw(&[(1, 0), (0, 1)])).is_err(), "empty hole");
        assert!(ChunkList::decode(&raw(&[(0, 1)])).is_err(), "sparse form without a hole");
        assert!(ChunkList::decode(&raw(&[(2, 1)])).is_err(), "unknown kind");
        let mut overflow = Writer::with_magic(MAGIC_SPARSE);
        overflow.uvar(1);
        overflow.uvar(2);
        overflow.u8(1);
        overflow.uvar(u64::MAX);
        overflow.u8(0);
        overflow.id(&ObjectId::hash(b"a"));
        overflow.uvar(2);
        assert!(ChunkList::decode(&overflow.buf).is_err(), "size overflow");
    }
}
