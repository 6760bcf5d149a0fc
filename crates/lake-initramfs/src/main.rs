//! lake-initramfs: run by `lake-initramfs.service` in the initrd. Finds the lake
//! partition, checks and mounts it on /run/lake, and mounts the chosen
//! generation's overlay on /sysroot; systemd then switches root. On any failure
//! it says what is wrong and what to run, and exits non-zero, which sends the
//! initrd to the emergency shell (OnFailure=emergency.target).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lake_initramfs::{block_devices, find_candidates, overlay_options, parse_cmdline};
use lakefs::generation;
use nix::mount::{mount, MsFlags};

const LAKE_MOUNT: &str = "/run/lake";
const SYSROOT: &str = "/sysroot";

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "lake-initramfs: early boot of Lake OS (runs in the initrd as lake-initramfs.service).\n\n\
             Finds the lake partition (GPT type {}, or label 'lake'), runs e2fsck -p on it, mounts it on\n\
             {LAKE_MOUNT}, and mounts overlay(lower = deploy/N/root, upper = deploy/N/upper) on {SYSROOT}.\n\n\
             Kernel command line: lake.gen=N (generation; default: the lake's default),\n\
             root=... without lake.* options: do nothing (systemd mounts that root),\n\
             lake.device=/dev/XXX (skip the search), lake.timeout=SECONDS (wait for the disk, default 30).",
            lakefs::substrate::PARTITION_TYPE_GUID
        );
        return;
    }
    match run() {
        Ok(msg) => println!("lake-initramfs: {msg}"),
        Err(e) => {
            eprintln!("\nlake-initramfs: ERROR: {e:#}\n");
            std::process::exit(1);
        }
    }
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
    let st = std::process::Command::new(e2fsck).arg("-p").arg(dev).status().with_context(|| format!("running e2fsck on {}", dev.display()))?;
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
    if opts.plain_root && opts.generation.is_none() && opts.device.is_none() {
        return Ok("root= is on the kernel command line: systemd mounts that root; the lake is not used".into());
    }
    let dev = find_device(opts.device.clone(), opts.timeout.unwrap_or(30))?;
    fsck(&dev)?;
    std::fs::create_dir_all(LAKE_MOUNT).with_context(|| format!("creating {LAKE_MOUNT}"))?;
    mount(Some(&dev), LAKE_MOUNT, Some("ext4"), MsFlags::MS_NOATIME, None::<&str>)
        .with_context(|| format!("mounting the lake partition {} on {LAKE_MOUNT} (is it ext4? `blkid {}`)", dev.display(), dev.display()))?;
    let root = Path::new(LAKE_MOUNT);
    let lake = lakefs::Lake::open(root)
        .with_context(|| format!("opening the lake on {}; run `fsck.lakefs {}` from this shell", dev.display(), dev.display()))?;
    let gens = generation::list(&lake)?;
    let n = match opts.generation {
        Some(n) => n,
        None => generation::default(&lake)?.context("the lake has no default generation: it was not installed completely; reinstall with lake-installer")?,
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
    // The lake stays reachable from the real root at /lake (and /run/lake, which
    // systemd carries across switch-root).
    let in_root = Path::new(SYSROOT).join("lake");
    std::fs::create_dir_all(&in_root).with_context(|| format!("creating {}", in_root.display()))?;
    mount(Some(LAKE_MOUNT), &in_root, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .with_context(|| format!("bind-mounting {LAKE_MOUNT} on {}", in_root.display()))?;
    let booted = Path::new(generation::BOOTED_FILE);
    if let Some(d) = booted.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(booted, format!("{n}\n")).with_context(|| format!("writing {}", booted.display()))?;
    Ok(format!("generation {n} ({}) from {} assembled on {SYSROOT}", g.commit.short(), dev.display()))
}
