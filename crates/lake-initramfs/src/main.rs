//! lake-initramfs: run by `lake-initramfs.service` in the initrd. Finds the lake
//! partition, checks and mounts it on /run/lake, mounts the chosen generation's
//! overlay on /sysroot, checks it has an init, bind-mounts the persistent /home
//! and mounts the ESP on /sysroot/efi; systemd then switches root. On any
//! failure it says what is wrong and what to run, and exits non-zero, which
//! sends the initrd to the emergency shell (OnFailure=emergency.target) -
//! except on a boot-counted try, where it reboots so that systemd-boot tries
//! again or falls back to the previous generation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lake_initramfs::{block_devices, boot_count, esp, find_candidates, home, init_check, overlay_options, parse_cmdline};
use lake_posix::generation;
use nix::mount::{mount, MsFlags};

const LAKE_MOUNT: &str = "/run/lake";
const SYSROOT: &str = "/sysroot";
/// Where the ESP's device node is recorded for the booted system.
const ESP_DEVICE_FILE: &str = "/run/lakefs/esp-device";
/// How long to wait for udev to record the lake disk's other partitions.
const ESP_WAIT: Duration = Duration::from_secs(10);
/// Pause before a boot-counted failure reboots, so the message can be read.
const REBOOT_DELAY: Duration = Duration::from_secs(5);

fn warn(msg: &str) {
    eprintln!("lake-initramfs: WARNING: {msg}");
}

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "lake-initramfs: early boot of Lake OS (runs in the initrd as lake-initramfs.service).\n\n\
             Finds the lake partition (GPT type {}, or label 'lake'), runs e2fsck -p on it, mounts it on\n\
             {LAKE_MOUNT}, and mounts overlay(lower = deploy/N/root, upper = deploy/N/upper) on {SYSROOT}.\n\n\
             Kernel command line: lake.gen=N (generation; default: the lake's default),\n\
             root=... without lake.* options: do nothing (systemd mounts that root),\n\
             lake.device=/dev/XXX (skip the search), lake.timeout=SECONDS (wait for the disk, default 30).\n\
             lake.live[=LABEL]: run from the install medium (ISO 9660 labelled LABEL): its /lake/lake.img\n\
             read-only, the default generation under a tmpfs overlay (lake.timeout default 60).\n\n\
             Then: the root must have an init (/usr/lib/systemd/systemd or /sbin/init); <lake>/state/home is\n\
             bind-mounted on {SYSROOT}/home (created from the generation's /home the first time); the ESP on\n\
             the lake's disk (GPT type {}) is mounted on {SYSROOT}/efi (recorded in {ESP_DEVICE_FILE}).\n\
             On failure: the emergency shell, or on a boot-counted try (EFI variable LoaderBootCountPath)\n\
             a reboot after {} s, so the boot loader tries again or falls back to the previous entry.",
            lakefs::substrate::PARTITION_TYPE_GUID,
            esp::ESP_TYPE_GUID,
            REBOOT_DELAY.as_secs()
        );
        return;
    }
    match run() {
        Ok(msg) => println!("lake-initramfs: {msg}"),
        Err(e) => {
            eprintln!("\nlake-initramfs: ERROR: {e:#}\n");
            if let Some(entry) = counted_boot() {
                reboot_for_fallback(&entry);
            }
            std::process::exit(1);
        }
    }
}

/// The boot loader entry being tried when this boot is counted (efivarfs is
/// mounted by systemd in the initrd; mounted here if it is not).
fn counted_boot() -> Option<String> {
    let efivars = Path::new(boot_count::EFIVARS);
    if !Path::new("/sys/firmware/efi").is_dir() {
        return None; // not booted by UEFI: no boot loader to fall back with
    }
    let empty = std::fs::read_dir(efivars).map(|mut d| d.next().is_none()).unwrap_or(true);
    if empty {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(e) = mount(Some("efivarfs"), efivars, Some("efivarfs"), flags, None::<&str>) {
            warn(&format!("cannot mount efivarfs on {}: {e}; treating this boot as not counted", efivars.display()));
            return None;
        }
    }
    boot_count::counted_entry(efivars)
}

/// A failed boot-counted try: reboot, so systemd-boot counts the try and
/// boots the entry again or, with no tries left, the previous generation.
fn reboot_for_fallback(entry: &str) -> ! {
    let name = entry.rsplit(['\\', '/']).next().unwrap_or(entry);
    eprintln!(
        "lake-initramfs: this boot is a boot-counted try of {}: rebooting in {} s so the boot loader can try it again \
         or fall back to the previous generation",
        if name.is_empty() { "an entry" } else { name },
        REBOOT_DELAY.as_secs()
    );
    std::thread::sleep(REBOOT_DELAY);
    nix::unistd::sync();
    let e = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT).unwrap_err();
    eprintln!("lake-initramfs: ERROR: reboot failed: {e}; going to the emergency shell instead");
    std::process::exit(1);
}

