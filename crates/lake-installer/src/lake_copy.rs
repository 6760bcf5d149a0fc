//! Installing a lake image (`install --lake-image`, the install medium's
//! /lake/lake.img): copy it into the lake partition, check it, grow it to the
//! partition with resize2fs and check it again. e2fsprogs reach the file
//! system inside the disk through `DEVICE?offset=N`, so neither image files
//! nor block devices need a loop device or a partition node.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use lakefs::progress::Progress;

use crate::error::{Error, IoContext, Result};
use crate::install::LakeReport;
use crate::plan::LakeImageSource;

const CHUNK: usize = 4 << 20;

/// Copies `src` to `offset` of `file` (the target `target`). With
/// `target_is_zero` (a fresh or emptied image file) all-zero chunks are
/// skipped, keeping the image sparse; a block device gets every byte, since an
/// ext4 image's zeros (inode tables, bitmaps) must overwrite whatever was there.
pub fn copy(src: &Path, file: &File, target: &Path, offset: u64, target_is_zero: bool, progress: &dyn Progress) -> Result<u64> {
    let input = File::open(src).at(src)?;
    let len = input.metadata().at(src)?.len();
    progress.phase("lake image", 0, len);
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let mut written = 0u64;
    while pos < len {
        let n = CHUNK.min((len - pos) as usize);
        input.read_exact_at(&mut buf[..n], pos).at(src)?;
        if !(target_is_zero && buf[..n].iter().all(|b| *b == 0)) {
            file.write_all_at(&buf[..n], offset + pos).at(target)?;
            written += n as u64;
        }
        pos += n as u64;
        progress.advance(1, n as u64);
    }
    progress.finish();
    Ok(written)
}

/// Runs an e2fsprogs tool on `dev`; its exit code and output.
fn e2fs(program: &str, args: &[&str], dev: &str) -> Result<(i32, String)> {
    let o = Command::new(program).args(args).arg(dev).output().map_err(|e| Error::Spawn {
        program: program.into(),
        package: "e2fsprogs",
        error: e,
    })?;
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)).trim().to_owned();
    Ok((o.status.code().unwrap_or(-1), text))
}

/// e2fsck -f -p (0: clean, 1: corrected), resize2fs to `size` bytes, then
/// e2fsck -f -n (0: clean): the ext4 at `offset` of `target`.
pub fn grow(target: &Path, offset: u64, size: u64) -> Result<()> {
    let dev = format!("{}?offset={offset}", target.display());
    let fail = |what: &str, code: i32, text: String| Error::Command {
        what: format!("{what} ({dev})"),
        status: format!("exit status {code}"),
        stderr: text,
    };
    let (code, text) = e2fs("e2fsck", &["-f", "-p"], &dev)?;
    if !(0..=1).contains(&code) {
        return Err(fail("checking the copied lake image (e2fsck -f -p)", code, text));
    }
    let o = Command::new("resize2fs").arg(&dev).arg(format!("{}K", size / 1024)).output().map_err(|e| Error::Spawn {
        program: "resize2fs".into(),
        package: "e2fsprogs",
        error: e,
    })?;
    if !o.status.success() {
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        return Err(fail(&format!("growing the lake to {size} bytes (resize2fs)"), o.status.code().unwrap_or(-1), text.trim().to_owned()));
    }
    let (code, text) = e2fs("e2fsck", &["-f", "-n"], &dev)?;
    if code != 0 {
        return Err(fail("checking the grown lake (e2fsck -f -n)", code, text));
    }
    Ok(())
}

/// The report of an installed image: from its manifest, else what the ext4 says.
pub fn report(img: &LakeImageSource, target: &Path, offset: u64) -> LakeReport {
    let uuid = img.manifest.as_ref().map(|m| m.lake_uuid.clone()).unwrap_or_else(|| fs_uuid(target, offset).unwrap_or_default());
    let m = img.manifest.as_ref();
    LakeReport {
        uuid,
        commit: m.map_or_else(String::new, |m| m.commit.clone()),
        generation: m.map_or(1, |m| m.generation),
        reference: lake_posix::generation::POSIX_REF,
        files: m.map_or(0, |m| m.files),
        dirs: m.map_or(0, |m| m.dirs),
        others: m.map_or(0, |m| m.others),
        bytes: m.map_or(0, |m| m.bytes),
        staged_bytes: img.bytes,
        hardlink_check: None,
        mtimes_restored: 0,
    }
}

fn fs_uuid(target: &Path, offset: u64) -> Option<String> {
    let o = Command::new("dumpe2fs").arg("-h").arg(format!("{}?offset={offset}", target.display())).output().ok()?;
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| l.strip_prefix("Filesystem UUID:").map(|v| v.trim().to_owned()))
}
