//! `lake-installer build --iso`: the install medium, a hybrid ISO 9660 image
//! made by xorriso. It boots under UEFI as a CD (El Torito) and, written to a
//! USB stick with `dd`, as a disk (a GPT whose EFI system partition is the same
//! El Torito image). It holds:
//!
//! - `/boot/efi.img`: the EFI boot image (FAT32 written with fatfs): the Secure
//!   Boot chain (shim as /EFI/BOOT/BOOTX64.EFI, MokManager, signed systemd-boot
//!   as /EFI/BOOT/grubx64.efi: lake_boot::chain), loader.conf, the entries and the kernel and initrd
//!   under /lake/<hash>/. The entry `lake-live.conf` boots generation 1 of the
//!   lake below as a live system (`lake.live=<label>`, read by lake-initramfs);
//!   with an unattended target, `lake-install.conf` (the default then) also
//!   passes `lake.install=auto lake.target=DEV lake.poweroff`.
//! - `/lake/lake.img`: the lake (ext4, see [`crate::lake_image`]), which the
//!   installer copies into the lake partition: nothing is imported again.
//! - `/lake/lake.json`: the [`Manifest`]: what the installer needs to know.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lake_boot::bls::{self, BootFile};
use serde::{Deserialize, Serialize};

use crate::build::Profile;
use crate::error::{Error, IoContext, Result};
use crate::esp::{FatOptions, FatVolume, FixedTime};
use crate::install::{Observer, Timing};
use crate::lake_image::{self, LakeImage};
use crate::lake_partition::{self, Staged};
use crate::repro::{self, Repro};
use crate::units::{align_up, human, MIB};

/// Paths on the ISO.
pub const EFI_IMAGE: &str = "boot/efi.img";
pub const LAKE_IMAGE: &str = "lake/lake.img";
pub const MANIFEST: &str = "lake/lake.json";
/// 2: the boot chain (`loaders`) replaced a single systemd-boot.
pub const MANIFEST_VERSION: u32 = 2;
/// Entry ids in the EFI image.
pub const LIVE_ENTRY: &str = "lake-live.conf";
pub const INSTALL_ENTRY: &str = "lake-install.conf";
/// Smallest FAT32 volume with 512-byte clusters (65525 clusters) plus its FATs, rounded up.
const MIN_EFI_IMAGE: u64 = 40 * MIB;

/// What the installer reads from `/lake/lake.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub version: u32,
    pub profile: String,
    /// ISO volume label (what lake-initramfs looks for with `lake.live=`).
    pub label: String,
    pub lake_uuid: String,
    pub commit: String,
    pub generation: u32,
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Bytes of file content in the generation.
    pub bytes: u64,
    /// Size of lake.img: the smallest lake partition it fits.
    pub image_bytes: u64,
    /// The installed system's kernel command line (after `lake.gen=1 rw`), menu timeout, title.
    pub cmdline: String,
    pub timeout: u32,
    pub title: String,
    /// The profile's ESP size for installs.
    pub esp_size: u64,
    /// Paths in efi.img of the boot chain (shim, MokManager, systemd-boot, as
    /// on an installed ESP), and of the kernel and initrd with their BLAKE3 ids.
    pub loaders: Vec<String>,
    pub kernel: ImageFile,
    pub initrd: ImageFile,
    pub source_date_epoch: Option<i64>,
}

/// A kernel or initrd in efi.img, as the installer's ESP stores it too.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageFile {
    /// `b3:<hex>` of the content.
    pub id: String,
    /// Path in efi.img (and on the installed ESP): /lake/<hash>/vmlinuz.
    pub path: String,
    pub size: u64,
}

impl From<&BootFile> for ImageFile {
    fn from(b: &BootFile) -> Self {
        ImageFile { id: b.id.clone(), path: b.path.clone(), size: b.size }
    }
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).at(path)?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: not a lake image manifest: {e}", path.display())))?;
        if m.version != MANIFEST_VERSION {
            return Err(Error::Invalid(format!(
                "{}: manifest version {} (this lake-installer reads version {MANIFEST_VERSION}); use the installer of the same release",
                path.display(),
                m.version
            )));
        }
        Ok(m)
    }
}

/// The ISO 9660 volume label of a profile: `LAKEOS_<NAME>`, upper case, at
/// most 16 characters (Joliet's limit, so both labels agree).
pub fn label_for(profile: &str) -> String {
    let name: String = profile.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    let mut l = format!("LAKEOS_{name}");
    l.truncate(16);
    l
}

