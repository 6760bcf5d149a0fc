//! The GPT layout of a Lake OS disk, and writing it with the `gpt` crate.
//!
//! ```text
//! LBA 0            protective MBR
//! LBA 1..33        primary GPT header and 128-entry partition array
//! 1 MiB            partition 1 "ESP"   EFI System (FAT32), --esp-size (512 MiB)
//! (optional)       partition 2 "boot"  XBOOTLDR (FAT32), --boot-size
//! next MiB         partition 2|3 "lake" Lake OS (ext4 substrate), to the last whole MiB
//! last 33 LBAs     backup partition array and header
//! ```
//! Every partition starts and ends on a 1 MiB boundary. Nothing here touches a
//! disk until [`write`].

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::units::{align_down, align_up, human, MIB};

pub const SECTOR: u64 = 512;
pub const ALIGN: u64 = MIB;
/// EFI System Partition.
pub const ESP_TYPE_GUID: &str = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b";
/// Extended Boot Loader Partition (XBOOTLDR, the Boot Loader Specification's /boot).
pub const XBOOTLDR_TYPE_GUID: &str = "bc13c2ff-59e6-4262-a352-b275fd6f7172";
pub use lakefs::substrate::PARTITION_TYPE_GUID as LAKE_TYPE_GUID;

/// Sectors the backup GPT needs at the end of the disk (128 entries x 128 bytes + header).
const BACKUP_SECTORS: u64 = 33;
/// Smallest FAT32 volume fatfs formats with 512-byte clusters is about 33 MiB;
/// keep a margin.
pub const MIN_FAT_PARTITION: u64 = 64 * MIB;
pub const MIN_LAKE_PARTITION: u64 = 128 * MIB;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Esp,
    Boot,
    Lake,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionSpec {
    /// GPT partition number (1-based), as in /dev/sdaN.
    pub number: u32,
    pub role: Role,
    /// GPT partition name.
    pub name: String,
    pub type_guid: String,
    /// The partition's own GUID (PARTUUID).
    pub guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
    /// Byte offset of the partition in the disk.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
}

