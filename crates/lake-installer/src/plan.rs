//! The install plan: what the target is now (size, partition table, file
//! systems, mounts), what will be written where, and whether that is allowed.
//! Built and shown before anything is touched.
#![allow(unsafe_code)] // probing the target: BLKSSZGET ioctl, statfs, a test setxattr (no safe wrappers)

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use lakefs::substrate::{self, TargetKind};
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::gpt_layout::{self, ExistingPartition, Layout, Role};
use crate::rootfs::{Rootfs, RootfsKind};
use crate::units::{human, MIB};
use lake_boot::bls::{DEFAULT_CMDLINE, DEFAULT_TITLE};
use lake_boot::chain::{BootChain, SECOND_STAGE_ESP_PATH};

/// What the user asked for (the CLI's options, parsed).
#[derive(Clone, Debug)]
pub struct InstallOptions {
    /// Block device or image file (created when missing).
    pub target: PathBuf,
    /// Directory or tar archive.
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Size of a new image file (or the new size of an existing one).
    pub size: Option<u64>,
    pub esp_size: u64,
    /// An XBOOTLDR /boot partition of this size for kernels, initrds and entries.
    pub boot_size: Option<u64>,
    /// Kernel command line after `lake.gen=N rw`.
    pub cmdline: String,
    /// systemd-boot menu timeout in seconds.
    pub timeout: u32,
    pub title: String,
    /// The signed boot loaders for the ESP (lake_boot::chain). None: those of
    /// `rootfs` (the system being installed), or of `/` with a lake image (the
    /// live system runs the medium's own root file system).
    pub boot_chain: Option<BootChain>,
    /// Where the lake is staged before it is written (needs room for a copy of
    /// the rootfs). None: /dev/shm when it is a tmpfs with room, else $TMPDIR or /var/tmp.
    pub staging: Option<PathBuf>,
    pub keep_staging: bool,
    /// Install this lake image (ext4, as `build --iso` makes: /lake/lake.img)
    /// instead of importing `rootfs`: copied into the lake partition, grown with
    /// resize2fs. `lake.json` beside it, when present, describes it.
    pub lake_image: Option<PathBuf>,
    /// The install configuration (docs/install-config.md): its settings become
    /// the installed lake's own commit and default generation.
    pub config: Option<PathBuf>,
    /// The root file system the configuration is checked against with a lake
    /// image (default `/`: the live system runs the medium's own root).
    pub config_root: Option<PathBuf>,
}

impl InstallOptions {
    /// Options with the documented defaults for everything but the four paths.
    pub fn new(target: PathBuf, rootfs: PathBuf, kernel: PathBuf, initrd: PathBuf) -> Self {
        InstallOptions {
            target,
            rootfs,
            kernel,
            initrd,
            size: None,
            esp_size: 512 * MIB,
            boot_size: None,
            cmdline: DEFAULT_CMDLINE.into(),
            timeout: 3,
            title: DEFAULT_TITLE.into(),
            boot_chain: None,
            staging: None,
            keep_staging: false,
            config: None,
            config_root: None,
            lake_image: None,
        }
    }
}

/// A lake image to install (`--lake-image`).
#[derive(Clone, Debug, Serialize)]
pub struct LakeImageSource {
    pub path: PathBuf,
    pub bytes: u64,
    /// `lake.json` beside the image, when there is one.
    pub manifest: Option<crate::iso::Manifest>,
}