fn find_device(explicit: Option<PathBuf>, timeout: u64) -> Result<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        if let Some(d) = &explicit {
            if d.exists() {
                return Ok(d.clone());
            }
        } else if let Some(d) = find_candidates(Path::new("/dev"), Path::new("/sys/class/block"), Path::new("/run/udev/data")).first() {
            return Ok(d.clone());
        }
        if Instant::now() >= deadline {
            let seen = block_devices(Path::new("/sys/class/block")).join(" ");
            match explicit {
                Some(d) => bail!(
                    "lake.device={} did not appear within {timeout} s (block devices: {seen}). Fix the kernel command line \
                     (press 'e' in the boot menu) or check the disk.",
                    d.display()
                ),
                None => bail!(
                    "no lake partition found within {timeout} s (looked for GPT type {} and the label 'lake'; block devices: {}). \
                     If the disk is slow, boot with lake.timeout=90; if it is there under another name, boot with lake.device=/dev/XXX; \
                     if it was never installed, run lake-installer.",
                    lakefs::substrate::PARTITION_TYPE_GUID,
                    if seen.is_empty() { "none" } else { &seen }
                ),
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fsck(dev: &Path) -> Result<()> {
    let e2fsck = ["/usr/sbin/e2fsck", "/sbin/e2fsck"].into_iter().map(Path::new).find(|p| p.exists());
    let Some(e2fsck) = e2fsck else { return Ok(()) };
    let st =
        std::process::Command::new(e2fsck).arg("-p").arg(dev).status().with_context(|| format!("running e2fsck on {}", dev.display()))?;
    match st.code() {
        Some(0..=3) => Ok(()),
        _ => bail!(
            "the lake's ext4 file system on {d} has errors that e2fsck -p could not repair ({st}). \
             In this shell run `e2fsck -f {d}`, then `fsck.lakefs {d}` once booted, and `systemctl default` to continue",
            d = dev.display()
        ),
    }
}

fn run() -> Result<String> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
    let opts = parse_cmdline(&cmdline).map_err(anyhow::Error::msg)?;
    if let Some(label) = lake_initramfs::live::options(&cmdline) {
        return live_boot(label.as_deref(), opts.timeout.unwrap_or(60));
    }
    if opts.plain_root && opts.generation.is_none() && opts.device.is_none() {
        return Ok("root= is on the kernel command line: systemd mounts that root; the lake is not used".into());
    }
    let dev = find_device(opts.device.clone(), opts.timeout.unwrap_or(30))?;
    fsck(&dev)?;
    std::fs::create_dir_all(LAKE_MOUNT).with_context(|| format!("creating {LAKE_MOUNT}"))?;
    mount(Some(&dev), LAKE_MOUNT, Some("ext4"), MsFlags::MS_NOATIME, None::<&str>).with_context(|| {
        format!("mounting the lake partition {} on {LAKE_MOUNT} (is it ext4? `blkid {}`)", dev.display(), dev.display())
    })?;
    let root = Path::new(LAKE_MOUNT);
    let lake = lakefs::Lake::open(root)
        .with_context(|| format!("opening the lake on {}; run `fsck.lakefs {}` from this shell", dev.display(), dev.display()))?;
    let gens = generation::list(&lake)?;
    let n = match opts.generation {
        Some(n) => n,
        None => generation::default(&lake)?
            .context("the lake has no default generation: it was not installed completely; reinstall with lake-installer")?,
    };
    let Some(g) = gens.iter().find(|g| g.number == n) else {
        let have: Vec<String> = gens.iter().map(|g| g.number.to_string()).collect();
        bail!(
            "generation {n} does not exist on {} (it has: {}). Pick another entry in the boot menu, or remove lake.gen= from the command line",
            dev.display(),
            if have.is_empty() { "none".into() } else { have.join(", ") }
        );
    };
    let (lower, upper, work) = (generation::root_dir(root, n), generation::upper_dir(root, n), generation::work_dir(root, n));
    if !lower.is_dir() {
        bail!("generation {n}'s checkout {} is missing: the lake is damaged; run `fsck.lakefs {}`", lower.display(), dev.display());
    }
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    drop(lake);
    std::fs::create_dir_all(SYSROOT).with_context(|| format!("creating {SYSROOT}"))?;
    let options = overlay_options(&lower, &upper, &work);
    mount(Some("overlay"), SYSROOT, Some("overlay"), MsFlags::empty(), Some(options.as_str()))
        .with_context(|| format!("mounting overlay on {SYSROOT} ({options})"))?;
    if init_check::find_init(Path::new(SYSROOT)).is_none() {
        bail!(
            "generation {n} has no init: none of {} is an executable file in its root ({} plus {}). \
             Its checkout is incomplete or a package run removed systemd; pick another generation in the boot menu \
             (or boot with lake.gen=M), then run `fsck.lakefs {}`",
            init_check::INIT_CANDIDATES.join(", "),
            lower.display(),
            upper.display(),
            dev.display()
        );
    }
    // The lake stays reachable from the real root at /lake (and /run/lake, which
    // systemd carries across switch-root).
    let in_root = Path::new(SYSROOT).join("lake");
    std::fs::create_dir_all(&in_root).with_context(|| format!("creating {}", in_root.display()))?;
    mount(Some(LAKE_MOUNT), &in_root, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("bind-mounting {LAKE_MOUNT} on {}", in_root.display()))?;
    mount_home(root, &lower)?;
    mount_esp(&dev);
    let booted = Path::new(generation::BOOTED_FILE);
    if let Some(d) = booted.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(booted, format!("{n}\n")).with_context(|| format!("writing {}", booted.display()))?;
    Ok(format!("generation {n} ({}) from {} assembled on {SYSROOT}", g.commit.short(), dev.display()))
}

/// `lake.live[=LABEL]`: the install medium's live system (see lake_initramfs::live).
fn live_boot(label: Option<&str>, timeout: u64) -> Result<String> {
    let (m, loopdev, n, commit) =
        lake_initramfs::live::assemble(label, Duration::from_secs(timeout), Path::new(LAKE_MOUNT), Path::new(SYSROOT))?;
    if init_check::find_init(Path::new(SYSROOT)).is_none() {
        bail!("the install medium's generation {n} has no init ({}); the medium is damaged", init_check::INIT_CANDIDATES.join(", "));
    }
    Ok(format!(
        "live system: generation {n} ({commit}) of the lake image on {} ('{}', {loopdev}) assembled on {SYSROOT}",
        m.node.display(),
        m.label
    ))
}

/// /home lives outside the generations: <lake>/state/home, bind-mounted.
fn mount_home(lake_root: &Path, lower: &Path) -> Result<()> {
    let state = home::state_home(lake_root);
    let lower_home = lower.join("home");
    match home::prepare(&lower_home, &state)
        .with_context(|| format!("creating the persistent /home {} from {}", state.display(), lower_home.display()))?
    {
        home::Prepared::Existing => {}
        home::Prepared::Created { entries } => {
            println!("lake-initramfs: created {} from the generation's /home ({entries} entries)", state.display())
        }
        home::Prepared::CreatedEmpty => println!("lake-initramfs: created an empty {} (the generation has no /home)", state.display()),
    }
    let target = Path::new(SYSROOT).join("home");
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            // An image whose /home is a symlink (e.g. to var/home): leave it be.
            warn(&format!("{} is not a directory: the persistent /home ({}) is not mounted", target.display(), state.display()));
            return Ok(());
        }
        Err(_) => std::fs::create_dir(&target).with_context(|| format!("creating {}", target.display()))?,
    }
    mount(Some(&state), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("bind-mounting {} on {}", state.display(), target.display()))?;
    Ok(())
}

