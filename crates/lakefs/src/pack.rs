//! Pack files: append-only files of zstd-compressed object records. The index that
//! says where each object lives is in the metadata database (see `meta.rs`); a pack
//! is reachable only once that index is committed, so a crash mid-write leaves at
//! most an orphan pack, which the next writer deletes. Layout in docs/format.md.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;

pub const MAGIC: &[u8; 8] = b"LKPACK01";
pub const RECORD_HEADER: usize = 44;
const FLAG_ZSTD: u8 = 1;
/// A writer starts a new pack past this size, so repacks and copies stay manageable.
const ROLL_AT: u64 = 1 << 30;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum Kind {
    /// File content: a whole small blob or one chunk of a large one.
    Data = 1,
    ChunkList = 2,
    Tree = 3,
    Commit = 4,
}

impl Kind {
    pub fn from_u8(v: u8) -> Option<Kind> {
        Some(match v {
            1 => Kind::Data,
            2 => Kind::ChunkList,
            3 => Kind::Tree,
            4 => Kind::Commit,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Kind::Data => "data",
            Kind::ChunkList => "chunklist",
            Kind::Tree => "tree",
            Kind::Commit => "commit",
        }
    }
}

/// Where a record sits: pack file name, offset of its header, and lengths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: String,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
    pub kind: Kind,
    pub compressed: bool,
}

/// A record ready to append: compressed (or not) off the writer thread.
pub struct Prepared<'a> {
    pub id: ObjectId,
    pub kind: Kind,
    pub raw_len: u32,
    pub compressed: bool,
    pub bytes: std::borrow::Cow<'a, [u8]>,
}

thread_local! {
    // zstd contexts per thread and level: creating one per record cost ~12% of ingest.
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(Vec::new()) };
    // Likewise for reads: a fresh context per record was the top user-space cost of
    // reading trees back (commits diffing, catalog indexing, `.lake/at`).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

fn decompress(stored: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut slot = d.borrow_mut();
        let d = match &mut *slot {
            Some(d) => d,
            empty => empty.insert(zstd::bulk::Decompressor::new()?),
        };
        d.decompress(stored, raw_len)
    })
}

fn compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = match c.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                c.push((level, zstd::bulk::Compressor::new(level).ok()?));
                c.len() - 1
            }
        };
        c[i].1.compress(raw).ok()
    })
}

/// Compresses `raw` with zstd, keeping it raw when compression would not save
/// at least 1/32 (already-compressed data stays cheap to read).
pub fn prepare(id: ObjectId, kind: Kind, raw: &[u8], level: i32) -> Prepared<'_> {
    let raw_len = raw.len() as u32;
    if raw.len() >= 64 && !looks_incompressible(raw) {
        if let Some(c) = compress(raw, level) {
            if c.len() < raw.len() - raw.len() / 32 {
                return Prepared { id, kind, raw_len, compressed: true, bytes: c.into() };
            }
        }
    }
    Prepared { id, kind, raw_len, compressed: false, bytes: raw.into() }
}

/// Whether two 4 KiB samples (start and middle) do not compress at zstd's
/// fastest level: then the whole record is stored raw without trying, which
/// spares a full compression pass over already-compressed or random data
/// (media, archives, encrypted files) for about 1/8 of its cost.
fn looks_incompressible(raw: &[u8]) -> bool {
    const SAMPLE: usize = 4096;
    if raw.len() < 4 * SAMPLE {
        return false;
    }
    let mid = raw.len() / 2;
    [&raw[..SAMPLE], &raw[mid..mid + SAMPLE]].iter().all(|s| compress(s, 1).is_none_or(|c| c.len() >= SAMPLE - SAMPLE / 32))
}

pub struct PackWriter {
    dir: PathBuf,
    current: Option<(String, BufWriter<File>, u64)>,
    /// Packs this writer created, in order, with their final sizes.
    pub finished: Vec<(String, u64)>,
}

impl PackWriter {
    pub fn new(dir: &Path) -> Self {
        PackWriter { dir: dir.to_owned(), current: None, finished: Vec::new() }
    }

    fn open_new(&mut self) -> Result<()> {
        let name = format!("pack-{}.pack", crate::util::random_hex(8));
        let path = self.dir.join(&name);
        let f = crate::privacy::new_file().create_new(true).write(true).open(&path).at(&path)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(MAGIC).at(&path)?;
        self.current = Some((name, w, MAGIC.len() as u64));
        Ok(())
    }

