//! Small file-system helpers shared by the store.

use std::path::Path;

use crate::error::{IoContext, Result};

/// `n` random bytes as hex, from the kernel's CSPRNG (names of packs, temp files, UUIDs).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    crate::sys::fill_random(&mut b);
    b
}

pub fn random_hex(n: usize) -> String {
    let b: [u8; 32] = random_bytes();
    b[..n.min(32)].iter().map(|x| format!("{x:02x}")).collect()
}

pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).at(dir)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync directory.
/// For the lake's own files: the file is private (0600, see `privacy`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}", random_hex(6)));
    let r = (|| {
        let mut f = crate::privacy::new_file().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.at(path)?;
    fsync_dir(dir)
}

pub fn now() -> (i64, u32) {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos())
}
