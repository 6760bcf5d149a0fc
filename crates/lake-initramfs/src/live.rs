//! Live mode: `lake.live` (any medium) or `lake.live=LABEL` on the kernel
//! command line, as the install medium's boot entries pass it. The system runs
//! from the medium instead of a lake partition:
//!
//! 1. find the medium: a block device (a CD drive such as sr0, or a USB disk
//!    holding the hybrid ISO) whose ISO 9660 primary volume descriptor carries
//!    the label, read directly (no blkid or udev record needed);
//! 2. mount it read-only (iso9660) on [`MEDIUM_MOUNT`];
//! 3. attach `/lake/lake.img` to a loop device read-only (`losetup -r`) and
//!    mount its ext4 on /run/lake with `ro,noload` (no journal replay);
//! 4. mount overlay(lower = the default generation's checkout, upper and work
//!    on a tmpfs at [`LIVE_RW`]) on /sysroot, and bind the lake on /sysroot/lake;
//! 5. record what was booted in [`LIVE_FILE`] (the installer reads it to
//!    refuse the boot medium as a target).
//!
//! `/run/lakefs/booted-generation` is not written: the system did not boot
//! from a lake partition, so the apt/dpkg hooks leave the read-only lake alone.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};

/// Where the medium is mounted (kept across switch-root with the rest of /run).
pub const MEDIUM_MOUNT: &str = "/run/lake-medium";
/// The tmpfs holding the live root's overlay upper and work directories.
pub const LIVE_RW: &str = "/run/lake-live";
/// `key=value` lines: medium, disk, label, image, loop, generation.
pub const LIVE_FILE: &str = "/run/lakefs/live";
/// The lake image on the medium.
pub const IMAGE: &str = "lake/lake.img";
/// ISO 9660: the primary volume descriptor is sector 16 (2048-byte sectors).
const PVD_OFFSET: u64 = 16 * 2048;

/// `lake.live[=LABEL]` from the kernel command line; `Some(None)`: any label.
pub fn options(cmdline: &str) -> Option<Option<String>> {
    let mut found = None;
    for w in cmdline.split_whitespace() {
        if w == "lake.live" {
            found = Some(None);
        } else if let Some(l) = w.strip_prefix("lake.live=") {
            found = Some(if l.is_empty() { None } else { Some(l.to_owned()) });
        }
    }
    found
}

/// The volume label of an ISO 9660 file system in `dev` (a block device or
/// image file), or None when there is none (or it cannot be read: a CD drive
/// without a disc).
pub fn iso_label(dev: &Path) -> Option<String> {
    let f = File::open(dev).ok()?;
    let mut pvd = [0u8; 2048];
    f.read_exact_at(&mut pvd, PVD_OFFSET).ok()?;
    // Type 1 (primary), "CD001", version 1.
    if pvd[0] != 1 || &pvd[1..6] != b"CD001" || pvd[6] != 1 {
        return None;
    }
    Some(String::from_utf8_lossy(&pvd[40..72]).trim_end_matches([' ', '\0']).to_owned())
}

/// A block device holding the install medium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Medium {
    /// The device node, e.g. /dev/sr0 or /dev/sda.
    pub node: PathBuf,
    /// Kernel name of the whole disk it is on (itself, or a partition's disk).
    pub disk: String,
    pub label: String,
}

/// The disk a block device belongs to: itself, or for a partition its parent
/// in sysfs (/sys/class/block/sda1 -> .../block/sda/sda1).
pub fn disk_of(sys_class_block: &Path, name: &str) -> String {
    let Ok(real) = std::fs::canonicalize(sys_class_block.join(name)) else { return name.to_owned() };
    if real.join("partition").exists() {
        if let Some(p) = real.parent().and_then(|p| p.file_name()) {
            return p.to_string_lossy().into_owned();
        }
    }
    name.to_owned()
}

/// Block devices (whole disks first, then partitions; loop, ram and zram
/// devices skipped) with an ISO 9660 file system labelled `label` (any label
/// when None).
pub fn find_media(sys_class_block: &Path, dev: &Path, label: Option<&str>) -> Vec<Medium> {
    let mut names: Vec<(bool, String)> = std::fs::read_dir(sys_class_block)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !(n.starts_with("loop") || n.starts_with("ram") || n.starts_with("zram")))
                .map(|n| (sys_class_block.join(&n).join("partition").exists(), n))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .filter_map(|(_, name)| {
            let node = dev.join(&name);
            let l = iso_label(&node)?;
            if label.is_some_and(|want| want != l) {
                return None;
            }
            Some(Medium { disk: disk_of(sys_class_block, &name), node, label: l })
        })
        .collect()
}

