//! Byte-level helpers of the canonical object encodings: LEB128 varints,
//! zigzag-signed varints, length-prefixed byte strings. See docs/format.md.

use crate::error::{Error, Result};
use crate::id::ObjectId;

#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn with_magic(magic: &[u8; 8]) -> Self {
        Writer { buf: magic.to_vec() }
    }
    pub fn uvar(&mut self, mut v: u64) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }
    pub fn svar(&mut self, v: i64) {
        self.uvar(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvar(b.len() as u64);
        self.buf.extend_from_slice(b);
    }
    pub fn id(&mut self, id: &ObjectId) {
        self.buf.extend_from_slice(id.as_bytes());
    }
}

pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Starts reading after checking the 8-byte magic that carries kind and version.
    pub fn with_magic(buf: &'a [u8], magic: &[u8; 8], what: &'static str) -> Result<Self> {
        if buf.len() < 8 || &buf[..8] != magic {
            return Err(Error::Decode { what, why: "wrong magic or unsupported encoding version".into() });
        }
        Ok(Reader { buf, pos: 8, what })
    }
    pub fn err(&self, why: &str) -> Error {
        Error::Decode { what: self.what, why: format!("{why} at byte {}", self.pos) }
    }
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("truncated"))?;
        self.pos += 1;
        Ok(b)
    }
    pub fn uvar(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                // Canonical: no redundant trailing zero groups.
                if b == 0 && shift > 0 {
                    return Err(self.err("non-canonical varint"));
                }
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    pub fn svar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uvar()? as usize;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| self.err("truncated string"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn string(&mut self) -> Result<String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }
    pub fn id(&mut self) -> Result<ObjectId> {
        let end = self.pos + ObjectId::LEN;
        let s = self.buf.get(self.pos..end).ok_or_else(|| self.err("truncated id"))?;
        self.pos = end;
        ObjectId::from_slice(s).ok_or_else(|| self.err("bad id"))
    }
    pub fn finish(self) -> Result<()> {
        if self.at_end() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_and_are_canonical() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut w = Writer::with_magic(b"TESTTEST");
            w.uvar(v);
            let mut r = Reader::with_magic(&w.buf, b"TESTTEST", "t").unwrap();
            assert_eq!(r.uvar().unwrap(), v);
            assert!(r.at_end());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -1_000_000_000] {
            let mut w = Writer::with_magic(b"TESTTEST");
            w.svar(v);
            let mut r = Reader::with_magic(&w.buf, b"TESTTEST", "t").unwrap();
            assert_eq!(r.svar().unwrap(), v);
        }
        let mut r = Reader::with_magic(b"TESTTEST\x80\x00", b"TESTTEST", "t").unwrap();
        assert!(r.uvar().is_err(), "0x80 0x00 is a non-canonical zero");
    }
}
