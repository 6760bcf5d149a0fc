//! The ext4 substrate under a lake: formatting a device or an image region and
//! mounting it. This is the narrow interface that a raw-block backend could
//! replace later; everything else sees only a lake directory.
//!
//! Formatting uses `mke2fs -d`, which fills the new file system from a staged
//! directory without mounting it, so image files need no loop device.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};

pub const LABEL: &str = "lake";
/// GPT partition type GUID of a lake partition (Lake OS's own; the early-boot
/// program and the installer find the lake by it, or by the label `lake`).
pub const PARTITION_TYPE_GUID: &str = "f1f21de9-2996-4512-bf8a-b087ed8680fb";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    BlockDevice,
    ImageFile,
    /// Does not exist yet: an image file will be created.
    New,
}

pub fn target_kind(target: &Path) -> Result<TargetKind> {
    match std::fs::metadata(target) {
        Ok(md) if md.file_type().is_block_device() => Ok(TargetKind::BlockDevice),
        Ok(md) if md.is_file() => Ok(TargetKind::ImageFile),
        Ok(_) => Err(Error::Invalid(format!("{} is neither a block device nor an image file", target.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TargetKind::New),
        Err(e) => Err(Error::io(target, e)),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out = cmd
        .output()
        .map_err(|e| Error::Invalid(format!("cannot run {what} ({:?}): {e}; install e2fsprogs/util-linux", cmd.get_program())))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!("{what} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What `blkid` finds at `offset` of `target` (file system type and label), if anything.
pub fn probe(target: &Path, offset: u64) -> Option<String> {
    let out = Command::new("blkid").arg("-p").arg("-O").arg(offset.to_string()).arg("-o").arg("export").arg(target).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |k: &str| text.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_owned));
    get("TYPE").or_else(|| get("PTTYPE").map(|t| format!("{t} partition table"))).map(|t| match get("LABEL") {
        Some(l) => format!("{t} (label {l})"),
        None => t,
    })
}

/// Mount points of `dev` or of partitions on it, from /proc/self/mountinfo.
pub fn mounted_at(dev: &Path) -> Vec<String> {
    let Ok(canon) = std::fs::canonicalize(dev) else { return vec![] };
    let Ok(md) = std::fs::metadata(&canon) else { return vec![] };
    use std::os::unix::fs::MetadataExt;
    let rdev = md.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let name = canon.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = Vec::new();
    if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
        for line in info.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                continue;
            }
            let src = line.split(" - ").nth(1).and_then(|r| r.split_whitespace().nth(1)).unwrap_or("");
            let same_dev = f[2] == format!("{major}:{minor}");
            let partition = src.strip_prefix("/dev/").is_some_and(|s| s != name && s.starts_with(&name));
            if same_dev || src == canon.to_string_lossy() || partition {
                out.push(f[4].to_owned());
            }
        }
    }
    out
}

pub struct Format<'a> {
    pub target: &'a Path,
    pub offset: u64,
    /// Bytes; None: the whole device or file from `offset`.
    pub size: Option<u64>,
    pub label: &'a str,
    pub uuid: String,
    /// Directory whose content becomes the file system's root (a staged lake).
    pub populate: &'a Path,
}

/// The `i_mtime_extra` field of an ext4 inode: nanoseconds and epoch bits (as the kernel encodes them).
pub fn ext4_time_extra(sec: i64, nsec: u32) -> u32 {
    let epoch = (((sec - i64::from(sec as i32)) >> 32) & 3) as u32;
    (nsec << 2) | epoch
}

/// Quotes a path for a debugfs command line (`"` doubled); None for names
/// a line-based debugfs script cannot carry (newlines).
pub fn debugfs_quote(path: &[u8]) -> Option<Vec<u8>> {
    if path.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return None;
    }
    let mut q = vec![b'"'];
    for b in path {
        if *b == b'"' {
            q.push(b'"');
        }
        q.push(*b);
    }
    q.push(b'"');
    Some(q)
}