impl LakeImageSource {
    pub fn open(path: &Path) -> Result<LakeImageSource> {
        let md = std::fs::metadata(path).at(path)?;
        if !md.is_file() {
            return Err(Error::Invalid(format!("--lake-image {} is not a regular file", path.display())));
        }
        let mut f = File::open(path).at(path)?;
        let mut magic = [0u8; 2];
        f.seek(SeekFrom::Start(1024 + 0x38)).at(path)?;
        std::io::Read::read_exact(&mut f, &mut magic).at(path)?;
        if magic != [0x53, 0xef] {
            return Err(Error::Invalid(format!(
                "--lake-image {} holds no ext4 file system (make one with `lake-installer build --iso`)",
                path.display()
            )));
        }
        let json = path.with_file_name(crate::iso::MANIFEST.rsplit('/').next().unwrap_or("lake.json"));
        let manifest = if json.is_file() { Some(crate::iso::Manifest::read(&json)?) } else { None };
        Ok(LakeImageSource { path: path.to_owned(), bytes: md.len(), manifest })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetType {
    BlockDevice,
    ImageFile,
    NewImageFile,
}

impl TargetType {
    fn describe(self) -> &'static str {
        match self {
            TargetType::BlockDevice => "block device",
            TargetType::ImageFile => "image file",
            TargetType::NewImageFile => "new image file",
        }
    }
}

/// The target as it is before the install.
#[derive(Clone, Debug, Serialize)]
pub struct TargetState {
    pub path: PathBuf,
    #[serde(rename = "type")]
    pub kind: TargetType,
    /// Bytes (None for a new image file).
    pub size: Option<u64>,
    /// What `blkid` finds at the start: a partition table or a file system.
    pub content: Option<String>,
    /// Partitions of an existing GPT, with what blkid finds in each.
    pub partitions: Vec<(ExistingPartition, Option<String>)>,
    /// Mount points of the device, its partitions, or loop devices backed by the image.
    pub mounted: Vec<String>,
}

fn device_size(path: &Path) -> Result<u64> {
    let mut f = File::open(path).at(path)?;
    f.seek(SeekFrom::End(0)).at(path)
}

/// The logical sector size of a block device (BLKSSZGET).
fn logical_sector_size(dev: &Path) -> Result<u64> {
    use std::os::fd::AsRawFd;
    const BLKSSZGET: libc::c_ulong = 0x1268;
    let f = File::open(dev).at(dev)?;
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer; the descriptor is valid.
    if unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET as _, &mut size) } != 0 {
        return Err(Error::io(dev, std::io::Error::last_os_error()));
    }
    Ok(u64::try_from(size).unwrap_or(0))
}

/// Loop devices backed by the image file `path` (`losetup -j`).
fn loop_devices_of(path: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("losetup").args(["--list", "--noheadings", "--output", "NAME", "--associated"]).arg(path).output() else {
        return vec![];
    };
    String::from_utf8_lossy(&out.stdout).lines().map(str::trim).filter(|l| !l.is_empty()).map(PathBuf::from).collect()
}

impl TargetState {
    pub fn inspect(target: &Path) -> Result<TargetState> {
        let kind = match substrate::target_kind(target).map_err(Error::lake(format!("inspecting {}", target.display())))? {
            TargetKind::BlockDevice => TargetType::BlockDevice,
            TargetKind::ImageFile => TargetType::ImageFile,
            TargetKind::New => TargetType::NewImageFile,
        };
        if kind == TargetType::NewImageFile {
            return Ok(TargetState { path: target.to_owned(), kind, size: None, content: None, partitions: vec![], mounted: vec![] });
        }
        let size = device_size(target)?;
        if kind == TargetType::BlockDevice {
            let ss = logical_sector_size(target)?;
            if ss != gpt_layout::SECTOR {
                return Err(Error::Invalid(format!(
                    "{} has {ss}-byte logical sectors; only 512-byte sectors are supported so far",
                    target.display()
                )));
            }
        }
        let content = substrate::probe(target, 0);
        let partitions = match File::open(target) {
            Ok(f) => gpt_layout::read(&f)
                .unwrap_or_default()
                .into_iter()
                .map(|p| {
                    let found = substrate::probe(target, p.offset);
                    (p, found)
                })
                .collect(),
            Err(_) => vec![],
        };
        let mut mounted = Vec::new();
        match kind {
            TargetType::BlockDevice => mounted.extend(substrate::mounted_at(target)),
            _ => {
                for l in loop_devices_of(target) {
                    for m in substrate::mounted_at(&l) {
                        mounted.push(format!("{m} (through {})", l.display()));
                    }
                }
            }
        }
        Ok(TargetState { path: target.to_owned(), kind, size: Some(size), content, partitions, mounted })
    }

    /// Why the target needs --yes, if it does.
    pub fn needs_yes(&self) -> Option<String> {
        if self.kind == TargetType::BlockDevice {
            return Some(format!("{} is a block device; everything on it will be destroyed", self.path.display()));
        }
        let article = |c: &str| if c.ends_with("partition table") { format!("a {c}") } else { c.to_owned() };
        let mut found: Vec<String> = self.content.iter().map(|c| format!("it holds {}", article(c))).collect();
        found.extend(self.partitions.iter().filter_map(|(p, c)| c.as_ref().map(|c| format!("partition {} holds {c}", p.number))));
        if found.is_empty() {
            None
        } else {
            Some(found.join("; "))
        }
    }
}