/// Inputs of an ISO build.
pub struct IsoOptions<'a> {
    pub profile: &'a Profile,
    /// The profile file's bytes (part of the reproducible build's seed).
    pub profile_text: Vec<u8>,
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub boot_chain: lake_boot::chain::BootChain,
    pub out: PathBuf,
    /// `lake.target=` of an unattended install entry (the default entry then).
    pub unattended_target: Option<String>,
    pub staging: Option<PathBuf>,
    pub keep_staging: bool,
}

/// Objects of this build against the previous build of the same output
/// (`<out>.objects`, one id per line).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ObjectReuse {
    pub total: usize,
    pub new: usize,
    pub reused: usize,
    /// The previous build's list, when there was one.
    pub previous: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IsoReport {
    pub out: PathBuf,
    pub iso_bytes: u64,
    pub label: String,
    pub manifest: Manifest,
    pub lake_image: LakeImage,
    pub efi_image_bytes: u64,
    pub objects: ObjectReuse,
    pub unattended_target: Option<String>,
    /// Hex of the reproducible build's seed.
    pub seed: Option<String>,
    pub timings: Vec<Timing>,
    pub elapsed_seconds: f64,
}

/// Builds the ISO.
pub fn build(o: &IsoOptions, obs: &dyn Observer) -> Result<IsoReport> {
    let start = Instant::now();
    let mut last = start;
    let mut timings = Vec::new();
    let mut lap = |step: &'static str| {
        let now = Instant::now();
        timings.push(Timing { step, seconds: (now - last).as_secs_f64() });
        last = now;
    };
    o.boot_chain.check()?;
    if let Some(t) = &o.unattended_target {
        if !t.starts_with("/dev/") || t.contains(char::is_whitespace) {
            return Err(Error::Invalid(format!("--iso-unattended-target {t}: give a device path such as /dev/vda")));
        }
    }
    let epoch = repro::source_date_epoch()?;
    let label = label_for(&o.profile.name);
    let kernel = BootFile::of(&o.kernel, "vmlinuz")?;
    let initrd = BootFile::of(&o.initrd, "initrd")?;
    let sd = BootFile::of(&o.boot_chain.systemd_boot, "systemd-boot")?;
    let shim = BootFile::of(&o.boot_chain.shim, "shim")?;

    let rootfs = crate::rootfs::Rootfs::open(&o.rootfs)?;
    let need = crate::plan::staging_need(&rootfs) * 5 / 2;
    let (staging, why) = crate::plan::choose_staging_for(o.staging.as_deref(), need);
    std::fs::create_dir_all(&staging).at(&staging)?;
    let scratch =
        crate::install::Scratch { dir: staging.join(format!("lake-installer-iso-{}", lakefs::util::random_hex(6))), keep: o.keep_staging };
    std::fs::create_dir(&scratch.dir).at(&scratch.dir)?;
    std::fs::set_permissions(&scratch.dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).at(&scratch.dir)?;
    let rootfs_dir = rootfs.materialize(&scratch.dir.join("rootfs"))?;
    lap("prepare");

    obs.step(&format!("importing {} into a staging lake ({}: {why})", rootfs_dir.display(), scratch.dir.display()));
    let (import_bar, deploy_bar) = (obs.progress(), obs.progress());
    let message = format!("Lake OS {} (install medium)", o.profile.name);
    let mut staged =
        lake_partition::stage(&scratch.dir.join("lake"), &rootfs_dir, &message, epoch, import_bar.as_ref(), deploy_bar.as_ref())?;
    drop((import_bar, deploy_bar));
    lap("import+deploy");

    let r = epoch.map(|e| {
        Repro::new(
            e,
            &[
                &o.profile_text,
                staged.commit.as_bytes(),
                kernel.id.as_bytes(),
                initrd.id.as_bytes(),
                sd.id.as_bytes(),
                shim.id.as_bytes(),
                label.as_bytes(),
            ],
        )
    });
    if let Some(r) = &r {
        obs.step(&format!("SOURCE_DATE_EPOCH={}: canonical packs, times and ids (seed {})", r.epoch, &r.seed_hex()[..16]));
        let c = repro::canonicalize_lake(&staged.dir, r)?;
        staged.uuid = c.uuid;
        lap("canonicalize");
    }
    let objects = object_reuse(&staged, &o.out)?;

    obs.step(&format!("writing the lake image ({} of files)", human(staged.import.bytes)));
    let img_path = scratch.dir.join("lake.img");
    let image = lake_image::write(&staged, &img_path, r.as_ref())?;
    lap("lake image");

    let manifest = Manifest {
        version: MANIFEST_VERSION,
        profile: o.profile.name.clone(),
        label: label.clone(),
        lake_uuid: staged.uuid.clone(),
        commit: staged.commit.clone(),
        generation: staged.generation,
        files: staged.import.files,
        dirs: staged.import.dirs,
        others: staged.import.others,
        bytes: staged.import.bytes,
        image_bytes: image.bytes,
        cmdline: o.profile.boot.cmdline.clone(),
        timeout: o.profile.boot.timeout,
        title: bls::DEFAULT_TITLE.into(),
        esp_size: crate::units::parse_size(&o.profile.image.esp_size)?,
        loaders: o.boot_chain.files().iter().map(|f| f.1.to_owned()).collect(),
        kernel: (&kernel).into(),
        initrd: (&initrd).into(),
        source_date_epoch: epoch,
    };
    let manifest_path = scratch.dir.join("lake.json");
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?).at(&manifest_path)?;
    // The image holds the lake now; give the staging space back early.
    if !o.keep_staging {
        let _ = std::fs::remove_dir_all(&staged.dir);
    }

    obs.step("writing the EFI boot image (FAT32: shim, MokManager, systemd-boot, entries, kernel, initrd)");
    let efi_path = scratch.dir.join("efi.img");
    let efi_bytes = write_efi_image(&efi_path, o, &label, &kernel, &initrd, o.boot_chain.bytes()?, r.as_ref())?;
    lap("efi image");

    obs.step(&format!("writing {} (xorriso)", o.out.display()));
    xorriso(o, &label, &efi_path, &img_path, &manifest_path, r.as_ref())?;
    lap("xorriso");
    let iso_bytes = std::fs::metadata(&o.out).at(&o.out)?.len();
    write_object_list(&staged_ids_path(&o.out), &objects.1)?;
    Ok(IsoReport {
        out: o.out.clone(),
        iso_bytes,
        label,
        manifest,
        lake_image: image,
        efi_image_bytes: efi_bytes,
        objects: objects.0,
        unattended_target: o.unattended_target.clone(),
        seed: r.map(|r| r.seed_hex()),
        timings,
        elapsed_seconds: start.elapsed().as_secs_f64(),
    })
}

