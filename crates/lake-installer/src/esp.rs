//! FAT32 partitions (the ESP, and the optional XBOOTLDR /boot) written with
//! `fatfs` straight into the image or device at the partition's offset: no loop
//! device, no mount.
//!
//! fatfs 0.3.6 (the newest release) writes a long-name entry before the `.` and
//! `..` entries of every new directory, and points `..` of the root's children
//! at the root cluster instead of 0 (rust-fatfs issue #117, PR #100; fixed on its
//! master only). `fsck.fat` rejects both and strict firmware may too, so
//! [`FatVolume::close`] repairs them with [`repair_dot_entries`].

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// A byte range of a file (a partition of a disk image or device) as a
/// Read + Write + Seek stream; nothing outside the range can be read or written.
#[derive(Debug)]
pub struct PartitionSlice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> PartitionSlice<'a> {
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        PartitionSlice { file, start, len, pos: 0 }
    }

    fn room(&self, want: usize) -> usize {
        usize::try_from(self.len.saturating_sub(self.pos)).map_or(want, |r| r.min(want))
    }
}

impl Read for PartitionSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.room(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Write for PartitionSlice<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.room(buf.len());
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write past the end of the partition"));
        }
        let put = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += put as u64;
        Ok(put)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for PartitionSlice<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "seek outside the partition")),
        }
    }
}

/// The 11-byte, space-padded, upper-case FAT volume label.
pub fn fat_label(label: &str) -> [u8; 11] {
    let mut out = [b' '; 11];
    for (o, c) in out.iter_mut().zip(label.bytes().filter(u8::is_ascii_graphic)) {
        *o = c.to_ascii_uppercase();
    }
    out
}

/// Volume id and file dates of a new FAT volume (default: random id, the clock).
#[derive(Clone, Copy, Debug, Default)]
pub struct FatOptions {
    pub volume_id: Option<u32>,
    pub time: Option<&'static FixedTime>,
}

/// A fixed date for every file and directory written (SOURCE_DATE_EPOCH).
#[derive(Debug)]
pub struct FixedTime(fatfs::DateTime);

impl FixedTime {
    /// The UTC date and time of `epoch` seconds, clamped to FAT's 1980..2107;
    /// leaked: fatfs wants a `'static` time provider, and a build makes one.
    pub fn leak(epoch: i64) -> &'static FixedTime {
        let (y, mo, d, h, mi, s) = civil(epoch);
        let (y, mo, d, h, mi, s) = if y < 1980 {
            (1980, 1, 1, 0, 0, 0)
        } else if y > 2107 {
            (2107, 12, 31, 23, 59, 58)
        } else {
            (y, mo, d, h, mi, s)
        };
        let dt = fatfs::DateTime {
            date: fatfs::Date { year: y as u16, month: mo as u16, day: d as u16 },
            time: fatfs::Time { hour: h as u16, min: mi as u16, sec: s as u16, millis: 0 },
        };
        Box::leak(Box::new(FixedTime(dt)))
    }
}

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// UTC (year, month, day, hour, minute, second) of a Unix time (Howard
/// Hinnant's days-to-civil).
pub fn civil(t: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// An open FAT32 volume inside a partition of `target`.
pub struct FatVolume<'a> {
    fs: fatfs::FileSystem<PartitionSlice<'a>>,
    file: &'a File,
    len: u64,
    target: PathBuf,
    offset: u64,
}

impl<'a> FatVolume<'a> {
    /// Formats `len` bytes at `offset` of `file` as FAT32 labelled `label`, and opens it.
    pub fn format(file: &'a File, target: &Path, offset: u64, len: u64, label: &str) -> Result<Self> {
        Self::format_with(file, target, offset, len, label, FatOptions::default())
    }

