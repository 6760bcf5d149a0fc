//! Finding the EFI system partition that belongs to the lake: the partition of
//! GPT type [`ESP_TYPE_GUID`] on the same disk as the lake partition. It is
//! mounted on /sysroot/efi (so /efi in the booted system), where generations'
//! boot entries are written and systemd-bless-boot renames counted entries.
//!
//! Like the lake search, this reads sysfs and udev's database only (the initrd
//! has no blkid): /sys/class/block/<part> links to
//! /sys/devices/.../block/<disk>/<part>, and the disk's other children with a
//! `partition` attribute are the siblings.

use std::path::{Path, PathBuf};

use crate::udev_part_type;

/// GPT partition type of an EFI system partition.
pub const ESP_TYPE_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";

/// The other partitions on the disk that holds partition `part` (a kernel name
/// such as `vda2`), sorted by name. Empty when `part` is not a partition of a
/// disk (a whole disk, a loop device without partitions, device-mapper).
pub fn sibling_partitions(sys_class_block: &Path, part: &str) -> std::io::Result<Vec<String>> {
    let real = std::fs::canonicalize(sys_class_block.join(part))?;
    if !real.join("partition").exists() {
        return Ok(Vec::new());
    }
    let Some(disk) = real.parent() else { return Ok(Vec::new()) };
    let mut out: Vec<String> = std::fs::read_dir(disk)?
        .flatten()
        .filter(|e| e.path().join("partition").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != part)
        .collect();
    out.sort();
    Ok(out)
}

/// What the udev database says about the siblings of the lake partition.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EspLookup {
    /// Siblings of the ESP type, in name order (normally one).
    pub found: Vec<String>,
    /// Siblings udev has not recorded yet (no database entry, or one without a
    /// partition type): the answer may still change.
    pub unprobed: Vec<String>,
    /// All siblings.
    pub siblings: Vec<String>,
}

impl EspLookup {
    /// The device node of the ESP to mount (the first one found).
    pub fn device(&self, dev: &Path) -> Option<PathBuf> {
        self.found.first().map(|n| dev.join(n))
    }
}

/// Looks the siblings of `part` up in udev's database (`udev_db`, normally
/// /run/udev/data, files named `b<major>:<minor>`).
pub fn lookup(sys_class_block: &Path, udev_db: &Path, part: &str) -> std::io::Result<EspLookup> {
    let siblings = sibling_partitions(sys_class_block, part)?;
    let mut l = EspLookup::default();
    for name in &siblings {
        let devno = std::fs::read_to_string(sys_class_block.join(name).join("dev")).unwrap_or_default();
        let data = std::fs::read_to_string(udev_db.join(format!("b{}", devno.trim()))).ok();
        match data.as_deref().and_then(udev_part_type) {
            Some(t) if t == ESP_TYPE_GUID => l.found.push(name.clone()),
            Some(_) => {}
            None => l.unprobed.push(name.clone()),
        }
    }
    l.siblings = siblings;
    Ok(l)
}

