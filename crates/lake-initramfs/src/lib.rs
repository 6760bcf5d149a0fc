//! The early-boot program's logic: read the kernel command line, find the lake
//! partition, mount it, and assemble the root of a generation as
//! overlay(lower = its checkout, upper = its upper dir) on /sysroot, so that
//! systemd in the initrd can switch root into it.
//!
//! Then it mounts the lake's ESP on /sysroot/efi ([`esp`]) and the persistent
//! /home ([`home`]), and checks the root has an init ([`init_check`]); a failure
//! on a boot-counted try reboots so the boot loader can fall back ([`boot_count`]).
//!
//! With `lake.live[=LABEL]` it boots the install medium's lake image instead
//! ([`live`]).
//!
//! The initrd itself is built by mkosi (`mkosi/` beside this crate, Format=cpio);
//! `lake-initramfs.service` runs the binary before `initrd-root-fs.target`.

use std::path::{Path, PathBuf};

pub mod boot_count;
pub mod esp;
pub mod home;
pub mod init_check;
pub mod live;
#[cfg(test)]
mod test_dir;

/// Options from the kernel command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Cmdline {
    /// `lake.gen=N`: the generation to boot (default: the lake's default).
    pub generation: Option<u32>,
    /// `lake.device=/dev/...`: the lake partition, skipping the search.
    pub device: Option<PathBuf>,
    /// `lake.timeout=SECONDS`: how long to wait for the partition (default 30).
    pub timeout: Option<u64>,
    /// `root=` is given: systemd mounts that root itself and the lake is not used
    /// (a plain image booted with the same initrd, e.g. for the boot benchmark).
    pub plain_root: bool,
}

pub fn parse_cmdline(s: &str) -> Result<Cmdline, String> {
    let mut c = Cmdline::default();
    for word in s.split_whitespace() {
        if let Some(v) = word.strip_prefix("lake.gen=") {
            c.generation = Some(v.parse().map_err(|_| format!("lake.gen={v}: not a generation number"))?);
        } else if let Some(v) = word.strip_prefix("lake.device=") {
            c.device = Some(PathBuf::from(v));
        } else if word.starts_with("root=") {
            c.plain_root = true;
        } else if let Some(v) = word.strip_prefix("lake.timeout=") {
            c.timeout = Some(v.parse().map_err(|_| format!("lake.timeout={v}: not a number of seconds"))?);
        }
    }
    Ok(c)
}

/// The GPT partition type udev recorded for block device `maj:min` (from its
/// database, so the initrd needs no blkid).
pub fn udev_part_type(udev_data: &str) -> Option<String> {
    udev_data.lines().find_map(|l| l.strip_prefix("E:ID_PART_ENTRY_TYPE=")).map(|v| v.trim().to_ascii_lowercase())
}

/// Block devices whose GPT type is the lake's, or which carry the label `lake`.
pub fn find_candidates(dev: &Path, sys_block: &Path, udev_db: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for link in ["disk/by-label/lake", "disk/by-partlabel/lake"] {
        let p = dev.join(link);
        if p.exists() {
            out.push(std::fs::canonicalize(&p).unwrap_or(p));
        }
    }
    if let Ok(entries) = std::fs::read_dir(sys_block) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(devno) = std::fs::read_to_string(e.path().join("dev")) else { continue };
            let Ok(data) = std::fs::read_to_string(udev_db.join(format!("b{}", devno.trim()))) else { continue };
            if udev_part_type(&data).as_deref() == Some(lakefs::substrate::PARTITION_TYPE_GUID) {
                out.push(dev.join(&name));
            }
        }
    }
    out.dedup();
    out
}

/// Names of the block devices the kernel knows, for error messages.
pub fn block_devices(sys_block: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sys_block)
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The overlay mount options for generation directories.
pub fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> String {
    format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        let c = parse_cmdline("BOOT_IMAGE=/x quiet lake.gen=3 console=ttyS0 lake.device=/dev/vda2 lake.timeout=5").unwrap();
        assert_eq!(c, Cmdline { generation: Some(3), device: Some("/dev/vda2".into()), timeout: Some(5), plain_root: false });
        assert!(parse_cmdline("root=PARTUUID=abc ro").unwrap().plain_root);
        assert_eq!(parse_cmdline("quiet").unwrap(), Cmdline::default());
        assert!(parse_cmdline("lake.gen=x").unwrap_err().contains("lake.gen=x"));
    }

    #[test]
    fn finds_the_lake_by_partition_type_in_the_udev_database() {
        let t = std::env::temp_dir().join(format!("lake-initramfs-test-{}", std::process::id()));
        let (dev, sys, udev) = (t.join("dev"), t.join("sys"), t.join("udev"));
        for (name, devno, ty) in
            [("vda1", "254:1", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"), ("vda2", "254:2", "F1F21DE9-2996-4512-BF8A-B087ED8680FB")]
        {
            std::fs::create_dir_all(sys.join(name)).unwrap();
            std::fs::write(sys.join(name).join("dev"), format!("{devno}\n")).unwrap();
            std::fs::create_dir_all(&udev).unwrap();
            std::fs::write(udev.join(format!("b{devno}")), format!("S:disk/by-partuuid/x\nE:ID_PART_ENTRY_TYPE={ty}\n")).unwrap();
        }
        std::fs::create_dir_all(&dev).unwrap();
        assert_eq!(find_candidates(&dev, &sys, &udev), vec![dev.join("vda2")]);
        assert_eq!(block_devices(&sys), vec!["vda1", "vda2"]);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
