//! Sparse files: where a file's data is (SEEK_DATA/SEEK_HOLE), so imports read
//! only the data and copies leave the holes unallocated.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// Holes shorter than this are treated as data: cutting the chunker at every
/// small hole would cost deduplication for almost no saving.
pub const MIN_HOLE: u64 = 64 << 10;

/// The data extents `(offset, length)` of the first `size` bytes of `f`, in
/// order, with holes shorter than [`MIN_HOLE`] folded into data. A file without
/// holes, or on a file system that does not report them, is one extent `(0, size)`.
/// Leaves the file offset at 0 (the seeks move it).
pub fn data_extents(f: &File, size: u64) -> Vec<(u64, u64)> {
    let r = extents_from(f, size);
    let _ = lseek(f.as_fd(), 0, Whence::SeekSet);
    r
}

fn extents_from(f: &File, size: u64) -> Vec<(u64, u64)> {
    let whole = vec![(0, size)];
    let fd = f.as_fd();
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let Ok(at) = i64::try_from(pos) else {
            return whole;
        };
        let data = match lseek(fd, at, Whence::SeekData) {
            Ok(o) => o as u64,
            // No data at or after `pos`: the rest is a hole.
            Err(Errno::ENXIO) => size,
            Err(_) => return whole,
        };
        if data >= size {
            break;
        }
        let end = match lseek(fd, data as i64, Whence::SeekHole) {
            Ok(o) => (o as u64).min(size),
            Err(_) => size,
        };
        if end <= data {
            // The file changed under us; read it all.
            return whole;
        }
        match out.last_mut() {
            Some(last) if data - (last.0 + last.1) < MIN_HOLE => last.1 = end - last.0,
            _ => out.push((data, end - data)),
        }
        pos = end;
    }
    let Some(first) = out.first_mut() else {
        // All hole (or empty).
        return if size < MIN_HOLE { whole } else { out };
    };
    if first.0 < MIN_HOLE {
        first.1 += first.0;
        first.0 = 0;
    }
    if let Some(last) = out.last_mut() {
        if size - (last.0 + last.1) < MIN_HOLE {
            last.1 = size - last.0;
        }
    }
    out
}

/// Whether `extents` (from [`data_extents`]) leave any hole in `size` bytes.
pub fn has_holes(extents: &[(u64, u64)], size: u64) -> bool {
    extents != [(0, size)] && size > 0
}

/// Copies `src` (of `size` bytes) to `dst` (empty), leaving `src`'s holes
/// unallocated in `dst`; feeds every byte of the content, zeros of holes included,
/// to `seen` (for hashing). Returns the number of bytes copied.
pub fn copy(src: &mut File, size: u64, dst: &mut File, mut seen: impl FnMut(&[u8])) -> std::io::Result<u64> {
    let extents = data_extents(src, size);
    let zeros = vec![0u8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    for (off, len) in extents {
        let mut hole = off - pos;
        while hole > 0 {
            let k = hole.min(zeros.len() as u64) as usize;
            seen(&zeros[..k]);
            hole -= k as u64;
        }
        src.seek(SeekFrom::Start(off))?;
        dst.seek(SeekFrom::Start(off))?;
        let mut left = len;
        pos = off;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let k = src.read(&mut buf[..want])?;
            if k == 0 {
                // Shrank while we read: what we have is the content.
                dst.set_len(pos)?;
                return Ok(pos);
            }
            seen(&buf[..k]);
            dst.write_all(&buf[..k])?;
            left -= k as u64;
            pos += k as u64;
        }
    }
    let mut hole = size - pos;
    while hole > 0 {
        let k = hole.min(zeros.len() as u64) as usize;
        seen(&zeros[..k]);
        hole -= k as u64;
    }
    dst.set_len(size)?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, MetadataExt};

    #[test]
    fn finds_data_between_holes_and_copies_sparsely() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("sparse");
        let f = File::create(&p).expect("create");
        let size = 64u64 << 20;
        f.set_len(size).expect("set_len");
        f.write_all_at(b"head", 0).expect("write");
        f.write_all_at(&[7u8; 8192], 32 << 20).expect("write");
        f.sync_all().expect("sync");
        let ext = data_extents(&f, size);
        if ext == [(0, size)] {
            eprintln!("skipped: this file system does not report holes");
            return;
        }
        assert!(has_holes(&ext, size));
        assert_eq!(ext.len(), 2, "{ext:?}");
        assert_eq!(ext[0].0, 0);
        assert!(ext[1].0 <= 32 << 20 && ext[1].0 + ext[1].1 >= (32 << 20) + 8192, "{ext:?}");
        let mut src = File::open(&p).expect("open");
        let q = dir.path().join("copy");
        let mut dst = File::create(&q).expect("create");
        let mut h = blake3::Hasher::new();
        assert_eq!(
            copy(&mut src, size, &mut dst, |b| {
                h.update(b);
            })
            .expect("copy"),
            size
        );
        let want = blake3::hash(&std::fs::read(&p).expect("read"));
        assert_eq!(h.finalize(), want, "hash covers holes as zeros");
        assert_eq!(blake3::hash(&std::fs::read(&q).expect("read")), want, "same bytes");
        let md = std::fs::metadata(&q).expect("stat");
        assert_eq!(md.len(), size);
        assert!(md.blocks() * 512 < 1 << 20, "copy stays sparse: {} blocks", md.blocks());
    }

    #[test]
    fn dense_file_is_one_extent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("dense");
        std::fs::write(&p, vec![1u8; 300_000]).expect("write");
        let f = File::open(&p).expect("open");
        assert_eq!(data_extents(&f, 300_000), vec![(0, 300_000)]);
        assert!(!has_holes(&data_extents(&f, 300_000), 300_000));
    }
}
