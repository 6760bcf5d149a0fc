//! Carrying out a [`Plan`]: stage the lake (slow, touches nothing on the
//! target), then write the target: lake partition (mke2fs -d), FAT partitions,
//! and the GPT last, so an interrupted install never looks like a finished one.
#![allow(unsafe_code)] // writing the target: hole punching and the BLKRRPART ioctl (no safe wrappers)

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lakefs::progress::{Progress, Silent};
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::esp::FatVolume;
use crate::gpt_layout::{self, PartitionSpec, Role};
use crate::lake_partition::{self, Staged};
use crate::plan::{Plan, TargetType};
use crate::rootfs::RootfsKind;
use crate::units::{human, MIB};
use lake_boot::bls::{self, BootFile, Entry};

/// Where the installer reports what it is doing.
pub trait Observer: Sync {
    /// A step starts (one line for a log or a terminal).
    fn step(&self, _what: &str) {}
    /// A progress sink for a long step (import, deploy).
    fn progress(&self) -> Box<dyn Progress> {
        Box::new(Silent)
    }
}

/// Reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub step: &'static str,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct LakeReport {
    pub uuid: String,
    pub commit: String,
    pub generation: u32,
    pub reference: &'static str,
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Allocated bytes of the staged lake (objects, checkout dirs, metadata).
    pub staged_bytes: u64,
    /// A file of the generation's checkout and its link count on the target
    /// (read back with debugfs): >= 2 means the checkout is a hard-link farm.
    pub hardlink_check: Option<HardlinkCheck>,
    /// Inodes whose mtime nanoseconds were put back after mke2fs -d (which drops them).
    pub mtimes_restored: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HardlinkCheck {
    pub path: String,
    pub inode: u64,
    pub links: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageSize {
    pub apparent: u64,
    pub allocated: u64,
}

/// What the install did (printed as the summary, or as JSON).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub target: PathBuf,
    #[serde(rename = "target_type")]
    pub kind: TargetType,
    pub disk_size: u64,
    pub disk_guid: String,
    pub partitions: Vec<PartitionSpec>,
    pub lake: LakeReport,
    pub kernel: BootFile,
    pub initrd: BootFile,
    pub entry: String,
    pub entry_text: String,
    pub cmdline: String,
    /// Image files only.
    pub image: Option<ImageSize>,
    /// The install configuration's commit (generation 2, the default), if one was given.
    pub settings: Option<crate::settings::SettingsCommit>,
    pub timings: Vec<Timing>,
    pub elapsed_seconds: f64,
}

/// The lake to write: staged here, or an image made by `build --iso`.
enum Prepared<'a> {
    Staged { staged: Staged, probe_file: Option<String>, scratch: Scratch },
    Image(&'a crate::plan::LakeImageSource),
}

