//! Chunk lists: how a large file is cut into content-defined chunks. The list is an
//! object of its own, and its id is the file's content id in trees.

use crate::encoding::{Reader, Writer};
use crate::error::Result;
use crate::id::ObjectId;

pub const MAGIC: &[u8; 8] = b"LKCHNK01";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkList {
    /// Chunks in order, with their lengths.
    pub chunks: Vec<(ObjectId, u32)>,
}

impl ChunkList {
    pub fn size(&self) -> u64 {
        self.chunks.iter().map(|c| u64::from(c.1)).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_magic(MAGIC);
        w.uvar(self.size());
        w.uvar(self.chunks.len() as u64);
        for (id, len) in &self.chunks {
            w.id(id);
            w.uvar(u64::from(*len));
        }
        w.buf
    }

    pub fn decode(buf: &[u8]) -> Result<ChunkList> {
        let mut r = Reader::with_magic(buf, MAGIC, "chunk list")?;
        let size = r.uvar()?;
        let n = r.uvar()?;
        let mut chunks = Vec::with_capacity(n.min(1 << 20) as usize);
        for _ in 0..n {
            let id = r.id()?;
            let len = u32::try_from(r.uvar()?).map_err(|_| r.err("chunk length out of range"))?;
            chunks.push((id, len));
        }
        r.finish()?;
        let list = ChunkList { chunks };
        if list.size() != size {
            return Err(crate::error::Error::Decode { what: "chunk list", why: "total size differs from the chunks".into() });
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_golden_vector() {
        let c = ChunkList { chunks: vec![(ObjectId::hash(b"a"), 1), (ObjectId::hash(b"b"), 1)] };
        assert_eq!(ChunkList::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.size(), 2);
        assert_eq!(ObjectId::hash(&c.encode()).to_string(), "b3:847e56506ab73eceb4a75e62d2ab0ee9409c2e6d20da2749babcf5dfff23090b");
    }
}