    pub fn append(&mut self, rec: &Prepared) -> Result<Location> {
        if self.current.as_ref().is_none_or(|c| c.2 >= ROLL_AT) {
            self.seal_current()?;
            self.open_new()?;
        }
        let Some((name, w, off)) = self.current.as_mut() else {
            return Err(Error::Invalid("pack writer has no open pack".into()));
        };
        let mut h = [0u8; RECORD_HEADER];
        h[0] = rec.kind as u8;
        h[1] = if rec.compressed { FLAG_ZSTD } else { 0 };
        h[4..8].copy_from_slice(&rec.raw_len.to_le_bytes());
        h[8..12].copy_from_slice(&(rec.bytes.len() as u32).to_le_bytes());
        h[12..44].copy_from_slice(rec.id.as_bytes());
        let path = self.dir.join(&*name);
        w.write_all(&h).at(&path)?;
        w.write_all(&rec.bytes).at(&path)?;
        let loc = Location {
            pack: name.clone(),
            offset: *off,
            stored_len: rec.bytes.len() as u32,
            raw_len: rec.raw_len,
            kind: rec.kind,
            compressed: rec.compressed,
        };
        *off += (RECORD_HEADER + rec.bytes.len()) as u64;
        Ok(loc)
    }

    fn seal_current(&mut self) -> Result<()> {
        if let Some((name, w, size)) = self.current.take() {
            let path = self.dir.join(&name);
            let r = w.into_inner().map_err(|e| Error::io(&path, e.into_error())).and_then(|f| f.sync_all().at(&path));
            if r.is_err() {
                // Nothing indexes it yet: give the space back now, not at the next writer.
                let _ = std::fs::remove_file(&path);
            }
            r?;
            self.finished.push((name, size));
        }
        Ok(())
    }

    /// Flushes and fsyncs every pack (and the directory), so that the index
    /// transaction that follows never points at bytes that are not durable.
    pub fn finish(&mut self) -> Result<Vec<(String, u64)>> {
        self.seal_current()?;
        if !self.finished.is_empty() {
            crate::util::fsync_dir(&self.dir)?;
        }
        Ok(std::mem::take(&mut self.finished))
    }

    /// Removes the packs written so far (on error, before anything indexed them).
    pub fn abandon(&mut self) {
        if let Some((name, _, _)) = self.current.take() {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        for (name, _) in self.finished.drain(..) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
    }
}

/// Reads one record at `loc` from an open pack, checks the header against the
/// index, decompresses, and verifies the content hash against `id`.
pub fn read_record(file: &File, path: &Path, id: &ObjectId, loc: &Location) -> Result<Vec<u8>> {
    let mut h = [0u8; RECORD_HEADER];
    let corrupt = |why: String| Error::CorruptObject { id: *id, why: format!("{why} (in {})", path.display()) };
    file.read_exact_at(&mut h, loc.offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt("record header lies past the end of the pack (pack truncated)".into())
        } else {
            Error::io(path, e)
        }
    })?;
    let raw_len = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
    let stored_len = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    let flags_ok = h[1] & !FLAG_ZSTD == 0 && (h[1] & FLAG_ZSTD != 0) == loc.compressed && h[2] == 0 && h[3] == 0;
    if &h[12..44] != id.as_bytes() || h[0] != loc.kind as u8 || raw_len != loc.raw_len || stored_len != loc.stored_len || !flags_ok {
        return Err(corrupt("record header does not match the index".into()));
    }
    let mut stored = vec![0u8; stored_len as usize];
    file.read_exact_at(&mut stored, loc.offset + RECORD_HEADER as u64).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt("record lies past the end of the pack (pack truncated)".into())
        } else {
            Error::io(path, e)
        }
    })?;
    let raw = if h[1] & FLAG_ZSTD != 0 {
        let out = decompress(&stored, raw_len as usize).map_err(|e| corrupt(format!("zstd: {e}")))?;
        if out.len() != raw_len as usize {
            return Err(corrupt("decompressed length differs".into()));
        }
        out
    } else {
        stored
    };
    if ObjectId::hash(&raw) != *id {
        return Err(corrupt("content does not match its id".into()));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompressible_data_is_stored_raw_and_text_compressed() {
        let mut x: u64 = 7;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let p = prepare(ObjectId::hash(&random), Kind::Data, &random, 3);
        assert!(!p.compressed && p.bytes.len() == random.len());
        let text = "lake log line\n".repeat(5000).into_bytes();
        let p = prepare(ObjectId::hash(&text), Kind::Data, &text, 3);
        assert!(p.compressed && p.bytes.len() < text.len() / 10);
        // Random head, text tail: the middle sample sees text, so it is compressed.
        let mut mixed = random[..20000].to_vec();
        mixed.extend_from_slice(&text[..45536]);
        assert!(prepare(ObjectId::hash(&mixed), Kind::Data, &mixed, 3).compressed);
    }
}