fn staged_ids_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".objects");
    PathBuf::from(s)
}

/// Ids of the staged lake's objects (packed ones, and loose ones by key:
/// content plus metadata), sorted, and how many the previous build had too.
fn object_reuse(staged: &Staged, out: &Path) -> Result<(ObjectReuse, Vec<String>)> {
    let lake = lakefs::Lake::open(&staged.dir).map_err(Error::lake(format!("opening {}", staged.dir.display())))?;
    let mut ids: Vec<String> = {
        let db = lake.db();
        let packed = db.all_locations().map_err(Error::lake("listing the staged objects"))?;
        let loose = db.all_loose().map_err(Error::lake("listing the staged loose objects"))?;
        packed.iter().map(|(id, _)| id.to_string()).chain(loose.iter().map(|(k, _, _)| format!("loose:{k}"))).collect()
    };
    ids.sort();
    ids.dedup();
    let list = staged_ids_path(out);
    let previous: Option<std::collections::HashSet<String>> =
        std::fs::read_to_string(&list).ok().map(|t| t.lines().map(str::to_owned).collect());
    let reused = previous.as_ref().map_or(0, |p| ids.iter().filter(|i| p.contains(*i)).count());
    Ok((ObjectReuse { total: ids.len(), new: ids.len() - reused, reused, previous: previous.map(|_| list) }, ids))
}

fn write_object_list(path: &Path, ids: &[String]) -> Result<()> {
    let mut text = ids.join("\n");
    text.push('\n');
    std::fs::write(path, text).at(path)
}

