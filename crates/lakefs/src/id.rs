//! Object ids: BLAKE3 digests, printed `b3:<hex>`.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A 32-byte BLAKE3 digest naming an object.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId(pub [u8; 32]);

impl From<blake3::Hash> for ObjectId {
    fn from(h: blake3::Hash) -> Self {
        ObjectId(*h.as_bytes())
    }
}

impl ObjectId {
    pub const LEN: usize = 32;

    /// BLAKE3 of `bytes`: the id of a chunk, a whole blob, or an encoded tree/commit.
    pub fn hash(bytes: &[u8]) -> Self {
        ObjectId(*blake3::hash(bytes).as_bytes())
    }

    pub fn from_slice(b: &[u8]) -> Option<Self> {
        b.try_into().ok().map(ObjectId)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Short form for humans: `b3:` and the first 12 hex digits.
    pub fn short(&self) -> String {
        format!("b3:{}", &self.to_hex()[..12])
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b3:{}", self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.short())
    }
}

/// Parses hex digits (any count up to 64) into bytes; odd trailing nibble ignored by callers.
pub fn parse_hex_prefix(s: &str) -> Option<Vec<u8>> {
    if s.len() > 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        let hi = (b[i] as char).to_digit(16)?;
        let lo = (b[i + 1] as char).to_digit(16)?;
        out.push((hi * 16 + lo) as u8);
        i += 2;
    }
    Some(out)
}

impl FromStr for ObjectId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let hex = s.strip_prefix("b3:").unwrap_or(s);
        if hex.len() != 64 {
            return Err(Error::Invalid(format!("'{s}' is not a full object id (b3: and 64 hex digits)")));
        }
        let bytes = parse_hex_prefix(hex).ok_or_else(|| Error::Invalid(format!("'{s}' is not hex")))?;
        Ok(ObjectId::from_slice(&bytes).expect("64 hex digits are 32 bytes"))
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}