/// What went wrong, and at which step.
#[derive(Debug)]
pub struct LiveError {
    pub step: String,
    pub detail: String,
}

impl fmt::Display for LiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "live boot: {}: {}", self.step, self.detail)
    }
}

impl std::error::Error for LiveError {}

fn fail<E: fmt::Display>(step: impl Into<String>) -> impl FnOnce(E) -> LiveError {
    let step = step.into();
    move |e| LiveError { step, detail: e.to_string() }
}

/// The `LIVE_FILE` text.
pub fn record(m: &Medium, image: &Path, loopdev: &str, generation: u32) -> String {
    format!(
        "medium={}\ndisk={}\nlabel={}\nimage={}\nloop={loopdev}\ngeneration={generation}\n",
        m.node.display(),
        m.disk,
        m.label,
        image.display()
    )
}

/// Waits up to `timeout` for the medium (USB disks and CD drives appear a
/// few seconds into the boot).
pub fn wait_for_medium(label: Option<&str>, timeout: Duration) -> Result<Medium, LiveError> {
    let deadline = Instant::now() + timeout;
    let sys = Path::new("/sys/class/block");
    loop {
        if let Some(m) = find_media(sys, Path::new("/dev"), label).into_iter().next() {
            return Ok(m);
        }
        if Instant::now() >= deadline {
            let seen = crate::block_devices(sys);
            return Err(LiveError {
                step: "finding the install medium".into(),
                detail: format!(
                    "no ISO 9660 file system {} within {} s (block devices: {}). Is the medium attached? A USB stick \
                     needs a moment: boot with lake.timeout=120; or pick another entry.",
                    label.map_or("at all".to_string(), |l| format!("labelled '{l}'")),
                    timeout.as_secs(),
                    if seen.is_empty() { "none".into() } else { seen.join(" ") }
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Loads a module, if modprobe is there (the kernel would ask for isofs
/// itself; loop's control device needs the module).
fn modprobe(name: &str) {
    let _ = Command::new("modprobe").arg("-q").arg(name).status();
}

/// Mounts the medium, its lake image and the live root on `sysroot`; returns
/// (medium, loop device, generation, commit) for the message.
pub fn assemble(
    label: Option<&str>,
    timeout: Duration,
    lake_mount: &Path,
    sysroot: &Path,
) -> Result<(Medium, String, u32, String), LiveError> {
    modprobe("isofs");
    modprobe("loop");
    let m = wait_for_medium(label, timeout)?;
    let medium = Path::new(MEDIUM_MOUNT);
    std::fs::create_dir_all(medium).map_err(fail(format!("creating {MEDIUM_MOUNT}")))?;
    mount(Some(&m.node), medium, Some("iso9660"), MsFlags::MS_RDONLY, None::<&str>)
        .map_err(fail(format!("mounting {} (iso9660, read-only) on {MEDIUM_MOUNT}", m.node.display())))?;
    let image = medium.join(IMAGE);
    if !image.is_file() {
        return Err(LiveError {
            step: format!("looking for /{IMAGE} on {}", m.node.display()),
            detail: format!("the medium labelled '{}' holds no lake image; it is not a Lake OS install medium", m.label),
        });
    }
    let out = Command::new("losetup")
        .args(["--find", "--show", "--read-only"])
        .arg(&image)
        .output()
        .map_err(fail("running losetup (util-linux)"))?;
    if !out.status.success() {
        return Err(LiveError {
            step: format!("attaching {} to a loop device", image.display()),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let loopdev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::create_dir_all(lake_mount).map_err(fail(format!("creating {}", lake_mount.display())))?;
    mount(Some(loopdev.as_str()), lake_mount, Some("ext4"), MsFlags::MS_RDONLY | MsFlags::MS_NOATIME, Some("noload"))
        .map_err(fail(format!("mounting the lake image ({loopdev}, ext4, read-only) on {}", lake_mount.display())))?;
    let lake = lakefs::Lake::open(lake_mount).map_err(fail(format!("opening the lake in {}", image.display())))?;
    let n = lake_posix::generation::default(&lake)
        .map_err(fail("reading the default generation"))?
        .ok_or_else(|| LiveError { step: "reading the default generation".into(), detail: "the medium's lake has none".into() })?;
    let commit = lake_posix::generation::list(&lake)
        .map_err(fail("listing generations"))?
        .into_iter()
        .find(|g| g.number == n)
        .map(|g| g.commit.short())
        .unwrap_or_default();
    drop(lake);
    let lower = lake_posix::generation::root_dir(lake_mount, n);
    let rw = Path::new(LIVE_RW);
    std::fs::create_dir_all(rw).map_err(fail(format!("creating {LIVE_RW}")))?;
    mount(Some("tmpfs"), rw, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("mode=0755"))
        .map_err(fail(format!("mounting a tmpfs on {LIVE_RW}")))?;
    let (upper, work) = (rw.join("upper"), rw.join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(fail(format!("creating {}", d.display())))?;
    }
    std::fs::create_dir_all(sysroot).map_err(fail(format!("creating {}", sysroot.display())))?;
    let options = crate::overlay_options(&lower, &upper, &work);
    mount(Some("overlay"), sysroot, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .map_err(fail(format!("mounting overlay on {} ({options})", sysroot.display())))?;
    let in_root = sysroot.join("lake");
    std::fs::create_dir_all(&in_root).map_err(fail(format!("creating {}", in_root.display())))?;
    mount(Some(lake_mount), &in_root, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(fail(format!(
        "bind-mounting {} on {}",
        lake_mount.display(),
        in_root.display()
    )))?;
    let rec = Path::new(LIVE_FILE);
    if let Some(d) = rec.parent() {
        std::fs::create_dir_all(d).map_err(fail(format!("creating {}", d.display())))?;
    }
    std::fs::write(rec, record(&m, &image, &loopdev, n)).map_err(fail(format!("writing {LIVE_FILE}")))?;
    Ok((m, loopdev, n, commit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn live_option() {
        assert_eq!(options("quiet lake.live=LAKEOS_MINIMAL console=ttyS0"), Some(Some("LAKEOS_MINIMAL".into())));
        assert_eq!(options("lake.live"), Some(None));
        assert_eq!(options("lake.gen=1 lake.liveness=2"), None);
    }

    fn iso_file(path: &Path, label: &str) {
        let mut b = vec![0u8; (PVD_OFFSET + 2048) as usize];
        let p = PVD_OFFSET as usize;
        b[p] = 1;
        b[p + 1..p + 6].copy_from_slice(b"CD001");
        b[p + 6] = 1;
        let mut l = [b' '; 32];
        l[..label.len()].copy_from_slice(label.as_bytes());
        b[p + 40..p + 72].copy_from_slice(&l);
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn finds_the_medium_by_its_iso9660_label() {
        let t = TestDir::new("live-media");
        let (sys, dev) = (t.path().join("sys"), t.path().join("dev"));
        std::fs::create_dir_all(&dev).unwrap();
        // sda: the hybrid ISO on a USB disk, sda2 its EFI partition; sr0: a CD
        // drive without a disc; loop0: an ISO image attached (skipped); vda: a blank disk.
        for (name, part_of) in [("sda", None), ("sda2", Some("sda")), ("sr0", None), ("loop0", None), ("vda", None)] {
            let d = match part_of {
                Some(disk) => sys.join("devices/x/block").join(disk).join(name),
                None => sys.join("devices/x/block").join(name),
            };
            std::fs::create_dir_all(&d).unwrap();
            if part_of.is_some() {
                std::fs::write(d.join("partition"), "2\n").unwrap();
            }
            std::fs::create_dir_all(sys.join("class/block")).unwrap();
            std::os::unix::fs::symlink(&d, sys.join("class/block").join(name)).unwrap();
        }
        iso_file(&dev.join("sda"), "LAKEOS_MINIMAL");
        iso_file(&dev.join("loop0"), "LAKEOS_MINIMAL");
        std::fs::write(dev.join("sda2"), vec![0u8; 40000]).unwrap();
        std::fs::write(dev.join("vda"), vec![0u8; 40000]).unwrap();
        let class = sys.join("class/block");
        let want = Medium { node: dev.join("sda"), disk: "sda".into(), label: "LAKEOS_MINIMAL".into() };
        assert_eq!(find_media(&class, &dev, Some("LAKEOS_MINIMAL")), vec![want.clone()]);
        assert_eq!(find_media(&class, &dev, None), vec![want.clone()]);
        assert!(find_media(&class, &dev, Some("LAKEOS_OTHER")).is_empty());
        assert_eq!(disk_of(&class, "sda2"), "sda");
        assert_eq!(iso_label(&dev.join("vda")), None);
        let r = record(&want, Path::new("/run/lake-medium/lake/lake.img"), "/dev/loop0", 1);
        assert!(r.contains("medium=") && r.contains("disk=sda\n") && r.contains("loop=/dev/loop0\n"), "{r}");
    }
}