    /// [`format`](Self::format) with a given volume id and file dates (reproducible builds).
    pub fn format_with(file: &'a File, target: &Path, offset: u64, len: u64, label: &str, o: FatOptions) -> Result<Self> {
        let ferr = |what: &str| {
            let what = what.to_owned();
            let target = target.to_owned();
            move |source| Error::Fat { what, target, offset, error: source }
        };
        // Zero the first MiB so no old boot sector or FS signature survives a quick format.
        let zeros = vec![0u8; (1 << 20).min(len) as usize];
        file.write_all_at(&zeros, offset).map_err(ferr("clearing the partition start"))?;
        let opts = fatfs::FormatVolumeOptions::new().fat_type(fatfs::FatType::Fat32).volume_label(fat_label(label)).volume_id(
            o.volume_id.unwrap_or_else(|| u32::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..4].try_into().unwrap_or([0; 4]))),
        );
        fatfs::format_volume(PartitionSlice::new(file, offset, len), opts).map_err(ferr("formatting FAT32"))?;
        Self::open_with(file, target, offset, len, o.time)
    }

    pub fn open(file: &'a File, target: &Path, offset: u64, len: u64) -> Result<Self> {
        Self::open_with(file, target, offset, len, None)
    }

    /// Opens the volume; with `time`, files and directories written get that date.
    pub fn open_with(file: &'a File, target: &Path, offset: u64, len: u64, time: Option<&'static FixedTime>) -> Result<Self> {
        let mut fo = fatfs::FsOptions::new();
        if let Some(t) = time {
            fo = fo.time_provider(t);
        }
        let fs = fatfs::FileSystem::new(PartitionSlice::new(file, offset, len), fo).map_err(|source| Error::Fat {
            what: "opening the FAT file system".into(),
            target: target.to_owned(),
            offset,
            error: source,
        })?;
        Ok(FatVolume { fs, file, len, target: target.to_owned(), offset })
    }

    fn err(&self, what: String) -> impl FnOnce(io::Error) -> Error {
        let (target, offset) = (self.target.clone(), self.offset);
        move |source| Error::Fat { what, target, offset, error: source }
    }

    pub fn fat_type(&self) -> fatfs::FatType {
        self.fs.fat_type()
    }

    pub fn label(&self) -> String {
        self.fs.volume_label()
    }

    /// Creates `path` (absolute, '/'-separated) and its parents.
    pub fn mkdir_p(&self, path: &str) -> Result<()> {
        let mut dir = self.fs.root_dir();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            dir = dir.create_dir(c).map_err(self.err(format!("creating directory {path}")))?;
        }
        Ok(())
    }

    /// Writes `bytes` to `path`, creating parents; replaces an existing file.
    pub fn write_file(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.write_from(path, &mut io::Cursor::new(bytes))?;
        Ok(())
    }

    /// Copies the host file `src` to `path` on the volume; returns the bytes copied.
    pub fn copy_in(&self, src: &Path, path: &str) -> Result<u64> {
        let mut f = File::open(src).at(src)?;
        self.write_from(path, &mut f).map_err(|e| match e {
            Error::Fat { what, target, offset, error: source } if source.kind() != io::ErrorKind::WriteZero => {
                Error::Fat { what: format!("{what} (from {})", src.display()), target, offset, error: source }
            }
            e => e,
        })
    }

    fn write_from(&self, path: &str, r: &mut dyn Read) -> Result<u64> {
        let (parent, _) = path.rsplit_once('/').unwrap_or(("", path));
        self.mkdir_p(parent)?;
        let root = self.fs.root_dir();
        let rel = path.trim_start_matches('/');
        let mut f = root.create_file(rel).map_err(self.err(format!("creating {path}")))?;
        f.truncate().map_err(self.err(format!("truncating {path}")))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.err(format!("reading the source of {path}"))(e)),
            };
            f.write_all(&buf[..n]).map_err(|e| {
                if e.kind() == io::ErrorKind::WriteZero || e.to_string().contains("No space") {
                    self.err(format!("writing {path}: the FAT partition is full (give a larger --esp-size/--boot-size)"))(e)
                } else {
                    self.err(format!("writing {path}"))(e)
                }
            })?;
            total += n as u64;
        }
        f.flush().map_err(self.err(format!("writing {path}")))?;
        Ok(total)
    }

    /// Reads a whole file from the volume.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>> {
        let mut f = self.fs.root_dir().open_file(path.trim_start_matches('/')).map_err(self.err(format!("opening {path}")))?;
        let mut out = Vec::new();
        f.read_to_end(&mut out).map_err(self.err(format!("reading {path}")))?;
        Ok(out)
    }

    /// Names in the directory `path` (without `.` and `..`).
    pub fn list(&self, path: &str) -> Result<Vec<String>> {
        let rel = path.trim_matches('/');
        let dir = if rel.is_empty() {
            self.fs.root_dir()
        } else {
            self.fs.root_dir().open_dir(rel).map_err(self.err(format!("opening {path}")))?
        };
        let mut out = Vec::new();
        for e in dir.iter() {
            let e = e.map_err(self.err(format!("listing {path}")))?;
            let n = e.file_name();
            if n != "." && n != ".." {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// Free bytes left on the volume.
    pub fn free_bytes(&self) -> Result<u64> {
        let s = self.fs.stats().map_err(self.err("reading the FAT statistics".into()))?;
        Ok(u64::from(s.free_clusters()) * u64::from(s.cluster_size()))
    }

    /// Flushes and closes the volume (marks it clean, records the free-cluster
    /// count), then repairs the `.`/`..` entries fatfs wrote; reports errors.
    pub fn close(self) -> Result<()> {
        let (target, offset) = (self.target.clone(), self.offset);
        let err = |what: &str, source| Error::Fat { what: what.into(), target: target.clone(), offset, error: source };
        // Counts free clusters when the FSInfo sector does not know them (after a
        // format), so unmount writes the count and fsck.fat finds it initialised.
        self.fs.stats().map_err(|e| err("counting free clusters", e))?;
        let file = self.fs_file();
        self.fs.unmount().map_err(|e| err("closing the FAT file system", e))?;
        let (file, len) = file;
        repair_dot_entries(file, offset, len).map_err(|e| err("repairing the . and .. directory entries", e))?;
        Ok(())
    }

    fn fs_file(&self) -> (&'a File, u64) {
        (self.file, self.len)
    }
}

const DIR_ENTRY: usize = 32;
const ATTR_LFN: u8 = 0x0f;
const ATTR_DIR: u8 = 0x10;
const DOT: [u8; 11] = *b".          ";
const DOTDOT: [u8; 11] = *b"..         ";

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn bad(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// Puts the `.` and `..` entries of every directory of the FAT32 volume at
/// `offset` of `file` into the first two slots (dropping the long-name entries
/// fatfs 0.3.6 writes before them) and makes `..` of the root's children point
/// at cluster 0, as the FAT specification and fsck.fat require. Returns the
/// number of directories changed.
pub fn repair_dot_entries(file: &File, offset: u64, len: u64) -> io::Result<u32> {
    let mut bs = [0u8; 512];
    file.read_exact_at(&mut bs, offset)?;
    let bps = le16(&bs, 0x0b) as u64;
    let spc = u64::from(bs[0x0d]);
    let reserved = le16(&bs, 0x0e) as u64;
    let fats = u64::from(bs[0x10]);
    let fat_sectors = le32(&bs, 0x24) as u64;
    let root = le32(&bs, 0x2c);
    if !(512..=4096).contains(&bps) || !bps.is_power_of_two() || spc == 0 || fats == 0 || fat_sectors == 0 || le16(&bs, 0x16) != 0 {
        return Err(bad("not a FAT32 volume"));
    }
    let cluster_bytes = bps * spc;
    let fat_at = offset + reserved * bps;
    let data_at = fat_at + fats * fat_sectors * bps;
    let max_cluster = ((fat_sectors * bps / 4) as u32).min(((offset + len).saturating_sub(data_at) / cluster_bytes) as u32 + 2);
    let cluster_at = |c: u32| data_at + u64::from(c - 2) * cluster_bytes;
    let next = |c: u32| -> io::Result<Option<u32>> {
        let mut e = [0u8; 4];
        file.read_exact_at(&mut e, fat_at + u64::from(c) * 4)?;
        let n = u32::from_le_bytes(e) & 0x0fff_ffff;
        Ok(if (2..max_cluster).contains(&n) { Some(n) } else { None })
    };
    let mut changed = 0;
    let mut seen = HashSet::new();
    // (directory's first cluster, parent's first cluster or None for the root)
    let mut todo: Vec<(u32, Option<u32>)> = vec![(root, None)];
    while let Some((first, parent)) = todo.pop() {
        if !(2..max_cluster).contains(&first) || !seen.insert(first) {
            continue;
        }
        // Children, found by walking the directory's whole cluster chain.
        let mut c = Some(first);
        let mut steps = 0;
        'chain: while let Some(cl) = c {
            let mut buf = vec![0u8; cluster_bytes as usize];
            file.read_exact_at(&mut buf, cluster_at(cl))?;
            for e in buf.chunks_exact(DIR_ENTRY) {
                match e[0] {
                    0 => break 'chain,
                    0xe5 => continue,
                    _ => {}
                }
                if e[11] == ATTR_LFN || e[11] & ATTR_DIR == 0 || e[..11] == DOT || e[..11] == DOTDOT {
                    continue;
                }
                todo.push(((le16(e, 0x14) << 16) | le16(e, 0x1a), Some(first)));
            }
            c = next(cl)?;
            steps += 1;
            if steps > max_cluster {
                return Err(bad("directory cluster chain loops"));
            }
        }
        let Some(parent) = parent else { continue };
        // The first slots of a subdirectory: find its `.` and `..` among the first four.
        let at = cluster_at(first);
        let mut head = [0u8; 4 * DIR_ENTRY];
        file.read_exact_at(&mut head, at)?;
        let slot = |name: &[u8; 11]| {
            (0..4).find(|i| {
                let e = &head[i * DIR_ENTRY..(i + 1) * DIR_ENTRY];
                e[..11] == *name && e[11] != ATTR_LFN && e[11] & ATTR_DIR != 0
            })
        };
        let (Some(d), Some(dd)) = (slot(&DOT), slot(&DOTDOT)) else {
            return Err(bad("a directory without . and .. entries"));
        };
        let mut fixed = head;
        fixed[..DIR_ENTRY].copy_from_slice(&head[d * DIR_ENTRY..(d + 1) * DIR_ENTRY]);
        fixed[DIR_ENTRY..2 * DIR_ENTRY].copy_from_slice(&head[dd * DIR_ENTRY..(dd + 1) * DIR_ENTRY]);
        let last_special = d.max(dd);
        for i in 2..=last_special.max(1) {
            // Slots the long-name entries and the moved entries held: deleted.
            fixed[i * DIR_ENTRY..(i + 1) * DIR_ENTRY].fill(0);
            fixed[i * DIR_ENTRY] = 0xe5;
        }
        // `..` of a child of the root is cluster 0.
        let dotdot_cluster = if parent == root { 0 } else { parent };
        fixed[DIR_ENTRY + 0x14..DIR_ENTRY + 0x16].copy_from_slice(&((dotdot_cluster >> 16) as u16).to_le_bytes());
        fixed[DIR_ENTRY + 0x1a..DIR_ENTRY + 0x1c].copy_from_slice(&(dotdot_cluster as u16).to_le_bytes());
        if fixed != head {
            file.write_all_at(&fixed, at)?;
            changed += 1;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        let t = FixedTime::leak(0);
        assert_eq!(fatfs::TimeProvider::get_current_date(t).year, 1980);
    }

    #[test]
    fn slice_stays_inside_its_range() {
        let f = tempfile::tempfile().expect("tempfile");
        f.set_len(300).expect("set_len");
        let mut s = PartitionSlice::new(&f, 100, 100);
        assert_eq!(s.seek(SeekFrom::End(0)).expect("seek"), 100);
        assert!(s.write(b"x").is_err(), "no write past the end");
        assert!(s.seek(SeekFrom::Start(101)).is_err());
        s.seek(SeekFrom::Start(98)).expect("seek");
        assert_eq!(s.write(b"abcd").expect("write"), 2);
        let mut all = vec![0u8; 300];
        f.read_exact_at(&mut all, 0).expect("read");
        assert_eq!(&all[198..200], b"ab");
        assert!(all[200..].iter().all(|b| *b == 0));
    }

    #[test]
    fn formats_fat32_and_round_trips_files() {
        let f = tempfile::tempfile().expect("tempfile");
        let (off, len) = (1 << 20, 64 << 20);
        f.set_len(off + len + (1 << 20)).expect("set_len");
        f.write_all_at(&[0xAB; 16], off + len).expect("sentinel");
        let v = FatVolume::format(&f, Path::new("<temp>"), off, len, "ESP").expect("format");
        assert_eq!(v.fat_type(), fatfs::FatType::Fat32);
        v.write_file("/loader/entries/lake-1.conf", b"title Lake OS\n").expect("write");
        v.write_file("/lake/0123456789abcdef/vmlinuz", &vec![7u8; 3 << 20]).expect("write big");
        v.close().expect("close");
        let v = FatVolume::open(&f, Path::new("<temp>"), off, len).expect("open");
        assert_eq!(v.label().trim(), "ESP");
        assert_eq!(v.read_file("/loader/entries/lake-1.conf").expect("read"), b"title Lake OS\n");
        assert_eq!(v.read_file("/lake/0123456789abcdef/vmlinuz").expect("read").len(), 3 << 20);
        assert_eq!(v.list("/loader/entries").expect("list"), vec!["lake-1.conf".to_string()]);
        let mut tail = [0u8; 16];
        f.read_exact_at(&mut tail, off + len).expect("read");
        assert_eq!(tail, [0xAB; 16], "nothing written past the partition");
    }
}
