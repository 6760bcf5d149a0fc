//! `lake-installer disks`: the disks an install could go to, from sysfs, the
//! udev database and /proc/self/mountinfo: size, model, transport, partitions
//! (with file system and label), what is mounted, and whether the disk may be
//! a target. Never a target: the disk the live system runs from (the install
//! medium, named in /run/lakefs/live by lake-initramfs), read-only devices
//! (CD drives), and disks with anything mounted or in use.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::units::human;

/// Written by lake-initramfs in live mode (`key=value` lines: medium, disk,
/// label, image, loop, generation); see lake_initramfs::live::LIVE_FILE.
pub const LIVE_FILE: &str = "/run/lakefs/live";

/// What lake-initramfs recorded about a live boot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LiveInfo {
    /// Device node of the medium (/dev/sr0, /dev/sda).
    pub medium: String,
    /// Kernel name of its whole disk (sr0, sda).
    pub disk: String,
    pub label: String,
    /// The lake image on the mounted medium.
    pub image: PathBuf,
    pub generation: u32,
}

impl LiveInfo {
    pub fn parse(text: &str) -> LiveInfo {
        let mut l = LiveInfo::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            match k.trim() {
                "medium" => l.medium = v.trim().into(),
                "disk" => l.disk = v.trim().into(),
                "label" => l.label = v.trim().into(),
                "image" => l.image = v.trim().into(),
                "generation" => l.generation = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
        l
    }

    /// The live record of this boot, if the system runs from the install medium.
    pub fn current() -> Option<LiveInfo> {
        std::fs::read_to_string(LIVE_FILE).ok().map(|t| LiveInfo::parse(&t)).filter(|l| !l.disk.is_empty())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Partition {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub mountpoints: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Vendor and model as the device reports them (or the virtio serial).
    pub model: String,
    /// usb, nvme, sata, virtio, cd, other.
    pub transport: String,
    pub removable: bool,
    pub read_only: bool,
    pub partitions: Vec<Partition>,
    /// Mount points of the disk and its partitions, and what holds them (dm, md).
    pub mounted: Vec<String>,
    /// The install medium this live system runs from.
    pub boot_medium: bool,
    /// Why it cannot be a target; None: it can.
    pub refused: Option<String>,
}

/// Where the system describes its block devices (real ones, or a test's fakes).
pub struct Sources<'a> {
    /// /sys/block
    pub sys_block: &'a Path,
    /// /dev
    pub dev: &'a Path,
    /// /run/udev/data
    pub udev_db: &'a Path,
    /// The text of /proc/self/mountinfo.
    pub mountinfo: &'a str,
    pub live: Option<&'a LiveInfo>,
    /// Disks smaller than this are refused (0: no minimum).
    pub min_size: u64,
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `major:minor` -> mount points, from mountinfo (field 3; field 5 is the mount point).
pub fn mounts_by_devno(mountinfo: &str) -> HashMap<String, Vec<String>> {
    let mut m: HashMap<String, Vec<String>> = HashMap::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 {
            // Octal escapes (\040 for a space) are left as they are: for display only.
            m.entry(f[2].to_owned()).or_default().push(f[4].to_owned());
        }
    }
    m
}

fn udev_props(udev_db: &Path, devno: &str) -> HashMap<String, String> {
    std::fs::read_to_string(udev_db.join(format!("b{devno}")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("E:"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn transport(name: &str, real: &str) -> &'static str {
    if name.starts_with("sr") {
        "cd"
    } else if real.contains("/usb") {
        "usb"
    } else if name.starts_with("nvme") {
        "nvme"
    } else if real.contains("/virtio") {
        "virtio"
    } else if real.contains("/ata") {
        "sata"
    } else {
        "other"
    }
}

/// Whole disks, sorted by name (loop, ram, zram, device-mapper and md devices are not disks to install on).
pub fn list(s: &Sources) -> Vec<Disk> {
    let mounts = mounts_by_devno(s.mountinfo);
    let mut names: Vec<String> = std::fs::read_dir(s.sys_block)
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| !["loop", "ram", "zram", "dm-", "md"].iter().any(|p| n.starts_with(p)));
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let dir = s.sys_block.join(&name);
        let real = std::fs::canonicalize(&dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let size = read_trim(&dir.join("size")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 512;
        let devno = read_trim(&dir.join("dev")).unwrap_or_default();
        // virtio's device/vendor is a PCI vendor id (0x1af4), not a name.
        let vendor = read_trim(&dir.join("device/vendor")).filter(|v| !v.starts_with("0x")).unwrap_or_default();
        let model = read_trim(&dir.join("device/model")).unwrap_or_default();
        let mut model = format!("{vendor} {model}").trim().to_owned();
        if model.is_empty() {
            let udev = udev_props(s.udev_db, &devno);
            model = udev.get("ID_MODEL").cloned().unwrap_or_default().replace('_', " ");
            if model.is_empty() {
                model = read_trim(&dir.join("serial")).map(|s| format!("serial {s}")).unwrap_or_default();
            }
        }
        let mut mounted: Vec<String> = mounts.get(&devno).cloned().unwrap_or_default();
        let mut partitions = Vec::new();
        let mut children: Vec<String> = std::fs::read_dir(&dir)
            .map(|it| {
                it.flatten().filter(|e| e.path().join("partition").exists()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()
            })
            .unwrap_or_default();
        children.sort_by_key(|c| (c.len(), c.clone()));
        for c in &children {
            let pdir = dir.join(c);
            let pdev = read_trim(&pdir.join("dev")).unwrap_or_default();
            let udev = udev_props(s.udev_db, &pdev);
            let mp = mounts.get(&pdev).cloned().unwrap_or_default();
            mounted.extend(mp.iter().map(|m| format!("{c} on {m}")));
            mounted.extend(holders(&pdir).into_iter().map(|h| format!("{c} used by {h}")));
            partitions.push(Partition {
                name: c.clone(),
                path: s.dev.join(c),
                size: read_trim(&pdir.join("size")).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 512,
                fstype: udev.get("ID_FS_TYPE").cloned().filter(|v| !v.is_empty()),
                label: udev.get("ID_FS_LABEL").cloned().filter(|v| !v.is_empty()),
                mountpoints: mp,
            });
        }
        mounted.extend(holders(&dir).into_iter().map(|h| format!("used by {h}")));
        let boot_medium = s.live.is_some_and(|l| l.disk == name);
        let read_only = read_trim(&dir.join("ro")).as_deref() == Some("1") || name.starts_with("sr");
        let refused = if boot_medium {
            Some("the install medium this system runs from".to_string())
        } else if read_only {
            Some("read-only".to_string())
        } else if !mounted.is_empty() {
            Some(format!("in use: {}", mounted.join(", ")))
        } else if size == 0 {
            Some("no medium (size 0)".to_string())
        } else if s.min_size > 0 && size < s.min_size {
            Some(format!("too small: at least {} needed", human(s.min_size)))
        } else {
            None
        };
        out.push(Disk {
            path: s.dev.join(&name),
            transport: transport(&name, &real).into(),
            removable: read_trim(&dir.join("removable")).as_deref() == Some("1"),
            name,
            size,
            model,
            read_only,
            partitions,
            mounted,
            boot_medium,
            refused,
        });
    }
    out
}

fn holders(dir: &Path) -> Vec<String> {
    let mut h: Vec<String> = std::fs::read_dir(dir.join("holders"))
        .map(|it| it.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    h.sort();
    h
}

/// The disks of this system.
pub fn system(min_size: u64) -> Vec<Disk> {
    let live = LiveInfo::current();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    list(&Sources {
        sys_block: Path::new("/sys/block"),
        dev: Path::new("/dev"),
        udev_db: Path::new("/run/udev/data"),
        mountinfo: &mountinfo,
        live: live.as_ref(),
        min_size,
    })
}

/// The table `lake-installer disks` prints.
pub fn render(disks: &[Disk]) -> String {
    let mut s = String::new();
    if disks.is_empty() {
        s.push_str("no disks found\n");
    }
    for d in disks {
        let model = if d.model.is_empty() { String::new() } else { format!("  {}", d.model) };
        let verdict = match &d.refused {
            None => "can be installed on".to_string(),
            Some(why) if d.boot_medium => format!("BOOT MEDIUM, never a target ({why})"),
            Some(why) => format!("not a target: {why}"),
        };
        let _ = writeln!(
            s,
            "{}  {}  {}{}{}  -- {verdict}",
            d.path.display(),
            human(d.size),
            d.transport,
            if d.removable { " removable" } else { "" },
            model
        );
        if d.partitions.is_empty() {
            let _ = writeln!(s, "    no partitions");
        }
        for p in &d.partitions {
            let fs = [p.fstype.clone(), p.label.as_ref().map(|l| format!("'{l}'"))].into_iter().flatten().collect::<Vec<_>>().join(" ");
            let m = if p.mountpoints.is_empty() { String::new() } else { format!("  mounted on {}", p.mountpoints.join(", ")) };
            let _ = writeln!(s, "    {}  {}  {}{m}", p.name, human(p.size), if fs.is_empty() { "-".into() } else { fs });
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_disk(root: &Path, bus: &str, name: &str, sectors: u64, parts: &[(&str, &str, u64)]) {
        let real = root.join("devices").join(bus).join("block").join(name);
        std::fs::create_dir_all(real.join("device")).unwrap();
        std::fs::write(real.join("size"), format!("{sectors}\n")).unwrap();
        std::fs::write(real.join("dev"), format!("{}\n", parts.first().map_or("8:0", |_| "8:0"))).unwrap();
        std::fs::write(real.join("ro"), "0\n").unwrap();
        std::fs::write(real.join("removable"), "0\n").unwrap();
        for (p, devno, sz) in parts {
            std::fs::create_dir_all(real.join(p)).unwrap();
            std::fs::write(real.join(p).join("partition"), "1\n").unwrap();
            std::fs::write(real.join(p).join("dev"), format!("{devno}\n")).unwrap();
            std::fs::write(real.join(p).join("size"), format!("{sz}\n")).unwrap();
        }
        std::fs::create_dir_all(root.join("block")).unwrap();
        std::os::unix::fs::symlink(&real, root.join("block").join(name)).unwrap();
    }

    #[test]
    fn marks_the_boot_medium_and_mounted_disks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        fake_disk(root, "pci/usb1/1-1", "sda", 1_400_000, &[("sda1", "8:1", 64), ("sda2", "8:2", 81920)]);
        std::fs::write(root.join("devices/pci/usb1/1-1/block/sda/device/vendor"), "QEMU\n").unwrap();
        std::fs::write(root.join("devices/pci/usb1/1-1/block/sda/device/model"), "QEMU HARDDISK\n").unwrap();
        fake_disk(root, "pci/virtio2", "vda", 8_388_608, &[]);
        std::fs::write(root.join("devices/pci/virtio2/block/vda/dev"), "254:0\n").unwrap();
        std::fs::write(root.join("devices/pci/virtio2/block/vda/serial"), "disk0\n").unwrap();
        fake_disk(root, "pci/nvme0", "nvme0n1", 8_388_608, &[("nvme0n1p1", "259:1", 1000), ("nvme0n1p2", "259:2", 9000)]);
        std::fs::write(root.join("devices/pci/nvme0/block/nvme0n1/dev"), "259:0\n").unwrap();
        let udev = root.join("udev");
        std::fs::create_dir_all(&udev).unwrap();
        std::fs::write(udev.join("b8:2"), "E:ID_FS_TYPE=vfat\nE:ID_FS_LABEL=LAKE-EFI\n").unwrap();
        let mountinfo = "22 1 259:2 / /data rw - ext4 /dev/nvme0n1p2 rw\n30 1 11:0 / /run/lake-medium ro - iso9660 /dev/sr0 ro\n";
        let live = LiveInfo::parse("medium=/dev/sda\ndisk=sda\nlabel=LAKEOS_MINIMAL\nimage=/run/lake-medium/lake/lake.img\ngeneration=1\n");
        let disks = list(&Sources {
            sys_block: &root.join("block"),
            dev: Path::new("/dev"),
            udev_db: &udev,
            mountinfo,
            live: Some(&live),
            min_size: GIB_2,
        });
        let by = |n: &str| disks.iter().find(|d| d.name == n).unwrap();
        assert_eq!(disks.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["nvme0n1", "sda", "vda"]);
        let sda = by("sda");
        assert!(sda.boot_medium && sda.refused.is_some(), "{sda:?}");
        assert_eq!((sda.transport.as_str(), sda.model.as_str()), ("usb", "QEMU QEMU HARDDISK"));
        assert_eq!(sda.partitions[1].fstype.as_deref(), Some("vfat"));
        assert_eq!(sda.partitions[1].label.as_deref(), Some("LAKE-EFI"));
        let nvme = by("nvme0n1");
        assert!(nvme.refused.as_deref().is_some_and(|r| r.contains("nvme0n1p2 on /data")), "{nvme:?}");
        let vda = by("vda");
        assert_eq!(
            (vda.refused.as_deref(), vda.size, vda.model.as_str(), vda.transport.as_str()),
            (None, 4 << 30, "serial disk0", "virtio")
        );
        let text = render(&disks);
        assert!(text.contains("/dev/sda") && text.contains("BOOT MEDIUM"), "{text}");
        assert!(text.contains("/dev/vda  4 GiB  virtio  serial disk0  -- can be installed on"), "{text}");
        // Too small.
        let small = list(&Sources {
            sys_block: &root.join("block"),
            dev: Path::new("/dev"),
            udev_db: &udev,
            mountinfo,
            live: None,
            min_size: 8 << 30,
        });
        assert!(small.iter().find(|d| d.name == "vda").unwrap().refused.as_deref().unwrap().contains("too small"));
    }

    const GIB_2: u64 = 2 << 30;
}