/// The kernel name of a block device node (`/dev/vda2` -> `vda2`), following
/// symlinks such as /dev/disk/by-label/lake.
pub fn kernel_name(dev_node: &Path) -> Option<String> {
    let real = std::fs::canonicalize(dev_node).unwrap_or_else(|_| dev_node.to_path_buf());
    real.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::os::unix::fs::symlink;

    /// A fake /sys with two disks (vda: ESP + lake + swap-ish; vdb: another
    /// ESP) and udev records for some of the partitions.
    fn fake(t: &TestDir, vda3_recorded: bool) -> (PathBuf, PathBuf) {
        let sys = t.path().join("sys");
        let class = sys.join("class/block");
        let udev = t.path().join("udev");
        std::fs::create_dir_all(&class).unwrap();
        std::fs::create_dir_all(&udev).unwrap();
        let add = |disk: &str, part: Option<&str>, devno: &str, ty: Option<&str>| {
            let dir = match part {
                Some(p) => sys.join("devices/pci0000:00/0000:00:04.0/virtio2/block").join(disk).join(p),
                None => sys.join("devices/pci0000:00/0000:00:04.0/virtio2/block").join(disk),
            };
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
            if part.is_some() {
                std::fs::write(dir.join("partition"), "1\n").unwrap();
            }
            // Subdirectories a real disk has that are not partitions.
            std::fs::create_dir_all(dir.join("holders")).unwrap();
            symlink(&dir, class.join(part.unwrap_or(disk))).unwrap();
            if let Some(ty) = ty {
                std::fs::write(udev.join(format!("b{devno}")), format!("S:disk/by-partuuid/x\nE:ID_PART_ENTRY_TYPE={ty}\n")).unwrap();
            }
        };
        add("vda", None, "254:0", None);
        add("vda", Some("vda1"), "254:1", Some("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"));
        add("vda", Some("vda2"), "254:2", Some(lakefs::substrate::PARTITION_TYPE_GUID));
        add("vda", Some("vda3"), "254:3", if vda3_recorded { Some("0657fd6d-a4ab-43c4-84e5-0933c84b4f4f") } else { None });
        add("vdb", None, "254:16", None);
        add("vdb", Some("vdb1"), "254:17", Some(ESP_TYPE_GUID));
        (class, udev)
    }

    #[test]
    fn siblings_are_the_other_partitions_of_the_same_disk() {
        let t = TestDir::new("esp-siblings");
        let (class, _) = fake(&t, true);
        assert_eq!(sibling_partitions(&class, "vda2").unwrap(), vec!["vda1", "vda3"]);
        assert_eq!(sibling_partitions(&class, "vdb1").unwrap(), Vec::<String>::new());
        // A whole disk has no siblings.
        assert_eq!(sibling_partitions(&class, "vda").unwrap(), Vec::<String>::new());
        assert!(sibling_partitions(&class, "nvme0n1p1").is_err());
    }

    #[test]
    fn finds_the_esp_on_the_lake_disk_only() {
        let t = TestDir::new("esp-lookup");
        let (class, udev) = fake(&t, true);
        let l = lookup(&class, &udev, "vda2").unwrap();
        assert_eq!(l.found, vec!["vda1"]);
        assert!(l.unprobed.is_empty());
        assert_eq!(l.device(Path::new("/dev")), Some(PathBuf::from("/dev/vda1")));
        // vdb1 is an ESP too, but on another disk.
        let l = lookup(&class, &udev, "vdb1").unwrap();
        assert_eq!(l, EspLookup::default());
    }

    #[test]
    fn reports_siblings_udev_has_not_recorded_yet() {
        let t = TestDir::new("esp-unprobed");
        let (class, udev) = fake(&t, false);
        let l = lookup(&class, &udev, "vda2").unwrap();
        assert_eq!(l.found, vec!["vda1"]);
        assert_eq!(l.unprobed, vec!["vda3"]);
        std::fs::remove_file(udev.join("b254:1")).unwrap();
        let l = lookup(&class, &udev, "vda2").unwrap();
        assert!(l.found.is_empty());
        assert_eq!(l.unprobed, vec!["vda1", "vda3"]);
        assert_eq!(l.device(Path::new("/dev")), None);
    }

    #[test]
    fn kernel_name_follows_links() {
        let t = TestDir::new("esp-name");
        let dev = t.path().join("dev");
        std::fs::create_dir_all(dev.join("disk/by-label")).unwrap();
        std::fs::write(dev.join("vda2"), "").unwrap();
        symlink("../../vda2", dev.join("disk/by-label/lake")).unwrap();
        assert_eq!(kernel_name(&dev.join("disk/by-label/lake")).as_deref(), Some("vda2"));
        assert_eq!(kernel_name(Path::new("/dev/does-not-exist9")).as_deref(), Some("does-not-exist9"));
    }
}
