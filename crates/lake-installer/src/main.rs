//! lake-installer: the command line over the installer library.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lake_boot::bls::{DEFAULT_CMDLINE, DEFAULT_TITLE};
use lake_boot::chain::BootChain;
use lake_installer::install::{self, Observer, Report};
use lake_installer::plan::{InstallOptions, Plan};
use lake_installer::units::{self, human};

#[derive(Parser)]
#[command(
    name = "lake-installer",
    version,
    about = "Install Lake OS onto a disk or into a disk image",
    long_about = "Install Lake OS onto a disk or into a disk image: a GPT with an EFI System \
        Partition (FAT32, Secure Boot chain: shim and signed systemd-boot, Boot Loader Specification entries) and a lake partition \
        holding the root file system as generation 1 of the POSIX zone.\n\n\
        Image files are written directly (no loop devices, no mounts)."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Partition TARGET, write the ESP and the lake, and make generation 1 bootable.
    #[command(long_about = "Partition TARGET, write the ESP and the lake, and make generation 1 bootable.\n\n\
        The plan (the target as it is now, and the partitions that will be written with their \
        offsets and sizes) is shown first. A mounted target is always refused; a block device, \
        or an image holding a partition table or a file system, is only overwritten with --yes. \
        An image path that does not exist is created (sparse) with --size.\n\n\
        Layout: 1 MiB-aligned GPT; partition 1 'ESP' (EFI System, FAT32: \
        /EFI/BOOT/BOOTX64.EFI (shim), /EFI/BOOT/mmx64.efi (MokManager), /EFI/BOOT/grubx64.efi \
        (Debian-signed systemd-boot, where shim looks for its second stage), /loader/loader.conf, \
        /loader/entries/lake-1.conf, kernel and initrd under /lake/<hash>/); optional 'boot' \
        (XBOOTLDR, FAT32, then kernels and entries go there); last partition 'lake' (type \
        f1f21de9-2996-4512-bf8a-b087ed8680fb, ext4 labelled 'lake') up to the end of the disk.\n\n\
        The rootfs is imported into a lake staged under --staging (it needs room for a copy of \
        the rootfs), committed on posix/main and deployed as pinned generation 1, then written \
        into the partition with mke2fs -d. With --lake-image (the install medium's \
        /lake/lake.img) nothing is imported: the image is copied into the lake partition, \
        checked, grown with resize2fs and checked again.\n\n\
        Examples:\n  \
        lake-installer install --target disk.raw --size 8G --rootfs rootfs/ \\\n      \
        --kernel /boot/vmlinuz-6.1.0-37-amd64 --initrd initrd.cpio\n  \
        lake-installer install --target /dev/sdb --rootfs rootfs.tar.zst --kernel vmlinuz \\\n      \
        --initrd initrd.img --cmdline 'console=tty0 quiet' --yes\n  \
        lake-installer install --target disk.raw --size 8G ... --dry-run   # show the plan only\n\n\
        The plan and step messages go to stderr, the summary (or --json) to stdout. Exit status: 0 \
        installed, 1 refused or failed. Needs root (owners, device nodes), tar, e2fsprogs \
        (mke2fs, debugfs) and util-linux (blkid, losetup, partx).")]
    Install(InstallArgs),
    /// Build an image from a profile: both mkosi builds, then install into images/<name>.raw (--iso: the install medium).
    #[command(
        long_about = "Build an image from a profile (docs/profiles.md): the root file system         (mkosi.conf) and the initramfs (crates/lake-initramfs/mkosi) with mkosi 25 through         ci/build-images.sh, with this build's lakectl, mkfs.lakefs, fsck.lakefs and lake-initramfs         copied in; then the install into images/<name>.raw (replaced if it exists).

        With --iso: images/<name>.iso instead, the hybrid install medium (docs/install-media.md): a live system         running generation 1 of the lake, which it carries as /lake/lake.img for the installer. With         SOURCE_DATE_EPOCH set, two builds from the same inputs are byte-identical.

        Example (from the repository root, as root):
          cargo build --release --workspace && target/release/lake-installer build --profile profiles/minimal.toml"
    )]
    Build(BuildArgs),
    /// List the disks: size, model, partitions, what is mounted, and which may be a target.
    #[command(long_about = "List the disks: size, transport, model, partitions (file system, label), what is mounted, \
        and whether the disk may be installed on. The disk the live system booted from (the install medium, \
        recorded by lake-initramfs in /run/lakefs/live) is marked BOOT MEDIUM and is never a target; neither \
        are read-only devices or disks with anything mounted or in use.")]
    Disks(DisksArgs),
    /// Install from the install medium this live system runs from (interactive, or --unattended).
    #[command(long_about = "Install Lake OS from the install medium this live system runs from: the medium's lake \
        image is copied into the new lake partition and grown (no import), the ESP gets systemd-boot, the kernel and \
        the initrd out of the medium's EFI boot image.\n\n\
        Interactive: lists the disks, asks for the target (unless --target) and for a typed 'yes' (unless --yes).\n\n\
        --unattended (lake-install-auto.service, for `lake.install=auto lake.target=DEV` on the kernel command line): \
        no questions; the target from --target or lake.target=; prints one line `LAKE-INSTALL {json}` (result, \
        target, error, seconds, timings) on stdout and on --console; the log goes to the installed ESP \
        (/lake/install.log), on failure to /run/lake-install.log. Exit status 0 installed, 1 not.\n\n\
        The boot medium, read-only and mounted disks are always refused.")]
    InstallLive(InstallLiveArgs),
    /// Print a SHA-512 crypt hash of a password, for password_hash in an install config.
    #[command(long_about = "Print a SHA-512 crypt hash ($6$, random salt) of a password, for `password_hash` in an \
        install configuration (docs/install-config.md), which takes no plain-text passwords.\n\n\
        On a terminal the password is asked for twice without echo; otherwise the first line of stdin is read.\n\n\
        Example:\n  lake-installer hash-password\n  printf '%s\\n' \"$PW\" | lake-installer hash-password")]
    HashPassword,
    /// Check an install configuration against a root file system and print the settings.
    #[command(long_about = "Check an install configuration (docs/install-config.md) against the root file system \
        that will be installed (its zoneinfo, locales, keyboard layouts and accounts) and print the settings it gives, \
        defaults filled in. Nothing is written. Exit status 0 valid, 1 not.")]
    CheckConfig(CheckConfigArgs),
}