/// Mounts the ESP of the lake's disk on /sysroot/efi. Without it the system
/// still boots (it cannot deploy new generations or bless this one): warnings only.
fn mount_esp(lake_dev: &Path) {
    let Some(part) = esp::kernel_name(lake_dev) else {
        warn(&format!("cannot tell the kernel name of {}: the ESP is not mounted", lake_dev.display()));
        return;
    };
    let sys = Path::new("/sys/class/block");
    let deadline = Instant::now() + ESP_WAIT;
    let found = loop {
        let l = match esp::lookup(sys, Path::new("/run/udev/data"), &part) {
            Ok(l) => l,
            Err(e) => {
                warn(&format!("cannot list the partitions next to {part} in {}: {e}; the ESP is not mounted", sys.display()));
                return;
            }
        };
        if let Some(d) = l.device(Path::new("/dev")) {
            if l.found.len() > 1 {
                warn(&format!("{} ESPs on the disk of {part} ({}); using {}", l.found.len(), l.found.join(", "), d.display()));
            }
            break d;
        }
        if l.unprobed.is_empty() || Instant::now() >= deadline {
            warn(&format!(
                "no EFI system partition (GPT type {}) next to the lake partition {part} (partitions on its disk: {}{}); \
                 /efi stays empty, so new generations cannot be deployed and this boot cannot be marked good",
                esp::ESP_TYPE_GUID,
                if l.siblings.is_empty() { "none".to_string() } else { l.siblings.join(", ") },
                if l.unprobed.is_empty() { String::new() } else { format!("; not yet seen by udev: {}", l.unprobed.join(", ")) }
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let target = Path::new(SYSROOT).join("efi");
    if let Err(e) = std::fs::create_dir_all(&target) {
        warn(&format!("cannot create {}: {e}; the ESP {} is not mounted", target.display(), found.display()));
        return;
    }
    // Root only, as systemd mounts ESPs; not executable, no devices.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
    if let Err(e) = mount(Some(&found), &target, Some("vfat"), flags, Some("umask=0077")) {
        warn(&format!(
            "mounting the ESP {} (vfat) on {} failed: {e}; check it with `fsck.vfat {}`",
            found.display(),
            target.display(),
            found.display()
        ));
        return;
    }
    let record = Path::new(ESP_DEVICE_FILE);
    let written =
        record.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|_| std::fs::write(record, format!("{}\n", found.display())));
    if let Err(e) = written {
        warn(&format!("cannot write {ESP_DEVICE_FILE}: {e}"));
    }
}