/// Removes a staging directory when the install (or ISO build) ends, however it ends.
pub struct Scratch {
    pub dir: PathBuf,
    pub keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Deletes an image file this install created, unless the install finished.
struct CreatedImage {
    path: Option<PathBuf>,
}

impl Drop for CreatedImage {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

struct Clock {
    start: Instant,
    last: Instant,
    timings: Vec<Timing>,
}

impl Clock {
    fn lap(&mut self, step: &'static str) {
        let now = Instant::now();
        self.timings.push(Timing { step, seconds: (now - self.last).as_secs_f64() });
        self.last = now;
    }
}

/// Runs the install. The caller has shown the plan and called
/// [`Plan::check_allowed`]; this checks the mount state again right before writing.
pub fn run(plan: &Plan, obs: &dyn Observer) -> Result<Report> {
    let now = Instant::now();
    let mut clock = Clock { start: now, last: now, timings: Vec::new() };
    let target = plan.target.path.as_path();

    obs.step("hashing the kernel and initrd");
    let kernel = BootFile::of(&plan.kernel, "vmlinuz")?;
    let initrd = BootFile::of(&plan.initrd, "initrd")?;
    let boot_part = plan.layout.get(plan.boot_role()).unwrap_or(plan.layout.esp());
    let loaders = plan.boot_chain.bytes()?;
    let on_boot = kernel.size + initrd.size + if plan.boot_role() == Role::Esp { loaders } else { 0 };
    if on_boot + 4 * MIB > boot_part.size {
        return Err(Error::Invalid(format!(
            "the kernel, initrd and boot loader ({}) do not fit the {} partition ({}); give a larger {}",
            human(on_boot),
            boot_part.name,
            human(boot_part.size),
            if boot_part.role == Role::Boot { "--boot-size" } else { "--esp-size" }
        )));
    }

    // Checked against the system being installed before the target is touched
    // (a tar rootfs: once extracted, below).
    let validate = |root: &Path| -> Result<Option<crate::config::Settings>> {
        match &plan.config {
            None => Ok(None),
            Some((file, c)) => Ok(Some(c.validate(file, root)?)),
        }
    };
    let mut settings = match (&plan.rootfs, &plan.lake_image) {
        (Some(r), None) if r.kind == RootfsKind::Directory => validate(&r.path)?,
        (_, Some(_)) => validate(&plan.config_root)?,
        _ => None,
    };
    clock.lap("hash");
    let mut settings_commit = None;
    let prepared = match (&plan.rootfs, &plan.lake_image) {
        (_, Some(img)) => Prepared::Image(img),
        (Some(rootfs), None) => {
            std::fs::create_dir_all(&plan.staging).at(&plan.staging)?;
            let scratch =
                Scratch { dir: plan.staging.join(format!("lake-installer-{}", lakefs::util::random_hex(6))), keep: plan.keep_staging };
            std::fs::create_dir(&scratch.dir).at(&scratch.dir)?;
            // The staged rootfs is nobody else's business (staging may be /dev/shm).
            std::fs::set_permissions(&scratch.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).at(&scratch.dir)?;
            let rootfs_dir = match rootfs.kind {
                RootfsKind::Directory => rootfs.path.clone(),
                RootfsKind::Tar => {
                    obs.step(&format!("extracting {}", rootfs.path.display()));
                    let d = rootfs.materialize(&scratch.dir.join("rootfs"))?;
                    settings = validate(&d)?;
                    clock.lap("extract");
                    d
                }
            };

            obs.step(&format!("importing {} into a staging lake ({})", rootfs_dir.display(), scratch.dir.display()));
            let (import_bar, deploy_bar) = (obs.progress(), obs.progress());
            let message = format!("installed from {}", rootfs.path.display());
            let mut staged =
                lake_partition::stage(&scratch.dir.join("lake"), &rootfs_dir, &message, None, import_bar.as_ref(), deploy_bar.as_ref())?;
            clock.lap("import+deploy");
            if let Some(s) = &settings {
                obs.step("committing the install configuration's settings as generation 2");
                let c = crate::settings::commit(&staged.dir, s)?;
                staged.generation = c.generation;
                (staged.bytes, staged.inodes) = lake_partition::allocated(&staged.dir)?;
                settings_commit = Some(c);
                clock.lap("settings");
            }
            let boot_bytes = plan.layout.partitions.iter().filter(|p| p.role != Role::Lake).map(|p| p.size).sum::<u64>() + 2 * MIB;
            lake_partition::check_fits(&staged, plan.layout.lake(), boot_bytes)?;
            clock.lap("size check");
            let probe_file = first_linked_file(&staged.dir.join("deploy").join(staged.generation.to_string()).join("root"));
            Prepared::Staged { staged, probe_file, scratch }
        }
        (None, None) => return Err(Error::Invalid("nothing to install: give a root file system or a lake image".into())),
    };

    // From here on the target is written.
    let now_state = crate::plan::TargetState::inspect(target)?;
    if !now_state.mounted.is_empty() {
        return Err(Error::Mounted { target: target.to_owned(), at: now_state.mounted.join(", ") });
    }
    let mut created = CreatedImage { path: None };
    let file = open_target(plan, &mut created)?;
    clear_gpt_areas(&file, target, plan.disk_size)?;
    clock.lap("open target");

    let lake_part = plan.layout.lake();
    let restored = match &prepared {
        Prepared::Staged { staged, .. } => {
            obs.step(&format!("writing the lake partition: {} at byte {} (mke2fs -d)", human(lake_part.size), lake_part.offset));
            let restored = lake_partition::write(target, lake_part, staged)?;
            clock.lap("mke2fs");
            restored
        }
        Prepared::Image(img) => {
            obs.step(&format!(
                "copying the lake image {} ({}) to byte {} of {}",
                img.path.display(),
                human(img.bytes),
                lake_part.offset,
                target.display()
            ));
            let bar = obs.progress();
            crate::lake_copy::copy(&img.path, &file, target, lake_part.offset, plan.target.kind != TargetType::BlockDevice, bar.as_ref())?;
            file.sync_all().at(target)?;
            clock.lap("copy");
            obs.step(&format!("growing the lake to the partition ({}) and checking it (e2fsck, resize2fs)", human(lake_part.size)));
            crate::lake_copy::grow(target, lake_part.offset, lake_part.size)?;
            if plan.target.kind != TargetType::BlockDevice {
                // resize2fs sets an image file's length to the file system's end;
                // the backup GPT lives after it.
                file.set_len(plan.disk_size).at(target)?;
            }
            clock.lap("resize+fsck");
            if let Some(st) = &settings {
                obs.step("committing the install configuration's settings as generation 2");
                std::fs::create_dir_all(&plan.staging).at(&plan.staging)?;
                settings_commit = Some(crate::settings::commit_at(target, lake_part.offset, lake_part.size, &plan.staging, st)?);
                clock.lap("settings");
            }
            0
        }
    };

    obs.step("writing the ESP (FAT32): shim, MokManager, signed systemd-boot, loader.conf");
    let entry = Entry {
        title: plan.title.clone(),
        generation: match &prepared {
            Prepared::Staged { staged, .. } => staged.generation,
            Prepared::Image(img) => match &settings_commit {
                Some(c) => c.generation,
                None => img.manifest.as_ref().map_or(1, |m| m.generation),
            },
        },
        linux: kernel.path.clone(),
        initrd: initrd.path.clone(),
        cmdline: plan.cmdline.clone(),
        // Generation 1 is uncounted: there is nothing older to fall back to.
        tries: None,
    };
    // The profile's generation stays bootable beside the settings' one
    // (systemd-boot's `default lake-*` picks the highest version).
    let mut entries = vec![entry.clone()];
    if let Some(c) = &settings_commit {
        entries.insert(0, Entry { generation: c.base_generation, ..entry.clone() });
    }
    write_fat_partitions(plan, &file, &kernel, &initrd, &entries)?;
    clock.lap("fat");

    obs.step("writing the GPT");
    gpt_layout::write(&file, target, &plan.layout)?;
    file.sync_all().at(target)?;
    verify_gpt(&file, target, plan)?;
    if plan.target.kind == TargetType::BlockDevice {
        reread_partitions(&file, target, obs);
    }
    clock.lap("gpt+sync");

    let hardlink_check = match &prepared {
        Prepared::Staged { staged, probe_file, .. } => probe_file
            .as_ref()
            .and_then(|rel| debugfs_stat(target, plan.layout.lake().offset, &format!("/deploy/{}/root/{rel}", staged.generation))),
        Prepared::Image(_) => None,
    };
    if let Some(h) = hardlink_check.as_ref().filter(|h| h.links < 2) {
        return Err(Error::Invalid(format!(
            "{}: {} has {} link(s) in the written lake partition: mke2fs -d did not keep the checkout's hard links into objects/",
            target.display(),
            h.path,
            h.links
        )));
    }
    let image = if plan.target.kind == TargetType::BlockDevice {
        None
    } else {
        let md = std::fs::metadata(target).at(target)?;
        Some(ImageSize { apparent: md.len(), allocated: md.blocks() * 512 })
    };
    clock.lap("check");
    created.path = None;
    let lake = match prepared {
        Prepared::Staged { staged, scratch, .. } => {
            let r = lake_report(&staged, hardlink_check, restored);
            drop(scratch);
            r
        }
        Prepared::Image(img) => {
            let mut r = crate::lake_copy::report(img, target, lake_part.offset);
            if let Some(c) = &settings_commit {
                r.generation = c.generation;
            }
            r
        }
    };
    clock.lap("cleanup");
    Ok(Report {
        target: target.to_owned(),
        kind: plan.target.kind,
        disk_size: plan.disk_size,
        disk_guid: plan.layout.disk_guid.clone(),
        partitions: plan.layout.partitions.clone(),
        lake,
        kernel,
        initrd,
        entry: entry.path(),
        entry_text: entry.render(),
        cmdline: entry.options(),
        image,
        settings: settings_commit,
        timings: clock.timings,
        elapsed_seconds: clock.start.elapsed().as_secs_f64(),
    })
}

fn lake_report(s: &Staged, hardlink_check: Option<HardlinkCheck>, mtimes_restored: u64) -> LakeReport {
    LakeReport {
        uuid: s.uuid.clone(),
        commit: s.commit.clone(),
        generation: s.generation,
        reference: lake_posix::generation::POSIX_REF,
        files: s.import.files,
        dirs: s.import.dirs,
        others: s.import.others,
        bytes: s.import.bytes,
        staged_bytes: s.bytes,
        hardlink_check,
        mtimes_restored,
    }
}

fn open_target(plan: &Plan, created: &mut CreatedImage) -> Result<File> {
    let target = plan.target.path.as_path();
    match plan.target.kind {
        TargetType::NewImageFile => {
            let f = OpenOptions::new().read(true).write(true).create_new(true).open(target).at(target)?;
            created.path = Some(target.to_owned());
            f.set_len(plan.disk_size).at(target)?;
            Ok(f)
        }
        TargetType::ImageFile => {
            let f = OpenOptions::new().read(true).write(true).open(target).at(target)?;
            // Drop the old content at once (the image becomes sparse), then size it.
            f.set_len(0).at(target)?;
            f.set_len(plan.disk_size).at(target)?;
            Ok(f)
        }
        TargetType::BlockDevice => {
            // O_EXCL on a block device fails with EBUSY while the kernel uses it
            // (mounted, swap, RAID, LVM). Only a probe: mke2fs opens the device
            // exclusively itself, so no exclusive handle may be held meanwhile.
            drop(OpenOptions::new().read(true).write(true).custom_flags(libc::O_EXCL).open(target).map_err(|e| {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    Error::Invalid(format!("{} is busy (in use by the kernel: mounted, swap, RAID or LVM member?)", target.display()))
                } else {
                    Error::io(target, e)
                }
            })?);
            OpenOptions::new().read(true).write(true).open(target).at(target)
        }
    }
}

/// Zeroes the first MiB (MBR, primary GPT) and the last MiB (backup GPT), so an
/// interrupted install leaves no stale partition table behind.
fn clear_gpt_areas(file: &File, target: &Path, disk_size: u64) -> Result<()> {
    let tail = disk_size.saturating_sub(MIB).max(MIB);
    // On an image file, punch holes: the areas read as zeros without taking
    // space (a written MiB of zeros at each end made images 2 MiB larger).
    if file.metadata().at(target)?.is_file() {
        let punch = |off: u64, len: u64| {
            // SAFETY: valid descriptor owned by `file`.
            unsafe {
                libc::fallocate(
                    std::os::fd::AsRawFd::as_raw_fd(file),
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off as libc::off_t,
                    len as libc::off_t,
                ) == 0
            }
        };
        if punch(0, MIB) && (tail >= disk_size || punch(tail, disk_size - tail)) {
            return Ok(());
        }
    }
    let zeros = vec![0u8; MIB as usize];
    file.write_all_at(&zeros, 0).at(target)?;
    if tail < disk_size {
        file.write_all_at(&zeros[..(disk_size - tail) as usize], tail).at(target)?;
    }
    Ok(())
}

fn write_fat_partitions(plan: &Plan, file: &File, kernel: &BootFile, initrd: &BootFile, entries: &[Entry]) -> Result<()> {
    let target = plan.target.path.as_path();
    let esp = plan.layout.esp();
    let vol = FatVolume::format(file, target, esp.offset, esp.size, "ESP")?;
    for (src, esp_path, _) in plan.boot_chain.files() {
        vol.copy_in(src, esp_path)?;
    }
    vol.write_file(bls::LOADER_CONF_PATH, bls::loader_conf(plan.timeout).as_bytes())?;
    match plan.layout.get(Role::Boot) {
        None => {
            fill_boot(&vol, plan, kernel, initrd, entries)?;
            vol.close()
        }
        Some(b) => {
            vol.close()?;
            let bvol = FatVolume::format(file, target, b.offset, b.size, "BOOT")?;
            fill_boot(&bvol, plan, kernel, initrd, entries)?;
            bvol.close()
        }
    }
}

/// Kernel, initrd and the generations' entries, on the ESP or the XBOOTLDR partition.
fn fill_boot(vol: &FatVolume, plan: &Plan, kernel: &BootFile, initrd: &BootFile, entries: &[Entry]) -> Result<()> {
    vol.copy_in(&plan.kernel, &kernel.path)?;
    vol.copy_in(&plan.initrd, &initrd.path)?;
    for entry in entries {
        vol.write_file(&entry.path(), entry.render().as_bytes())?;
        // Read back what systemd-boot will read.
        if vol.read_file(&entry.path())? != entry.render().as_bytes() {
            return Err(Error::Invalid(format!(
                "{}: the loader entry read back differs from what was written",
                plan.target.path.display()
            )));
        }
    }
    Ok(())
}

fn verify_gpt(file: &File, target: &Path, plan: &Plan) -> Result<()> {
    let back =
        gpt_layout::read(file).ok_or_else(|| Error::Invalid(format!("{}: the GPT just written does not read back", target.display())))?;
    let ok = back.len() == plan.layout.partitions.len()
        && back.iter().zip(&plan.layout.partitions).all(|(b, p)| b.offset == p.offset && b.size == p.size && b.type_guid == p.type_guid);
    if !ok {
        return Err(Error::Invalid(format!("{}: the GPT read back differs from the layout written", target.display())));
    }
    Ok(())
}

/// Makes the kernel see the new partitions of a block device: BLKRRPART, then
/// `partx -u` (kernels built without GPT parsing, CONFIG_EFI_PARTITION=n, only
/// learn partitions from user space).
fn reread_partitions(file: &File, target: &Path, obs: &dyn Observer) {
    use std::os::fd::AsRawFd;
    const BLKRRPART: libc::c_ulong = 0x125f;
    // SAFETY: BLKRRPART takes no argument; the descriptor is valid. Failure is
    // fine (loop devices without partscan); partx below covers it.
    let _ = unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART as _) };
    let ok = Command::new("partx").arg("-u").arg(target).output().is_ok_and(|o| o.status.success());
    if !ok {
        obs.step(&format!(
            "note: could not make the kernel re-read the partition table of {}; run `partx -u {}` or `partprobe {}`",
            target.display(),
            target.display(),
            target.display()
        ));
    }
}

/// A regular file in the checkout that shares its inode with a loose object.
fn first_linked_file(root: &Path) -> Option<String> {
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(root.join(&rel)).ok()?.filter_map(|e| e.ok()).collect();
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let md = e.metadata().ok()?;
            let r = rel.join(e.file_name());
            if md.is_file() && md.nlink() >= 2 {
                return r.to_str().map(str::to_owned);
            }
            if md.is_dir() {
                stack.push(r);
            }
        }
    }
    None
}

/// Inode and link count of `path` in the ext4 at `offset` of `target` (debugfs).
pub fn debugfs_stat(target: &Path, offset: u64, path: &str) -> Option<HardlinkCheck> {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(format!("stat \"{path}\""))
        .arg(format!("{}?offset={offset}", target.display()))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Option<u64> {
        let rest = text.split(name).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    Some(HardlinkCheck { path: path.to_owned(), inode: field("Inode:")?, links: field("Links:")? })
}