#[derive(clap::Args)]
struct CheckConfigArgs {
    /// The install configuration (TOML).
    #[arg(value_name = "FILE")]
    config: PathBuf,
    /// The root file system to check against.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DisksArgs {
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct InstallLiveArgs {
    /// The disk to install on (default: ask; unattended: lake.target= of the kernel command line).
    #[arg(long, value_name = "DEV")]
    target: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// No questions at all; one LAKE-INSTALL line with the result.
    #[arg(long)]
    unattended: bool,
    /// Also write the LAKE-INSTALL line to this terminal (e.g. /dev/ttyS0).
    #[arg(long, value_name = "TTY")]
    console: Option<PathBuf>,
    /// Install configuration (docs/install-config.md). Default: lake.install.config= of the kernel
    /// command line, else lake-install.toml on a medium labelled LAKECONFIG, else on the install
    /// medium; interactive installs without one ask for the settings.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The mounted install medium (default: the one this live system runs from, /run/lake-medium).
    #[arg(long, value_name = "DIR")]
    medium: Option<PathBuf>,
}

#[derive(clap::Args)]
struct BuildArgs {
    /// The image profile (TOML).
    #[arg(long, value_name = "FILE")]
    profile: PathBuf,
    /// The repository root (holds mkosi.conf and ci/).
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    /// Output image (default: images/<name>.raw under --repo).
    #[arg(long, value_name = "IMAGE")]
    out: Option<PathBuf>,
    /// Reuse images/build/ from the last mkosi run instead of building again.
    #[arg(long)]
    skip_mkosi: bool,
    /// Make the install medium instead of a disk image: images/<name>.iso, a hybrid ISO
    /// (CD or USB stick) with the live system and installer (docs/install-media.md).
    #[arg(long)]
    iso: bool,
    /// With --iso: add a default boot entry that installs unattended onto DEV and powers off
    /// (default output images/<name>-install-<dev>.iso). For tests and mass installs: it ERASES DEV.
    #[arg(long, value_name = "DEV", requires = "iso")]
    iso_unattended_target: Option<String>,
    /// Where to stage the lake (default: /dev/shm when it has room, else $TMPDIR or /var/tmp).
    #[arg(long, value_name = "DIR")]
    staging: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct InstallArgs {
    /// Block device or disk image file (created when missing; needs --size then).
    #[arg(long, value_name = "DEV|IMAGE")]
    target: PathBuf,
    /// Root file system: a directory, or a tar archive (extracted with owners, modes, xattrs).
    #[arg(long, value_name = "DIR|TAR", required_unless_present = "lake_image", conflicts_with = "lake_image")]
    rootfs: Option<PathBuf>,
    /// Install this lake image (the install medium's /lake/lake.img, made by `build --iso`)
    /// instead of importing a rootfs: copied into the lake partition and grown to fill it.
    #[arg(long, value_name = "FILE")]
    lake_image: Option<PathBuf>,
    /// Install configuration (docs/install-config.md): hostname, timezone, locale, keyboard,
    /// accounts; checked before the disk is touched, committed as generation 2 (the default).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Kernel image to boot (stored on the ESP as /lake/<hash>/vmlinuz).
    #[arg(long, value_name = "VMLINUZ")]
    kernel: PathBuf,
    /// Initramfs to boot (stored on the ESP as /lake/<hash>/initrd).
    #[arg(long, value_name = "INITRD")]
    initrd: PathBuf,
    /// Size of the image file to create (e.g. 8G); resizes an existing image. Not for block devices.
    #[arg(long, value_name = "SIZE", value_parser = size)]
    size: Option<u64>,
    /// Size of the EFI System Partition (at least 64M).
    #[arg(long, value_name = "SIZE", default_value = "512M", value_parser = size)]
    esp_size: u64,
    /// Add an XBOOTLDR /boot partition of this size for kernels, initrds and entries (off by default).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    boot_size: Option<u64>,
    /// Kernel command line, after `lake.gen=1 rw`.
    #[arg(long, value_name = "ARGS", default_value = DEFAULT_CMDLINE, allow_hyphen_values = true)]
    cmdline: String,
    /// systemd-boot menu timeout in seconds (0: boot the default at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    timeout: u32,
    /// Title of the boot menu entry.
    #[arg(long, default_value = DEFAULT_TITLE)]
    title: String,
    /// Root file system whose signed boot loaders go on the ESP, and (with --lake-image) which
    /// --config is checked against (packages shim-signed,
    /// shim-helpers-amd64-signed, systemd-boot-efi-amd64-signed). Default: --rootfs, or /
    /// with --lake-image.
    #[arg(long, value_name = "DIR")]
    loader_root: Option<PathBuf>,
    /// Where to stage the lake before writing it (needs room for a copy of the rootfs).
    /// Default: /dev/shm when it is a tmpfs with room (much faster), else $TMPDIR or /var/tmp.
    #[arg(long, value_name = "DIR")]
    staging: Option<PathBuf>,
    /// Keep the staging directory (for debugging).
    #[arg(long, hide = true)]
    keep_staging: bool,
    /// Show the plan and stop; nothing is written.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Overwrite a block device, or an image holding a partition table or a file system.
    #[arg(long, short = 'y')]
    yes: bool,
    /// Print the result (or with --dry-run the plan) as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No step messages or progress bars.
    #[arg(long, short)]
    quiet: bool,
}

fn size(s: &str) -> Result<u64, String> {
    units::parse_size(s).map_err(|e| e.to_string())
}

struct Cli_ {
    quiet: bool,
}

impl Observer for Cli_ {
    fn step(&self, what: &str) {
        if !self.quiet {
            eprintln!("==> {what}");
        }
    }
    fn progress(&self) -> Box<dyn lakefs::progress::Progress> {
        Box::new(lakefs::progress::Bar::new(self.quiet))
    }
}

fn main() {
    lake_cli_docs::maybe_generate(Cli::command(), lake_cli_docs::Section::Admin);
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::Install(a) => install_cmd(a),
        Cmd::Build(a) => build_cmd(a),
        Cmd::Disks(a) => disks_cmd(a),
        Cmd::InstallLive(a) => install_live_cmd(a),
        Cmd::HashPassword => hash_password_cmd(),
        Cmd::CheckConfig(a) => check_config_cmd(a),
    };
    if let Err(e) = r {
        eprintln!("lake-installer: error: {e:#}");
        std::process::exit(1);
    }
}

fn hash_password_cmd() -> Result<()> {
    use std::io::IsTerminal;
    let pw = if std::io::stdin().is_terminal() {
        let a = lake_installer::password_prompt::read_password("Password: ").context("reading the password from the terminal")?;
        let b = lake_installer::password_prompt::read_password("Again: ").context("reading the password from the terminal")?;
        anyhow::ensure!(a == b, "the two passwords differ; nothing printed");
        a
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("reading the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    anyhow::ensure!(!pw.is_empty(), "the password is empty; nothing printed");
    let h = lake_installer::config::hash_password(&pw).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    println!("{h}");
    Ok(())
}

fn check_config_cmd(a: CheckConfigArgs) -> Result<()> {
    let c = lake_installer::config::InstallConfig::load(&a.config)?;
    let s = c.validate(&a.config, &a.root)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", s.render());
    }
    Ok(())
}

fn install_cmd(a: InstallArgs) -> Result<()> {
    let mut o = InstallOptions::new(a.target.clone(), a.rootfs.clone().unwrap_or_default(), a.kernel.clone(), a.initrd.clone());
    o.lake_image = a.lake_image.clone();
    o.config = a.config.clone();
    o.config_root = a.loader_root.clone();
    o.size = a.size;
    o.esp_size = a.esp_size;
    o.boot_size = a.boot_size;
    o.cmdline = a.cmdline.clone();
    o.timeout = a.timeout;
    o.title = a.title.clone();
    o.boot_chain = a.loader_root.as_deref().map(BootChain::in_root);
    o.staging = a.staging.clone();
    o.keep_staging = a.keep_staging;
    let plan = Plan::new(&o).with_context(|| format!("planning the install onto {}", a.target.display()))?;
    if a.dry_run {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print!("{}", plan.render());
        }
        if let Err(e) = plan.check_allowed(a.yes) {
            anyhow::bail!("{e} (dry run: nothing was written)");
        }
        return Ok(());
    }
    if !a.quiet {
        eprint!("lake-installer plan:\n{}", plan.render());
    }
    plan.check_allowed(a.yes)?;
    let report = install::run(&plan, &Cli_ { quiet: a.quiet }).with_context(|| format!("installing onto {}", a.target.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

fn build_cmd(a: BuildArgs) -> Result<()> {
    use lake_installer::build;
    let profile = build::load_profile(&a.profile)?;
    let default_name = match (&a.iso, &a.iso_unattended_target) {
        (false, _) => format!("{}.raw", profile.name),
        (true, None) => format!("{}.iso", profile.name),
        (true, Some(dev)) => format!("{}-install-{}.iso", profile.name, dev.rsplit('/').next().unwrap_or("disk")),
    };
    let out = a.out.clone().unwrap_or_else(|| a.repo.join("images").join(default_name));
    let t = std::time::Instant::now();
    let built = if a.skip_mkosi {
        build::Built::at(&a.repo.join("images/build"))
    } else {
        let exe = std::env::current_exe().context("locating this binary (its directory holds the other workspace binaries)")?;
        let bin_dir = exe.parent().context("the binary has no directory")?;
        eprintln!("==> mkosi builds (root file system, initramfs) for profile '{}'", profile.name);
        let (built, report) = build::run_mkosi(&a.repo, bin_dir, &profile)?;
        let mib = |b: Option<u64>| b.map_or_else(|| "-".to_owned(), |b| format!("{:.1} MiB", b as f64 / 1048576.0));
        eprintln!(
            "==> kernel {}; rootfs {}, initramfs {}, vmlinuz {} (mkosi builds: {} s)",
            report.kernel_version,
            mib(report.rootfs.bytes),
            mib(report.initrd.bytes),
            mib(report.vmlinuz.bytes),
            report.total_seconds.map_or_else(|| "-".to_owned(), |s| s.to_string())
        );
        built
    };
    let mkosi_s = t.elapsed().as_secs_f64();
    if a.iso {
        return iso_cmd(&a, &profile, built, &out, mkosi_s);
    }
    // The output is this command's own product: replace it.
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("removing the previous {}", out.display()))?;
    }
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut o = InstallOptions::new(out.clone(), built.rootfs, built.kernel, built.initrd);
    o.size = Some(units::parse_size(&profile.image.size)?);
    o.esp_size = units::parse_size(&profile.image.esp_size)?;
    o.cmdline = profile.boot.cmdline.clone();
    o.timeout = profile.boot.timeout;
    let plan = Plan::new(&o).with_context(|| format!("planning the install into {}", out.display()))?;
    plan.check_allowed(true)?;
    let report = install::run(&plan, &Cli_ { quiet: a.quiet }).with_context(|| format!("installing into {}", out.display()))?;
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        v["profile"] = profile.name.clone().into();
        v["mkosi_seconds"] = mkosi_s.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_summary(&report);
        println!("  mkosi builds: {mkosi_s:.0} s; image ready: {}", out.display());
    }
    Ok(())
}

fn iso_cmd(
    a: &BuildArgs,
    profile: &lake_installer::build::Profile,
    built: lake_installer::build::Built,
    out: &Path,
    mkosi_s: f64,
) -> Result<()> {
    use lake_installer::iso;
    let profile_text = std::fs::read(&a.profile).with_context(|| format!("reading {}", a.profile.display()))?;
    let o = iso::IsoOptions {
        profile,
        profile_text,
        boot_chain: BootChain::in_root(&built.rootfs),
        rootfs: built.rootfs,
        kernel: built.kernel,
        initrd: built.initrd,
        out: out.to_owned(),
        unattended_target: a.iso_unattended_target.clone(),
        staging: a.staging.clone(),
        keep_staging: false,
    };
    let r = iso::build(&o, &Cli_ { quiet: a.quiet }).with_context(|| format!("building {}", out.display()))?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["profile"] = profile.name.clone().into();
        v["mkosi_seconds"] = mkosi_s.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let m = &r.manifest;
    println!("Lake OS install medium {} ({}, label {}) in {:.1} s", r.out.display(), human(r.iso_bytes), r.label, r.elapsed_seconds);
    println!("  lake {}: generation {} = commit {}; {} files, {} of content", m.lake_uuid, m.generation, m.commit, m.files, human(m.bytes));
    println!(
        "  /{}: ext4 {} ({} of {} blocks free); /{}: {}",
        iso::LAKE_IMAGE,
        human(r.lake_image.bytes),
        r.lake_image.free_blocks,
        r.lake_image.blocks,
        iso::EFI_IMAGE,
        human(r.efi_image_bytes)
    );
    let o = &r.objects;
    match &o.previous {
        Some(p) => println!("  objects: {} ({} new, {} reused from the previous build, {})", o.total, o.new, o.reused, p.display()),
        None => println!("  objects: {} (no previous build to compare with)", o.total),
    }
    match (&m.source_date_epoch, &r.seed) {
        (Some(e), Some(s)) => println!("  reproducible: SOURCE_DATE_EPOCH={e}, seed {}", &s[..16]),
        _ => println!("  not reproducible: set SOURCE_DATE_EPOCH for a byte-identical rebuild"),
    }
    if let Some(t) = &r.unattended_target {
        println!("  default boot entry: unattended install onto {t} (erases it), then power off");
    }
    let t: Vec<String> = r.timings.iter().map(|t| format!("{} {:.1}s", t.step, t.seconds)).collect();
    println!("  time: {}; mkosi builds: {mkosi_s:.0} s", t.join(", "));
    Ok(())
}

fn disks_cmd(a: DisksArgs) -> Result<()> {
    use lake_installer::{disks, live};
    let min = live::Medium::open(None).map(|m| m.min_disk_size()).unwrap_or(0);
    let d = disks::system(min);
    if a.json {
        // One line: lake-live puts it into its LAKE-LIVE console line.
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", disks::render(&d));
    }
    Ok(())
}

fn install_live_cmd(a: InstallLiveArgs) -> Result<()> {
    use lake_installer::live;
    let scratch = PathBuf::from(format!("/run/lake-installer-{}", std::process::id()));
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(scratch.clone());
    if !a.unattended {
        return match live::interactive(a.medium.as_deref(), a.target.as_deref(), a.config.as_deref(), a.yes, &scratch)? {
            Some(r) => {
                print_summary(&r);
                println!("Done. Remove the install medium and reboot (`systemctl reboot`).");
                Ok(())
            }
            None => Ok(()),
        };
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let target = a.target.clone().or_else(|| live::cmdline_target(&cmdline).0.map(PathBuf::from));
    let Some(target) = target else {
        anyhow::bail!("--unattended needs --target DEV or lake.target=DEV on the kernel command line");
    };
    let outcome = live::unattended(a.medium.as_deref(), &target, a.config.as_deref(), &scratch);
    let line = format!("LAKE-INSTALL {}", serde_json::to_string(&outcome)?);
    println!("{line}");
    if let Some(c) = &a.console {
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .open(c)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()))
        {
            eprintln!("lake-installer: cannot write to {}: {e}", c.display());
        }
    }
    if outcome.result != "ok" {
        anyhow::bail!("the unattended install onto {} failed: {}", target.display(), outcome.error.unwrap_or_default());
    }
    Ok(())
}