/// Everything the install will do.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub target: TargetState,
    /// Size of the disk after the install (an image is created or resized to it).
    pub disk_size: u64,
    pub layout: Layout,
    /// The root file system to import; None with a lake image.
    pub rootfs: Option<Rootfs>,
    pub lake_image: Option<LakeImageSource>,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// shim, MokManager and signed systemd-boot (lake_boot::chain).
    pub boot_chain: BootChain,
    pub cmdline: String,
    pub timeout: u32,
    pub title: String,
    pub staging: PathBuf,
    /// Why this staging directory.
    pub staging_reason: String,
    pub keep_staging: bool,
    /// The install configuration, parsed (checked against the rootfs in `install::run`).
    #[serde(skip)]
    pub config: Option<(PathBuf, crate::config::InstallConfig)>,
    #[serde(skip)]
    pub config_root: PathBuf,
}

/// Where staging goes when tmpfs has no room.
pub fn disk_staging() -> PathBuf {
    std::env::var_os("TMPDIR").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp"))
}

pub const SHM: &str = "/dev/shm";

/// Free bytes of the file system holding `dir`, and whether it is a tmpfs.
fn free_space(dir: &Path) -> Option<(u64, bool)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid C string, `st` a properly sized out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    Some((st.f_bavail as u64 * st.f_bsize as u64, st.f_type as i64 == TMPFS_MAGIC))
}

/// Bytes the staging directory will hold at most: the lake (about the rootfs
/// size) plus, for an archive, its extracted copy.
pub(crate) fn staging_need(rootfs: &Rootfs) -> u64 {
    match rootfs.kind {
        RootfsKind::Directory => {
            let mut total = 0u64;
            let mut stack = vec![rootfs.path.clone()];
            while let Some(d) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&d) else { continue };
                for e in rd.flatten() {
                    if let Ok(md) = e.metadata() {
                        total += md.len().max(4096);
                        if md.is_dir() {
                            stack.push(e.path());
                        }
                    }
                }
            }
            total
        }
        RootfsKind::Tar => {
            let size = std::fs::metadata(&rootfs.path).map_or(0, |m| m.len());
            let plain = rootfs.path.extension().is_some_and(|e| e == "tar");
            // Compressed archives: assume 3:1.
            size * if plain { 2 } else { 6 }
        }
    }
}

/// The explicit directory, else /dev/shm when it is a tmpfs with room for
/// twice the estimate (staging in memory avoids syncing a disk file system
/// for data that is thrown away), else [`disk_staging`].
fn choose_staging(explicit: Option<&Path>, rootfs: &Rootfs) -> (PathBuf, String) {
    choose_staging_for(explicit, staging_need(rootfs))
}

/// [`choose_staging`] for `need` bytes of staged data.
pub(crate) fn choose_staging_for(explicit: Option<&Path>, need: u64) -> (PathBuf, String) {
    if let Some(d) = explicit {
        return (d.to_owned(), "--staging".into());
    }
    match free_space(Path::new(SHM)) {
        Some((free, true)) if free > 2 * need + 256 * MIB && user_xattrs_work(Path::new(SHM)) => {
            (PathBuf::from(SHM), format!("tmpfs with {} free for about {}", human(free), human(need)))
        }
        _ => (disk_staging(), format!("about {}; {SHM} is no tmpfs with room", human(need))),
    }
}

/// Whether files in `dir` take `user.*` extended attributes (tmpfs only since
/// Linux 6.6); the staged lake's loose objects carry the rootfs's xattrs.
fn user_xattrs_work(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = dir.join(format!(".lake-installer-xattr-{}", lakefs::util::random_hex(6)));
    if std::fs::write(&p, b"").is_err() {
        return false;
    }
    let ok = std::ffi::CString::new(p.as_os_str().as_bytes()).is_ok_and(|c| {
        // SAFETY: valid C strings and a 1-byte value buffer.
        unsafe { libc::setxattr(c.as_ptr(), c"user.lake-probe".as_ptr(), b"1".as_ptr().cast(), 1, 0) == 0 }
    });
    let _ = std::fs::remove_file(&p);
    ok
}