impl PartitionSpec {
    pub fn end(&self) -> u64 {
        self.offset + self.size
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Layout {
    pub disk_size: u64,
    pub disk_guid: String,
    pub partitions: Vec<PartitionSpec>,
}

impl Layout {
    /// Lays out a disk of `disk_size` bytes: ESP, optional XBOOTLDR, lake to the end.
    pub fn compute(disk_size: u64, esp_size: u64, boot_size: Option<u64>) -> Result<Layout> {
        #[allow(clippy::manual_is_multiple_of)] // is_multiple_of needs Rust 1.87; the workspace says 1.85
        if disk_size % SECTOR != 0 {
            return Err(Error::Layout(format!("disk size {disk_size} is not a multiple of {SECTOR} bytes")));
        }
        let check = |what: &str, size: u64| {
            if size < MIN_FAT_PARTITION {
                Err(Error::Layout(format!("{what} of {} is too small for FAT32: give at least {}", human(size), human(MIN_FAT_PARTITION))))
            } else {
                Ok(align_up(size, ALIGN))
            }
        };
        let mut parts = Vec::new();
        let mut next = ALIGN;
        let add = |role: Role, name: &str, type_guid: &str, size: u64, next: &mut u64, parts: &mut Vec<PartitionSpec>| {
            parts.push(PartitionSpec {
                number: parts.len() as u32 + 1,
                role,
                name: name.to_owned(),
                type_guid: type_guid.to_owned(),
                guid: uuid::Uuid::new_v4().to_string(),
                first_lba: *next / SECTOR,
                last_lba: (*next + size) / SECTOR - 1,
                offset: *next,
                size,
            });
            *next += size;
        };
        add(Role::Esp, "ESP", ESP_TYPE_GUID, check("--esp-size", esp_size)?, &mut next, &mut parts);
        if let Some(b) = boot_size {
            add(Role::Boot, "boot", XBOOTLDR_TYPE_GUID, check("--boot-size", b)?, &mut next, &mut parts);
        }
        let last_usable_end = disk_size.saturating_sub(BACKUP_SECTORS * SECTOR);
        let lake_end = align_down(last_usable_end, ALIGN);
        let lake_size = lake_end.saturating_sub(next);
        if lake_end <= next || lake_size < MIN_LAKE_PARTITION {
            let need = next + MIN_LAKE_PARTITION + ALIGN;
            return Err(Error::Layout(format!(
                "a disk of {} leaves no room for the lake partition after the boot partitions ({}); it needs at least {} (more for a real root file system)",
                human(disk_size),
                human(next),
                human(need)
            )));
        }
        add(Role::Lake, lakefs::substrate::LABEL, LAKE_TYPE_GUID, lake_size, &mut next, &mut parts);
        Ok(Layout { disk_size, disk_guid: uuid::Uuid::new_v4().to_string(), partitions: parts })
    }

    pub fn get(&self, role: Role) -> Option<&PartitionSpec> {
        self.partitions.iter().find(|p| p.role == role)
    }

    pub fn lake(&self) -> &PartitionSpec {
        // compute() always adds the lake partition last.
        &self.partitions[self.partitions.len() - 1]
    }

    pub fn esp(&self) -> &PartitionSpec {
        &self.partitions[0]
    }
}

fn parse_guid(s: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(s).map_err(|e| Error::Layout(format!("bad GUID '{s}': {e}")))
}

/// Writes the protective MBR and both GPT headers and partition arrays of
/// `layout` to `file` (an image file or a block device of exactly
/// `layout.disk_size` bytes).
pub fn write(file: &File, target: &Path, layout: &Layout) -> Result<()> {
    let gerr = |source| Error::Gpt { target: target.to_owned(), error: source };
    let mut dev = file;
    let len = std::io::Seek::seek(&mut dev, std::io::SeekFrom::End(0)).map_err(|e| Error::io(target, e))?;
    if len != layout.disk_size {
        return Err(Error::Layout(format!("{} is {len} bytes, the layout was made for {}", target.display(), layout.disk_size)));
    }
    let total_lbas = len / SECTOR;
    let mbr = gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(total_lbas - 1).unwrap_or(u32::MAX));
    mbr.overwrite_lba0(&mut dev).map_err(|e| Error::Layout(format!("writing the protective MBR of {}: {e}", target.display())))?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(dev, Some(parse_guid(&layout.disk_guid)?))
        .map_err(gerr)?;
    let mut table = std::collections::BTreeMap::new();
    for p in &layout.partitions {
        table.insert(
            p.number,
            gpt::partition::Partition {
                part_type_guid: gpt::partition_types::Type {
                    guid: parse_guid(&p.type_guid)?,
                    os: gpt::partition_types::OperatingSystem::None,
                },
                part_guid: parse_guid(&p.guid)?,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                flags: 0,
                name: p.name.clone(),
            },
        );
    }
    disk.update_partitions(table).map_err(gerr)?;
    let header = disk.primary_header().map_err(|e| gerr(e.into()))?;
    for p in &layout.partitions {
        if p.first_lba < header.first_usable || p.last_lba > header.last_usable {
            return Err(Error::Layout(format!(
                "partition {} ({}..{}) lies outside the usable LBAs {}..{} of {}",
                p.name,
                p.first_lba,
                p.last_lba,
                header.first_usable,
                header.last_usable,
                target.display()
            )));
        }
    }
    disk.write().map_err(gerr)?;
    Ok(())
}

/// A partition found in an existing GPT.
#[derive(Clone, Debug, Serialize)]
pub struct ExistingPartition {
    pub number: u32,
    pub name: String,
    pub type_guid: String,
    pub offset: u64,
    pub size: u64,
}

/// The partitions of an existing GPT on `file`, or None when it holds no valid GPT.
pub fn read(file: &File) -> Option<Vec<ExistingPartition>> {
    let disk = gpt::GptConfig::new().writable(false).logical_block_size(gpt::disk::LogicalBlockSize::Lb512).open_from_device(file).ok()?;
    Some(
        disk.partitions()
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| ExistingPartition {
                number: *n,
                name: p.name.clone(),
                type_guid: p.part_type_guid.guid.to_string(),
                offset: p.first_lba * SECTOR,
                size: (p.last_lba + 1).saturating_sub(p.first_lba) * SECTOR,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::GIB;

    #[test]
    fn lays_out_esp_and_lake_on_mib_boundaries() {
        let l = Layout::compute(8 * GIB, 512 * MIB, None).expect("layout");
        assert_eq!(l.partitions.len(), 2);
        let (esp, lake) = (&l.partitions[0], &l.partitions[1]);
        assert_eq!((esp.number, esp.role, esp.offset, esp.size), (1, Role::Esp, MIB, 512 * MIB));
        assert_eq!((esp.first_lba, esp.last_lba), (2048, 2048 + 512 * 2048 - 1));
        assert_eq!((lake.number, lake.role, lake.offset), (2, Role::Lake, 513 * MIB));
        // The lake runs to the last whole MiB before the backup GPT.
        assert_eq!(lake.end(), 8 * GIB - MIB);
        assert_eq!(lake.type_guid, "f1f21de9-2996-4512-bf8a-b087ed8680fb");
        assert_eq!(l.lake().role, Role::Lake);
    }

    #[test]
    fn optional_boot_partition_sits_between() {
        let l = Layout::compute(4 * GIB, 100 * MIB, Some(GIB)).expect("layout");
        let roles: Vec<_> = l.partitions.iter().map(|p| (p.number, p.role)).collect();
        assert_eq!(roles, vec![(1, Role::Esp), (2, Role::Boot), (3, Role::Lake)]);
        assert_eq!(l.partitions[1].offset, 101 * MIB);
        assert_eq!(l.partitions[1].type_guid, XBOOTLDR_TYPE_GUID);
        assert_eq!(l.partitions[2].offset, 101 * MIB + GIB);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(Layout::compute(600 * MIB, 512 * MIB, None).is_err());
        assert!(Layout::compute(8 * GIB, 16 * MIB, None).is_err());
        assert!(Layout::compute(8 * GIB + 1, 512 * MIB, None).is_err());
        // An odd ESP size is rounded up to the next MiB.
        let l = Layout::compute(GIB, 100 * MIB + 1, None).expect("layout");
        assert_eq!(l.partitions[0].size, 101 * MIB);
    }

    #[test]
    fn writes_a_gpt_that_reads_back() {
        let t = tempfile::tempfile().expect("tempfile");
        t.set_len(GIB).expect("set_len");
        let l = Layout::compute(GIB, 64 * MIB, None).expect("layout");
        write(&t, Path::new("<temp>"), &l).expect("write");
        let back = read(&t).expect("a GPT");
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].name.as_str(), back[0].offset, back[0].size), ("ESP", MIB, 64 * MIB));
        assert_eq!(back[0].type_guid, ESP_TYPE_GUID);
        assert_eq!((back[1].name.as_str(), back[1].offset), ("lake", 65 * MIB));
        assert_eq!(back[1].type_guid, LAKE_TYPE_GUID);
    }
}