fn print_summary(r: &Report) {
    println!("Lake OS installed on {} ({}) in {:.1} s", r.target.display(), human(r.disk_size), r.elapsed_seconds);
    for p in &r.partitions {
        println!("  partition {} {:<5} offset {:>12}  size {:>10}  type {}", p.number, p.name, p.offset, human(p.size), p.type_guid);
    }
    let l = &r.lake;
    println!("  lake {}: generation {} = commit {} on {}", l.uuid, l.generation, l.commit, l.reference);
    println!(
        "    {} files, {} dirs, {} other, {} of content; staged lake {}",
        l.files,
        l.dirs,
        l.others,
        human(l.bytes),
        human(l.staged_bytes)
    );
    if let Some(h) = &l.hardlink_check {
        println!("    {} on the target: inode {}, {} links (checkout is a hard-link farm)", h.path, h.inode, h.links);
    }
    println!("  kernel {} ({})", r.kernel.path, r.kernel.id);
    println!("  initrd {} ({})", r.initrd.path, r.initrd.id);
    println!("  entry {}: options {}", r.entry, r.cmdline);
    if let Some(i) = &r.image {
        println!("  image: {} apparent, {} allocated (sparse)", human(i.apparent), human(i.allocated));
    }
    let t: Vec<String> = r.timings.iter().map(|t| format!("{} {:.1}s", t.step, t.seconds)).collect();
    println!("  time: {}", t.join(", "));
}
