//! The lake superblock: a 128-byte file `superblock` at the lake root that marks a
//! directory as a lake and fixes its format. Layout in docs/format.md.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

pub const FILE_NAME: &str = "superblock";
pub const MAGIC: [u8; 8] = *b"LAKEFSSB";
pub const FORMAT_VERSION: u32 = 1;
const SIZE: usize = 128;
const SUMMED: usize = 96;

/// Incompatible feature: objects live in zstd-compressed pack files (always set in v1).
pub const INCOMPAT_ZSTD_PACKS: u64 = 1 << 0;
/// Incompatible feature: chunk lists may hold holes (`LKCHNK02`). Set by the first
/// import of a sparse file, so older builds refuse the lake instead of failing on
/// an object they cannot decode.
pub const INCOMPAT_SPARSE: u64 = 1 << 1;
/// Incompatible features this build understands; any other bit makes `open` refuse.
pub const INCOMPAT_KNOWN: u64 = INCOMPAT_ZSTD_PACKS | INCOMPAT_SPARSE;
/// Compatible feature: the lake's own files have been made private (mode 0700
/// directory, 0600 files; see `privacy`). Set at creation, or by the first writer
/// that tightened an older lake; without it a writer tightens the lake once.
pub const COMPAT_PRIVATE: u64 = 1 << 0;
/// Read-only-compatible features this build understands (none yet).
pub const RO_COMPAT_KNOWN: u64 = 0;

pub const HASH_BLAKE3: u8 = 1;
pub const CHUNKER_FASTCDC_V2020: u8 = 1;

/// Content-defined chunking parameters, fixed per lake so that the same file always
/// chunks the same way (and dedups across imports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Superblock {
    pub version: u32,
    pub compat: u64,
    pub ro_compat: u64,
    pub incompat: u64,
    pub uuid: [u8; 16],
    pub hash: u8,
    pub chunker_kind: u8,
    pub chunker: ChunkerParams,
    pub created: i64,
}

impl Superblock {
    pub fn new(uuid: [u8; 16], chunker: ChunkerParams, created: i64) -> Self {
        Superblock {
            version: FORMAT_VERSION,
            compat: 0,
            ro_compat: 0,
            incompat: INCOMPAT_ZSTD_PACKS,
            uuid,
            hash: HASH_BLAKE3,
            chunker_kind: CHUNKER_FASTCDC_V2020,
            chunker,
            created,
        }
    }

    pub fn uuid_string(&self) -> String {
        let h: String = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }

    pub fn encode(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.compat.to_le_bytes());
        b[24..32].copy_from_slice(&self.ro_compat.to_le_bytes());
        b[32..40].copy_from_slice(&self.incompat.to_le_bytes());
        b[40..56].copy_from_slice(&self.uuid);
        b[56] = self.hash;
        b[57] = self.chunker_kind;
        b[60..64].copy_from_slice(&self.chunker.min.to_le_bytes());
        b[64..68].copy_from_slice(&self.chunker.avg.to_le_bytes());
        b[68..72].copy_from_slice(&self.chunker.max.to_le_bytes());
        b[72..80].copy_from_slice(&self.created.to_le_bytes());
        let sum = blake3::hash(&b[..SUMMED]);
        b[SUMMED..].copy_from_slice(sum.as_bytes());
        b
    }

    /// Decodes and checks a superblock; `path` only names the file in errors.
    pub fn decode(b: &[u8], path: &Path) -> Result<Self> {
        let bad = |why: &str| Error::BadSuperblock { path: path.to_owned(), why: why.to_owned() };
        if b.len() < 16 || b[0..8] != MAGIC {
            return Err(bad("wrong magic (not a lakefs superblock)"));
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or_default());
        let version = u32_at(8);
        if version > FORMAT_VERSION || version == 0 {
            return Err(Error::UnsupportedVersion { path: path.to_owned(), found: version, supported: FORMAT_VERSION });
        }
        if b.len() != SIZE || u32_at(12) as usize != SIZE {
            return Err(bad(&format!("size {} (expected {SIZE}); the file is truncated or damaged", b.len())));
        }
        if blake3::hash(&b[..SUMMED]).as_bytes() != &b[SUMMED..] {
            return Err(bad("checksum mismatch: the superblock is damaged"));
        }
        let incompat = u64_at(32);
        if incompat & !INCOMPAT_KNOWN != 0 {
            return Err(Error::UnknownIncompat { path: path.to_owned(), flags: incompat & !INCOMPAT_KNOWN });
        }
        let ro_compat = u64_at(24);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[40..56]);
        let sb = Superblock {
            version,
            compat: u64_at(16),
            ro_compat,
            incompat,
            uuid,
            hash: b[56],
            chunker_kind: b[57],
            chunker: ChunkerParams { min: u32_at(60), avg: u32_at(64), max: u32_at(68) },
            created: u64_at(72) as i64,
        };
        if sb.hash != HASH_BLAKE3 {
            return Err(bad(&format!("unknown hash algorithm {}", sb.hash)));
        }
        if sb.chunker_kind != CHUNKER_FASTCDC_V2020 {
            return Err(bad(&format!("unknown chunker {}", sb.chunker_kind)));
        }
        let c = sb.chunker;
        if !(64..=1 << 20).contains(&c.min) || c.min > c.avg || c.avg > c.max || c.max > 16 << 20 {
            return Err(bad(&format!("chunker parameters {}/{}/{} out of range", c.min, c.avg, c.max)));
        }
        Ok(sb)
    }

    pub fn read(lake_root: &Path) -> Result<Self> {
        let path = lake_root.join(FILE_NAME);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotALake { path: lake_root.to_owned(), superblock: FILE_NAME })
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut buf = Vec::with_capacity(SIZE);
        f.by_ref().take(4096).read_to_end(&mut buf).at(&path)?;
        Self::decode(&buf, &path)
    }

    /// Whether this build may write to the lake (unknown ro-compat features forbid it).
    pub fn writable(&self, path: &Path) -> Result<()> {
        let unknown = self.ro_compat & !RO_COMPAT_KNOWN;
        if unknown != 0 {
            return Err(Error::UnknownRoCompat { path: path.to_owned(), flags: unknown });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Superblock {
        Superblock::new([7; 16], ChunkerParams::default(), 1_700_000_000)
    }

    #[test]
    fn golden_encoding() {
        let b = sample().encode();
        // Golden vector: changing the layout must be a deliberate format-version bump.
        assert_eq!(&b[0..8], b"LAKEFSSB");
        assert_eq!(blake3::hash(&b).to_hex().as_str(), "84e7f8bba2bb7b8561be9d289ce3ee3492c648c325d529c33ef3b8f317ff93b6");
        assert_eq!(Superblock::decode(&b, Path::new("sb")).unwrap(), sample());
    }

    #[test]
    fn refuses_unknown_incompat_and_newer_versions() {
        let mut s = sample();
        s.incompat |= 1 << 40;
        let e = Superblock::decode(&s.encode(), Path::new("sb")).unwrap_err();
        assert!(matches!(e, Error::UnknownIncompat { flags, .. } if flags == 1 << 40), "{e}");
        let mut s = sample();
        s.version = 2;
        let e = Superblock::decode(&s.encode(), Path::new("sb")).unwrap_err();
        assert!(matches!(e, Error::UnsupportedVersion { found: 2, .. }), "{e}");
    }

    #[test]
    fn detects_damage() {
        let mut b = sample().encode();
        b[61] ^= 1;
        assert!(matches!(Superblock::decode(&b, Path::new("sb")), Err(Error::BadSuperblock { .. })));
        assert!(matches!(Superblock::decode(&b[..100], Path::new("sb")), Err(Error::BadSuperblock { .. })));
    }
}
