//! Byte sizes for people: parsing (`512M`, `8G`) and printing (`512 MiB`).

use crate::error::{Error, Result};

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Parses `512M`, `8G`, `1048576`, `4KiB` (binary units, as mkfs.lakefs does).
pub fn parse_size(s: &str) -> Result<u64> {
    lakefs::substrate::parse_size(s).map_err(|e| Error::Invalid(e.to_string()))
}

/// `536870912` -> `512 MiB`, `8589934592` -> `8 GiB`, `1610612736` -> `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)];
    for (name, size) in UNITS {
        if bytes >= size {
            #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; the workspace says 1.85
            return if bytes % size == 0 {
                format!("{} {name}", bytes / size)
            } else {
                format!("{:.1} {name}", bytes as f64 / size as f64)
            };
        }
    }
    format!("{bytes} B")
}

pub fn align_up(v: u64, align: u64) -> u64 {
    v.div_ceil(align) * align
}

pub fn align_down(v: u64, align: u64) -> u64 {
    v / align * align
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_and_parses() {
        assert_eq!(human(512 * MIB), "512 MiB");
        assert_eq!(human(8 * GIB), "8 GiB");
        assert_eq!(human(3 * GIB / 2), "1.5 GiB");
        assert_eq!(human(100), "100 B");
        assert_eq!(parse_size("512M").ok(), Some(512 * MIB));
        assert!(parse_size("12X").is_err());
        assert_eq!(align_up(1, MIB), MIB);
        assert_eq!(align_down(MIB + 5, MIB), MIB);
    }
}