/// The FAT32 El Torito image: as small as its content allows (at least
/// [`MIN_EFI_IMAGE`], FAT32's minimum with 512-byte clusters).
fn write_efi_image(
    path: &Path,
    o: &IsoOptions,
    label: &str,
    kernel: &BootFile,
    initrd: &BootFile,
    loaders_size: u64,
    r: Option<&Repro>,
) -> Result<u64> {
    let size = align_up(loaders_size + kernel.size + initrd.size + 4 * MIB, MIB).max(MIN_EFI_IMAGE);
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).at(path)?;
    f.set_len(size).at(path)?;
    let fo = FatOptions { volume_id: r.map(|r| r.u32("efi volume id")), time: r.map(|r| FixedTime::leak(r.epoch)) };
    let vol = FatVolume::format_with(&f, path, 0, size, "LAKE-EFI", fo)?;
    for (src, esp_path, _) in o.boot_chain.files() {
        vol.copy_in(src, esp_path)?;
    }
    vol.copy_in(&o.kernel, &kernel.path)?;
    vol.copy_in(&o.initrd, &initrd.path)?;
    let cmdline = o.profile.boot.cmdline.trim();
    let entry = |title: &str, sort: &str, options: String| {
        format!(
            "title {title}\nsort-key {sort}\nlinux {}\ninitrd {}\noptions {}\n",
            kernel.path,
            initrd.path,
            options.split_whitespace().collect::<Vec<_>>().join(" ")
        )
    };
    let live =
        entry(&format!("Lake OS {} (live system and installer)", o.profile.name), "lake-1-live", format!("lake.live={label} {cmdline}"));
    vol.write_file(&format!("{}/{LIVE_ENTRY}", bls::ENTRIES_DIR), live.as_bytes())?;
    let default = match &o.unattended_target {
        Some(t) => {
            let install = entry(
                &format!("Install Lake OS {} (unattended, ERASES {t})", o.profile.name),
                "lake-0-install",
                format!("lake.live={label} lake.install=auto lake.target={t} lake.poweroff {cmdline}"),
            );
            vol.write_file(&format!("{}/{INSTALL_ENTRY}", bls::ENTRIES_DIR), install.as_bytes())?;
            INSTALL_ENTRY
        }
        None => LIVE_ENTRY,
    };
    let loader = format!("default {default}\ntimeout {}\neditor no\n", o.profile.boot.timeout);
    vol.write_file(bls::LOADER_CONF_PATH, loader.as_bytes())?;
    vol.close()?;
    Ok(size)
}

/// `YYYYMMDDhhmmsscc` of an epoch (xorriso's date format).
fn iso_date(epoch: i64) -> String {
    let (y, mo, d, h, mi, s) = crate::esp::civil(epoch);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}00")
}

fn xorriso(o: &IsoOptions, label: &str, efi: &Path, img: &Path, manifest: &Path, r: Option<&Repro>) -> Result<()> {
    let part = {
        let mut s = o.out.as_os_str().to_owned();
        s.push(".part");
        PathBuf::from(s)
    };
    let _ = std::fs::remove_file(&part);
    if let Some(d) = o.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).at(d)?;
    }
    let graft = |iso: &str, host: &Path| format!("{iso}={}", host.display());
    let mut cmd = Command::new("xorriso");
    cmd.args(["-as", "mkisofs", "-o"])
        .arg(&part)
        .args(["-V", label, "-iso-level", "3", "-J", "-joliet-long", "-r", "-graft-points"])
        .args(["-publisher", "Lake OS", "-A", &format!("Lake OS {} install medium", o.profile.name)])
        // El Torito EFI image, and the same image as the GPT's EFI system
        // partition, so the file boots as a CD and, on a USB stick, as a disk.
        .args(["-e", EFI_IMAGE, "-no-emul-boot", "-efi-boot-part", "--efi-boot-image"]);
    if let Some(r) = r {
        let d = iso_date(r.epoch);
        // Volume dates, the volume "uuid", every file's dates and (through
        // SOURCE_DATE_EPOCH) the GPT GUIDs follow the epoch.
        cmd.arg(format!("--modification-date={d}")).args(["--set_all_file_dates", &d]).env(repro::ENV, r.epoch.to_string());
    } else {
        cmd.env_remove(repro::ENV);
    }
    cmd.arg(graft(EFI_IMAGE, efi)).arg(graft(LAKE_IMAGE, img)).arg(graft(MANIFEST, manifest));
    let out = cmd.output().map_err(|e| Error::Spawn { program: "xorriso".into(), package: "xorriso", error: e })?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&part);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().filter(|l| !l.contains("UPDATE :")).collect();
        return Err(Error::Command {
            what: format!("writing {} with xorriso", o.out.display()),
            status: out.status.to_string(),
            stderr: tail[tail.len().saturating_sub(15)..].join("\n"),
        });
    }
    std::fs::rename(&part, &o.out).at(&o.out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_dates() {
        assert_eq!(label_for("minimal"), "LAKEOS_MINIMAL");
        assert_eq!(label_for("my-desktop-profile"), "LAKEOS_MY_DESKTO");
        assert_eq!(iso_date(1_700_000_000), "2023111422132000");
    }
}