fn need_file(path: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::Invalid(format!("{what} {} is not a regular file", path.display()))),
        Err(e) => Err(Error::Invalid(format!("{what} {}: {e}", path.display()))),
    }
}

impl Plan {
    /// Inspects the target and the inputs and lays out the disk; touches nothing.
    pub fn new(o: &InstallOptions) -> Result<Plan> {
        let target = TargetState::inspect(&o.target)?;
        let disk_size = match (target.kind, o.size, target.size) {
            (TargetType::NewImageFile, None, _) => return Err(Error::SizeRequired { target: o.target.clone() }),
            (TargetType::NewImageFile | TargetType::ImageFile, Some(s), _) => s,
            (TargetType::BlockDevice, Some(s), Some(have)) if s != have => {
                return Err(Error::Invalid(format!(
                    "--size {} does not match block device {} ({}); a device cannot be resized, drop --size",
                    human(s),
                    o.target.display(),
                    human(have)
                )))
            }
            (_, _, Some(have)) if have > 0 => have,
            _ => return Err(Error::SizeRequired { target: o.target.clone() }),
        };
        let layout = Layout::compute(disk_size, o.esp_size, o.boot_size)?;
        need_file(&o.kernel, "--kernel")?;
        need_file(&o.initrd, "--initrd")?;
        let boot_chain = match &o.boot_chain {
            Some(c) => c.clone(),
            None if o.lake_image.is_some() => BootChain::in_root(Path::new("/")),
            None if o.rootfs.is_dir() => BootChain::in_root(&o.rootfs),
            None => {
                return Err(Error::Invalid(format!(
                    "--rootfs {} is an archive: give --loader-root DIR, a root file system holding the signed boot loaders \
                     (shim-signed, shim-helpers-amd64-signed, systemd-boot-efi-amd64-signed)",
                    o.rootfs.display()
                )))
            }
        };
        boot_chain.check()?;
        if o.cmdline.contains('\n') || o.title.contains('\n') {
            return Err(Error::Invalid("--cmdline and --title must be one line".into()));
        }
        let (rootfs, lake_image, staging, staging_reason) = match &o.lake_image {
            Some(img) => {
                let src = LakeImageSource::open(img)?;
                let lake = layout.lake();
                if lake.size < src.bytes {
                    let need = disk_size - lake.size + src.bytes;
                    return Err(Error::Invalid(format!(
                        "the lake partition ({}) would be smaller than the lake image {} ({}); the disk needs at least {}",
                        human(lake.size),
                        img.display(),
                        human(src.bytes),
                        human(crate::units::align_up(need + 64 * MIB, 256 * MIB))
                    )));
                }
                (None, Some(src), disk_staging(), "not used: the lake image is copied as is".to_string())
            }
            None => {
                let rootfs = Rootfs::open(&o.rootfs)?;
                let (staging, why) = choose_staging(o.staging.as_deref(), &rootfs);
                (Some(rootfs), None, staging, why)
            }
        };
        Ok(Plan {
            target,
            disk_size,
            layout,
            rootfs,
            lake_image,
            kernel: o.kernel.clone(),
            initrd: o.initrd.clone(),
            boot_chain,
            cmdline: o.cmdline.clone(),
            timeout: o.timeout,
            title: o.title.clone(),
            staging,
            staging_reason,
            keep_staging: o.keep_staging,
            config_root: o.config_root.clone().unwrap_or_else(|| PathBuf::from("/")),
            config: match &o.config {
                None => None,
                Some(p) => Some((p.clone(), crate::config::InstallConfig::load(p)?)),
            },
        })
    }

    /// Refuses a mounted target always, and a block device or a target holding
    /// a partition table or file system unless `yes`.
    pub fn check_allowed(&self, yes: bool) -> Result<()> {
        if !self.target.mounted.is_empty() {
            return Err(Error::Mounted { target: self.target.path.clone(), at: self.target.mounted.join(", ") });
        }
        match self.target.needs_yes() {
            Some(reason) if !yes => Err(Error::NeedsYes { target: self.target.path.clone(), reason }),
            _ => Ok(()),
        }
    }