/// Sets the mtime nanoseconds that `mke2fs -d` (e2fsprogs 1.47.0) truncates, from
/// the staged directory, with one debugfs script. Loose objects carry their mtime
/// in their key, so without this every one of them would fail verification.
/// The same script gives the root directory (the lake directory) the staged
/// directory's mode: `mke2fs -d` leaves it 0755, and the lake is private.
fn restore_mtime_nsec(f: &Format) -> Result<u64> {
    use std::collections::HashSet;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let root_mode = std::fs::metadata(f.populate).at(f.populate)?.mode();
    let mut script = format!("sif / mode 0{:o}\n", root_mode).into_bytes();
    let mut fixed = 0u64;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = f.populate.join(&rel);
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let r = rel.join(e.file_name());
            let md = std::fs::symlink_metadata(e.path()).at(e.path())?;
            if md.is_dir() {
                stack.push(r.clone());
            }
            if md.mtime_nsec() == 0 || !seen.insert(md.ino()) {
                continue;
            }
            let mut path = b"/".to_vec();
            path.extend_from_slice(r.as_os_str().as_bytes());
            let q = debugfs_quote(&path).ok_or_else(|| {
                Error::Invalid(format!(
                    "cannot restore the mtime of {:?} through debugfs (a name holding a newline)",
                    String::from_utf8_lossy(&path)
                ))
            })?;
            script.extend_from_slice(b"sif ");
            script.extend_from_slice(&q);
            script.extend_from_slice(format!(" mtime_extra {}\n", ext4_time_extra(md.mtime(), md.mtime_nsec() as u32)).as_bytes());
            fixed += 1;
        }
    }
    run_debugfs_script(&format!("{}?offset={}", f.target.display(), f.offset), &script, &[])
        .map_err(|(status, why)| Error::Invalid(format!("debugfs restoring mtimes on {} failed ({status}): {why}", f.target.display())))?;
    Ok(fixed)
}

/// Runs a `debugfs -w` script on `target` (an image, optionally `?offset=N`)
/// with extra environment (e.g. E2FSPROGS_FAKE_TIME). debugfs exits 0 even when
/// commands fail, so any stderr line other than its banner is a failure. The
/// error is (exit status or "not run", the first error lines).
pub fn run_debugfs_script(target: &str, script: &[u8], env: &[(&str, String)]) -> std::result::Result<(), (String, String)> {
    let script_path = std::env::temp_dir().join(format!("lakefs-{}.debugfs", crate::util::random_hex(6)));
    std::fs::write(&script_path, script).map_err(|e| ("not run".to_owned(), format!("{}: {e}", script_path.display())))?;
    let out = Command::new("debugfs").arg("-w").arg("-f").arg(&script_path).arg(target).envs(env.iter().map(|(k, v)| (k, v))).output();
    let _ = std::fs::remove_file(&script_path);
    let out = out.map_err(|e| ("not run".to_owned(), format!("cannot run debugfs: {e}; install e2fsprogs")))?;
    let errors: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("debugfs "))
        .map(str::to_owned)
        .collect();
    if !out.status.success() || !errors.is_empty() {
        return Err((out.status.to_string(), errors.into_iter().take(5).collect::<Vec<_>>().join("; ")));
    }
    Ok(())
}

/// Makes an ext4 file system holding the staged directory, with every mtime
/// exact; returns how many inodes needed their nanoseconds restored.
pub fn format(f: &Format) -> Result<u64> {
    if target_kind(f.target)? == TargetKind::New {
        let size =
            f.size.ok_or_else(|| Error::Invalid(format!("{} does not exist: give --size to create an image", f.target.display())))?;
        let file = std::fs::File::create(f.target).at(f.target)?;
        file.set_len(f.offset + size).at(f.target)?;
    } else if let (TargetKind::ImageFile, Some(size)) = (target_kind(f.target)?, f.size) {
        let file = std::fs::OpenOptions::new().write(true).open(f.target).at(f.target)?;
        let len = file.metadata().at(f.target)?.len();
        if len < f.offset + size {
            file.set_len(f.offset + size).at(f.target)?;
        }
    }
    let mut cmd = Command::new("mke2fs");
    cmd.args(["-q", "-F", "-t", "ext4", "-L", f.label, "-U", &f.uuid, "-d"])
        .arg(f.populate)
        .arg("-E")
        .arg(format!("offset={},root_owner=0:0", f.offset))
        .arg(f.target);
    if let Some(size) = f.size {
        cmd.arg(format!("{}k", size / 1024));
    }
    run(&mut cmd, "mke2fs")
        .map_err(|e| Error::Invalid(format!("{e}\nhint: if the content does not fit, give a larger --size for {}", f.target.display())))?;
    restore_mtime_nsec(f)
}