    /// The FAT partition that holds kernels, initrds and entries.
    pub fn boot_role(&self) -> Role {
        if self.layout.get(Role::Boot).is_some() {
            Role::Boot
        } else {
            Role::Esp
        }
    }

    /// The plan as shown to the user before the install.
    pub fn render(&self) -> String {
        let t = &self.target;
        let mut s = String::new();
        let _ = writeln!(s, "Target: {} ({})", t.path.display(), t.kind.describe());
        match t.size {
            Some(size) => {
                let _ = writeln!(s, "  now: {} ({size} bytes)", human(size));
            }
            None => {
                let _ = writeln!(s, "  now: does not exist; will be created (sparse)");
            }
        }
        if t.kind != TargetType::NewImageFile {
            let _ = writeln!(s, "  holds: {}", t.content.as_deref().unwrap_or("no partition table or file system found"));
            for (p, c) in &t.partitions {
                let _ = writeln!(
                    s,
                    "    partition {} '{}' at {} ({}): {}",
                    p.number,
                    p.name,
                    p.offset,
                    human(p.size),
                    c.as_deref().unwrap_or("no file system found")
                );
            }
            let _ = writeln!(s, "  mounted: {}", if t.mounted.is_empty() { "no".to_string() } else { t.mounted.join(", ") });
        }
        if t.size.is_some_and(|x| x != self.disk_size) {
            let _ = writeln!(s, "  will be resized to {} ({} bytes)", human(self.disk_size), self.disk_size);
        } else if t.size.is_none() {
            let _ = writeln!(s, "  size: {} ({} bytes)", human(self.disk_size), self.disk_size);
        }
        let _ = writeln!(s, "GPT (protective MBR, disk GUID {}):", self.layout.disk_guid);
        let _ = writeln!(s, "  {:>2}  {:<5} {:>14} {:>14} {:>10}  type", "#", "name", "offset", "end", "size");
        for p in &self.layout.partitions {
            let ty = match p.role {
                Role::Esp => "EFI System, FAT32",
                Role::Boot => "XBOOTLDR, FAT32",
                Role::Lake => "Lake OS, ext4 lake",
            };
            let _ = writeln!(
                s,
                "  {:>2}  {:<5} {:>14} {:>14} {:>10}  {ty} {}",
                p.number,
                p.name,
                p.offset,
                p.end(),
                human(p.size),
                p.type_guid
            );
        }
        let bootp = if self.boot_role() == Role::Boot { "boot" } else { "ESP" };
        let _ = writeln!(s, "ESP: the Secure Boot chain (shim -> signed systemd-boot as {SECOND_STAGE_ESP_PATH}):");
        for (src, esp, _) in self.boot_chain.files() {
            let _ = writeln!(s, "  {esp} <- {}", src.display());
        }
        let _ = writeln!(s, "  loader.conf: default lake-*, timeout {}, editor no", self.timeout);
        let _ = writeln!(
            s,
            "{bootp}: kernel {} and initrd {} under /lake/<hash>/, entry /loader/entries/lake-1.conf",
            self.kernel.display(),
            self.initrd.display()
        );
        let _ = writeln!(s, "  options lake.gen=1 rw {}", self.cmdline);
        match (&self.rootfs, &self.lake_image) {
            (_, Some(img)) => {
                let what = img.manifest.as_ref().map_or(String::new(), |m| {
                    format!(" (profile {}, generation {} = commit {}, {} files)", m.profile, m.generation, m.commit, m.files)
                });
                let _ = writeln!(
                    s,
                    "lake: copy the lake image {} ({}){what} into the lake partition, then grow it to the partition (resize2fs) and check it (e2fsck)",
                    img.path.display(),
                    human(img.bytes)
                );
            }
            (Some(rootfs), None) => {
                let _ = writeln!(
                    s,
                    "lake: import {} {} into posix/main (loose objects), deploy as pinned generation 1; staged in {} ({})",
                    match rootfs.kind {
                        RootfsKind::Directory => "directory",
                        RootfsKind::Tar => "tar archive",
                    },
                    rootfs.path.display(),
                    self.staging.display(),
                    self.staging_reason
                );
            }
            (None, None) => {}
        }
        if let Some(why) = t.needs_yes() {
            let _ = writeln!(s, "DESTROYS what is on the target: {why}");
        }
        s
    }
}