/// A read-only or read-write mount of a lake substrate, undone on drop.
pub struct Mounted {
    pub dir: PathBuf,
    loopdev: Option<String>,
}

/// Attaches `target` (at `offset`) to a loop device if it is a file; returns the block device.
pub fn attach(target: &Path, offset: u64, size: Option<u64>, read_only: bool) -> Result<(PathBuf, Option<String>)> {
    if target_kind(target)? == TargetKind::BlockDevice && offset == 0 {
        return Ok((target.to_owned(), None));
    }
    let mut cmd = Command::new("losetup");
    cmd.args(["--find", "--show", "--offset", &offset.to_string()]);
    if let Some(s) = size {
        cmd.args(["--sizelimit", &s.to_string()]);
    }
    if read_only {
        cmd.arg("--read-only");
    }
    let dev = run(cmd.arg(target), "losetup")?.trim().to_owned();
    Ok((PathBuf::from(&dev), Some(dev)))
}

pub fn detach(loopdev: &str) {
    let _ = Command::new("losetup").arg("-d").arg(loopdev).status();
}

/// `e2fsck -f -n` on the substrate; Ok(report) when clean.
pub fn check_ext4(dev: &Path) -> Result<std::result::Result<String, String>> {
    let out = Command::new("e2fsck").args(["-f", "-n"]).arg(dev).output().map_err(|e| Error::Invalid(format!("cannot run e2fsck: {e}")))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(if out.status.success() { Ok(text) } else { Err(text) })
}

pub fn mount(dev: &Path, loopdev: Option<String>, read_only: bool) -> Result<Mounted> {
    let dir = std::env::temp_dir().join(format!("lakefs-mnt-{}", crate::util::random_hex(6)));
    std::fs::create_dir(&dir).at(&dir)?;
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "ext4", "-o", if read_only { "ro" } else { "rw" }]).arg(dev).arg(&dir);
    if let Err(e) = run(&mut cmd, "mount") {
        let _ = std::fs::remove_dir(&dir);
        if let Some(l) = &loopdev {
            detach(l);
        }
        return Err(e);
    }
    Ok(Mounted { dir, loopdev })
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
        if let Some(l) = &self.loopdev {
            detach(l);
        }
    }
}

/// Parses sizes such as `512M`, `2G`, `1048576`, `4KiB`.
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| Error::Invalid(format!("'{s}' is not a size (e.g. 512M, 2G, 1048576)")))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(Error::Invalid(format!("'{s}': unknown size unit '{unit}' (use K, M, G or T)"))),
    };
    n.checked_mul(mult).ok_or_else(|| Error::Invalid(format!("'{s}' is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_extra_matches_the_kernel_encoding() {
        assert_eq!(ext4_time_extra(1_700_000_000, 0), 0);
        assert_eq!(ext4_time_extra(1_700_000_000, 5), 20);
        assert_eq!(ext4_time_extra(1_700_000_000, 999_999_999), 999_999_999 << 2);
        // After 2038 the epoch bits carry the 33rd second bit.
        assert_eq!(ext4_time_extra(1 << 31, 0), 1);
        // Before 1970 (a negative 32-bit value) no epoch bits are needed.
        assert_eq!(ext4_time_extra(-1, 0), 0);
        assert_eq!(debugfs_quote(b"/a \"b\"").as_deref(), Some(&b"\"/a \"\"b\"\"\""[..]));
        assert_eq!(debugfs_quote(b"/a\nb"), None);
    }
}
