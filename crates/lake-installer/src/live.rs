//! `lake-installer install-live`: installing from the install medium's live
//! system. The lake image, its manifest and the EFI boot image are on the
//! mounted medium (lake-initramfs records where in /run/lakefs/live); kernel,
//! initrd and systemd-boot are read out of the EFI boot image, so the install
//! writes exactly what the medium boots, and nothing is imported again.
//!
//! Interactive: lists the disks, asks for the target and a typed
//! confirmation, shows progress bars. Unattended (`--unattended`, run by
//! lake-install-auto.service for `lake.install=auto lake.target=DEV` on the
//! kernel command line): no questions; one `LAKE-INSTALL {json}` line with the
//! result and timings on stdout and the console; the log goes to the installed
//! ESP (/lake/install.log), and on failure to /run/lake-install.log.

use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lake_boot::chain::{BootChain, MOK_MANAGER_ESP_PATH, SECOND_STAGE_ESP_PATH, SHIM_ESP_PATH};
use lakefs::progress::Progress;
use serde::Serialize;

use crate::disks::{self, Disk, LiveInfo};
use crate::error::{Error, IoContext, Result};
use crate::esp::FatVolume;
use crate::install::{self, Observer, Report};
use crate::iso::{self, Manifest};
use crate::plan::{InstallOptions, Plan};
use crate::units::{human, MIB};

/// Where the live system's medium is mounted (lake_initramfs::live::MEDIUM_MOUNT).
pub const MEDIUM_MOUNT: &str = "/run/lake-medium";
pub const FAILURE_LOG: &str = "/run/lake-install.log";
/// The log on the installed ESP.
pub const ESP_LOG: &str = "/lake/install.log";

/// The install medium's files.
#[derive(Clone, Debug, Serialize)]
pub struct Medium {
    /// Directory the medium is mounted on.
    pub root: PathBuf,
    pub image: PathBuf,
    pub manifest: Manifest,
    pub efi_image: PathBuf,
    /// The live record, when running from the medium.
    pub live: Option<LiveInfo>,
}

impl Medium {
    /// The medium of this live system, or the one mounted at `root`.
    pub fn open(root: Option<&Path>) -> Result<Medium> {
        let live = LiveInfo::current();
        let root = match (root, &live) {
            (Some(r), _) => r.to_owned(),
            (None, Some(_)) => PathBuf::from(MEDIUM_MOUNT),
            (None, None) => {
                return Err(Error::Invalid(format!(
                    "this system does not run from a Lake OS install medium ({} is missing); give --medium DIR (a mounted ISO), \
                     or use `lake-installer install --lake-image FILE ...`",
                    disks::LIVE_FILE
                )))
            }
        };
        let image = root.join(iso::LAKE_IMAGE);
        let manifest = Manifest::read(&root.join(iso::MANIFEST))?;
        let efi_image = root.join(iso::EFI_IMAGE);
        for p in [&image, &efi_image] {
            if !p.is_file() {
                return Err(Error::Invalid(format!(
                    "{} is missing: {} is not a complete Lake OS install medium",
                    p.display(),
                    root.display()
                )));
            }
        }
        Ok(Medium { root, image, manifest, efi_image, live })
    }

    /// The smallest disk the lake image fits on: ESP, image, GPT areas, some room.
    pub fn min_disk_size(&self) -> u64 {
        crate::units::align_up(self.manifest.esp_size + self.manifest.image_bytes + 256 * MIB, 256 * MIB)
    }

    /// Copies the boot chain (shim, MokManager, systemd-boot), the kernel and the
    /// initrd out of the EFI boot image into `dir`: the installed ESP gets what
    /// booted the medium.
    pub fn extract_boot_files(&self, dir: &Path) -> Result<(BootChain, PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).at(dir)?;
        let f = File::open(&self.efi_image).at(&self.efi_image)?;
        let len = f.metadata().at(&self.efi_image)?.len();
        let vol = FatVolume::open(&f, &self.efi_image, 0, len)?;
        let m = &self.manifest;
        let want = [SHIM_ESP_PATH, MOK_MANAGER_ESP_PATH, SECOND_STAGE_ESP_PATH];
        if m.loaders != want {
            return Err(Error::Invalid(format!(
                "{}: the manifest's boot loaders are {:?}, expected {want:?}: use the installer of the same release",
                self.root.display(),
                m.loaders
            )));
        }
        let mut out = Vec::new();
        for (from, name) in [
            (SHIM_ESP_PATH, "shimx64.efi"),
            (MOK_MANAGER_ESP_PATH, "mmx64.efi"),
            (SECOND_STAGE_ESP_PATH, "systemd-bootx64.efi"),
            (m.kernel.path.as_str(), "vmlinuz"),
            (m.initrd.path.as_str(), "initrd"),
        ] {
            let bytes = vol.read_file(from)?;
            let to = dir.join(name);
            std::fs::write(&to, &bytes).at(&to)?;
            out.push(to);
        }
        // Read only: dropped without close(), nothing is written to the medium.
        drop(vol);
        let kernel = lake_boot::bls::BootFile::of(&out[3], "vmlinuz")?;
        if kernel.id != m.kernel.id {
            return Err(Error::Invalid(format!(
                "{}: the kernel in {} differs from the manifest ({} vs {}): the medium is damaged",
                self.root.display(),
                iso::EFI_IMAGE,
                kernel.id,
                m.kernel.id
            )));
        }
        let chain = BootChain { shim: out[0].clone(), mok_manager: out[1].clone(), systemd_boot: out[2].clone() };
        Ok((chain, out[3].clone(), out[4].clone()))
    }
}

/// Steps (and progress, as lines or bars) to stderr, and kept for the log.
pub struct LogObserver {
    lines: Mutex<Vec<String>>,
    bars: bool,
}

impl LogObserver {
    pub fn new(bars: bool) -> LogObserver {
        LogObserver { lines: Mutex::new(Vec::new()), bars }
    }

    pub fn log(&self, line: &str) {
        eprintln!("{line}");
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_owned());
    }

    pub fn text(&self) -> String {
        let mut t = self.lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        t.push('\n');
        t
    }
}

impl Observer for LogObserver {
    fn step(&self, what: &str) {
        self.log(&format!("==> {what}"));
    }
    fn progress(&self) -> Box<dyn Progress> {
        if self.bars {
            Box::new(lakefs::progress::Bar::new(false))
        } else {
            Box::new(LineProgress::default())
        }
    }
}

/// Progress as a line per 10 % (serial consoles, logs).
#[derive(Default)]
pub struct LineProgress {
    state: Mutex<(String, u64, u64, u64)>,
}

impl Progress for LineProgress {
    fn phase(&self, name: &str, _items: u64, total_bytes: u64) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = (name.to_owned(), total_bytes, 0, 0);
    }
    fn advance(&self, _items: u64, bytes: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.1 == 0 {
            return;
        }
        s.2 += bytes;
        let tenth = s.2 * 10 / s.1;
        if tenth > s.3 {
            s.3 = tenth;
            eprintln!("    {}: {}% ({} of {})", s.0, tenth * 10, human(s.2), human(s.1));
        }
    }
}

/// The options of an install from the medium onto `target`.
pub fn options(medium: &Medium, target: &Path, boot: &(BootChain, PathBuf, PathBuf)) -> InstallOptions {
    let m = &medium.manifest;
    let mut o = InstallOptions::new(target.to_owned(), PathBuf::new(), boot.1.clone(), boot.2.clone());
    o.boot_chain = Some(boot.0.clone());
    o.lake_image = Some(medium.image.clone());
    o.esp_size = m.esp_size;
    o.cmdline = m.cmdline.clone();
    o.timeout = m.timeout;
    o.title = m.title.clone();
    o
}

/// Why `target` may not be installed on (the boot medium, mounted, ...), from the disk list.
pub fn refusal(disks: &[Disk], target: &Path) -> Option<String> {
    let real = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_owned());
    disks.iter().find(|d| d.path == real || d.path == target).and_then(|d| d.refused.clone().map(|r| format!("{}: {r}", d.path.display())))
}

/// Writes the install log to the ESP of the installed disk.
fn log_to_esp(target: &Path, report: &Report, log: &str) -> Result<()> {
    let esp = report
        .partitions
        .iter()
        .find(|p| p.role == crate::gpt_layout::Role::Esp)
        .ok_or_else(|| Error::Invalid("no ESP in the report".into()))?;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(target).at(target)?;
    let vol = FatVolume::open(&f, target, esp.offset, esp.size)?;
    vol.write_file(ESP_LOG, log.as_bytes())?;
    vol.close()?;
    f.sync_all().at(target)
}

/// The `LAKE-INSTALL` line.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub result: &'static str,
    pub target: String,
    pub medium: Option<String>,
    pub error: Option<String>,
    pub seconds: f64,
    pub disk_size: Option<u64>,
    pub commit: Option<String>,
    pub generation: Option<u32>,
    pub timings: Vec<install::Timing>,
    pub log: Option<String>,
    /// The install configuration used, if any.
    pub config: Option<String>,
}

/// Waits for a device node (the target of an unattended install may appear late).
fn wait_for(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    true
}

/// `lake.target=` and `lake.install=` of a kernel command line.
pub fn cmdline_target(cmdline: &str) -> (Option<String>, bool) {
    let mut target = None;
    let mut auto = false;
    for w in cmdline.split_whitespace() {
        if let Some(t) = w.strip_prefix("lake.target=") {
            target = Some(t.to_owned());
        } else if w == "lake.install=auto" {
            auto = true;
        }
    }
    (target, auto)
}

/// File-system label of a second medium holding `lake-install.toml` (like cloud-init's NoCloud `cidata`).
pub const CONFIG_LABEL: &str = "LAKECONFIG";
/// Kernel command line key naming the install configuration (`none`: use none).
pub const CONFIG_ARG: &str = "lake.install.config=";

/// `lake.install.config=` of a kernel command line: None if absent, Some(None) for `none`.
pub fn cmdline_config(cmdline: &str) -> Option<Option<PathBuf>> {
    cmdline.split_whitespace().filter_map(|w| w.strip_prefix(CONFIG_ARG)).next_back().map(|v| (v != "none").then(|| PathBuf::from(v)))
}

/// Finds the install configuration, first of: `explicit` (--config); the kernel
/// command line's `lake.install.config=PATH` (relative: on the medium) or
/// `=none`; `lake-install.toml` on a medium labelled LAKECONFIG (mounted
/// read-only under `scratch`, the file copied out); `lake-install.toml` at the
/// install medium's root. Returns the file and where it was found.
pub fn find_config(explicit: Option<&Path>, cmdline: &str, medium_root: &Path, scratch: &Path) -> Result<Option<(PathBuf, String)>> {
    if let Some(p) = explicit {
        return Ok(Some((p.to_owned(), "--config".into())));
    }
    match cmdline_config(cmdline) {
        Some(None) => return Ok(None),
        Some(Some(p)) => {
            let p = if p.is_absolute() { p } else { medium_root.join(p) };
            if !p.is_file() {
                return Err(Error::Invalid(format!("{}: named by {CONFIG_ARG} on the kernel command line, but missing", p.display())));
            }
            return Ok(Some((p, "kernel command line".into())));
        }
        None => {}
    }
    let dev = std::process::Command::new("blkid").args(["-L", CONFIG_LABEL]).output().ok().filter(|o| o.status.success());
    if let Some(o) = dev {
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_owned();
        let mnt = scratch.join("lakeconfig");
        std::fs::create_dir_all(&mnt).at(&mnt)?;
        let m = std::process::Command::new("mount").args(["-o", "ro"]).arg(&dev).arg(&mnt).output();
        if !m.as_ref().is_ok_and(|m| m.status.success()) {
            return Err(Error::Invalid(format!("{dev} (label {CONFIG_LABEL}) cannot be mounted to read {}", crate::config::FILE_NAME)));
        }
        let copy = scratch.join(crate::config::FILE_NAME);
        let r = std::fs::copy(mnt.join(crate::config::FILE_NAME), &copy);
        let _ = std::process::Command::new("umount").arg(&mnt).status();
        return match r {
            Ok(_) => Ok(Some((copy, format!("{dev} (label {CONFIG_LABEL})")))),
            Err(e) => {
                Err(Error::Invalid(format!("{dev} is labelled {CONFIG_LABEL} but has no {} at its root ({e})", crate::config::FILE_NAME)))
            }
        };
    }
    let on_medium = medium_root.join(crate::config::FILE_NAME);
    Ok(on_medium.is_file().then(|| (on_medium, "install medium".into())))
}

/// Asks for the first-boot settings (defaults in brackets), checking each
/// answer against the live system's root (which the install copies); None at end of input.
pub fn ask_settings(root: &Path) -> Option<crate::config::InstallConfig> {
    use crate::config::{self as c, InstallConfig, Keyboard, Root, User};
    fn until(question: &str, default: &str, check: impl Fn(&str) -> std::result::Result<(), String>) -> Option<String> {
        loop {
            let a = ask(&format!("{question} [{default}]"))?;
            let a = if a.is_empty() { default.to_owned() } else { a };
            match check(&a) {
                Ok(()) => return Some(a),
                Err(e) => eprintln!("  {e}"),
            }
        }
    }
    fn password(who: &str) -> Option<String> {
        loop {
            let a = crate::password_prompt::read_password(&format!("Password for {who}: ")).ok()?;
            let b = crate::password_prompt::read_password("Again: ").ok()?;
            if a.is_empty() || a != b {
                eprintln!("  empty, or the two differ; again");
                continue;
            }
            return c::hash_password(&a).ok();
        }
    }
    eprintln!("\nFirst-boot settings (Enter takes the default):");
    let hostname = until("Host name?", c::DEFAULT_HOSTNAME, c::check_hostname)?;
    let timezone = until("Timezone?", c::DEFAULT_TIMEZONE, |t| c::check_timezone(t, root))?;
    let locale = until("Locale?", c::DEFAULT_LOCALE, |l| c::check_locale(l, root))?;
    let layout = until("Keyboard layout?", c::DEFAULT_KEYBOARD, |l| {
        c::check_keyboard(&Keyboard { layout: l.into(), variant: String::new() }, root)
    })?;
    let name = until("First user's name (in group sudo; '-' for none, root password only)?", "-", |n| {
        if n == "-" {
            Ok(())
        } else {
            c::check_user_name(n, root)
        }
    })?;
    let mut cfg = InstallConfig {
        hostname: Some(hostname),
        timezone: Some(timezone),
        locale: Some(locale),
        keyboard: Some(Keyboard { layout, variant: String::new() }),
        root: None,
        user: None,
    };
    if name == "-" {
        cfg.root = Some(Root { password_hash: password("root")? });
    } else {
        let key = until("SSH public key for the user ('-' for none)?", "-", |k| if k == "-" { Ok(()) } else { c::check_ssh_key(k) })?;
        cfg.user = Some(User {
            password_hash: Some(password(&name)?),
            name,
            full_name: String::new(),
            ssh_authorized_keys: if key == "-" { vec![] } else { vec![key] },
            shell: "/bin/bash".into(),
        });
    }
    Some(cfg)
}

/// The unattended install: never asks; returns the outcome (also on failure).
pub fn unattended(medium_dir: Option<&Path>, target: &Path, config: Option<&Path>, scratch: &Path) -> Outcome {
    let start = Instant::now();
    let obs = LogObserver::new(false);
    obs.log(&format!("lake-installer {}: unattended install onto {}", env!("CARGO_PKG_VERSION"), target.display()));
    let mut out = Outcome {
        result: "fail",
        target: target.display().to_string(),
        medium: None,
        error: None,
        seconds: 0.0,
        disk_size: None,
        commit: None,
        generation: None,
        timings: vec![],
        log: None,
        config: None,
    };
    let r = (|| -> Result<Report> {
        let medium = Medium::open(medium_dir)?;
        out.medium = medium.live.as_ref().map(|l| l.medium.clone());
        if !wait_for(target, Duration::from_secs(60)) {
            return Err(Error::Invalid(format!("{} did not appear within 60 s", target.display())));
        }
        let disks = disks::system(medium.min_disk_size());
        obs.log(&disks::render(&disks));
        if let Some(why) = refusal(&disks, target) {
            return Err(Error::Invalid(format!("refusing to install onto {why}")));
        }
        let boot = medium.extract_boot_files(scratch)?;
        let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
        let mut o = options(&medium, target, &boot);
        if let Some((file, from)) = find_config(config, &cmdline, &medium.root, scratch)? {
            obs.log(&format!("install configuration: {} (from the {from})", file.display()));
            out.config = Some(file.display().to_string());
            o.config = Some(file);
        } else {
            obs.log("no install configuration: the installed system keeps the profile's settings");
        }
        let plan = Plan::new(&o)?;
        obs.log(&plan.render());
        plan.check_allowed(true)?;
        install::run(&plan, &obs)
    })();
    out.seconds = start.elapsed().as_secs_f64();
    match r {
        Ok(report) => {
            out.result = "ok";
            out.disk_size = Some(report.disk_size);
            out.commit = Some(report.lake.commit.clone());
            out.generation = Some(report.lake.generation);
            out.timings = report.timings.clone();
            obs.log(&format!("installed in {:.1} s", out.seconds));
            match log_to_esp(target, &report, &obs.text()) {
                Ok(()) => out.log = Some(format!("ESP:{ESP_LOG}")),
                Err(e) => obs.log(&format!("note: the log could not be written to the ESP: {e}")),
            }
        }
        Err(e) => {
            out.error = Some(e.to_string());
            obs.log(&format!("lake-installer: error: {e}"));
            if std::fs::write(FAILURE_LOG, obs.text()).is_ok() {
                out.log = Some(FAILURE_LOG.into());
            }
        }
    }
    out
}

/// Asks on its own line (so that line-based console readers see the
/// question before the answer), reads one answer; None at end of input.
fn ask(question: &str) -> Option<String> {
    eprint!("{question}\n> ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_owned()),
    }
}

/// The interactive install: lists the disks, asks for the target (unless
/// given) and for `yes` (unless `yes`), installs with progress bars.
pub fn interactive(
    medium_dir: Option<&Path>,
    target: Option<&Path>,
    config: Option<&Path>,
    yes: bool,
    scratch: &Path,
) -> Result<Option<Report>> {
    let medium = Medium::open(medium_dir)?;
    let m = &medium.manifest;
    eprintln!(
        "Lake OS installer: profile '{}', generation {} ({}), {} files; needs a disk of at least {}.\n",
        m.profile,
        m.generation,
        m.commit,
        m.files,
        human(medium.min_disk_size())
    );
    let disks = disks::system(medium.min_disk_size());
    eprint!("{}", disks::render(&disks));
    let candidates: Vec<&Disk> = disks.iter().filter(|d| d.refused.is_none()).collect();
    let target = match target {
        Some(t) => t.to_owned(),
        None => {
            if candidates.is_empty() {
                return Err(Error::Invalid("no disk can be installed on (see the list above)".into()));
            }
            let suggestion = candidates[0].path.display().to_string();
            let Some(a) = ask(&format!("\nInstall onto which disk? [{suggestion}]")) else { return Ok(None) };
            PathBuf::from(if a.is_empty() { suggestion } else { a })
        }
    };
    if let Some(why) = refusal(&disks, &target) {
        return Err(Error::Invalid(format!("refusing to install onto {why}")));
    }
    let boot = medium.extract_boot_files(scratch)?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let mut o = options(&medium, &target, &boot);
    let found = find_config(config, &cmdline, &medium.root, scratch)?;
    if let Some((file, from)) = &found {
        eprintln!("Install configuration: {} (from the {from})", file.display());
        o.config = Some(file.clone());
    }
    let mut plan = Plan::new(&o)?;
    // Asked on a terminal only: piped answers (scripts, tests) keep the profile's settings.
    if found.is_none() && cmdline_config(&cmdline).is_none() && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let Some(c) = ask_settings(Path::new("/")) else { return Ok(None) };
        plan.config = Some((PathBuf::from("<answers>"), c));
    }
    if let Some((file, c)) = &plan.config {
        eprint!("\nSettings of the installed system:\n{}", c.validate(file, Path::new("/"))?.render());
    }
    eprint!("\n{}", plan.render());
    if !yes {
        let d = disks.iter().find(|d| d.path == target);
        let what = d.map_or(String::new(), |d| format!(" ({}, {} {})", human(d.size), d.transport, d.model));
        match ask(&format!("\nEverything on {}{what} will be erased. Type 'yes' to install:", target.display())) {
            Some(a) if a == "yes" => {}
            _ => {
                eprintln!("Nothing was written.");
                return Ok(None);
            }
        }
    }
    plan.check_allowed(true)?;
    let obs = LogObserver::new(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let report = install::run(&plan, &obs)?;
    if let Err(e) = log_to_esp(&target, &report, &obs.text()) {
        eprintln!("note: the log could not be written to the ESP: {e}");
    }
    Ok(Some(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_unattended_options() {
        assert_eq!(cmdline_target("quiet lake.install=auto lake.target=/dev/vda lake.poweroff"), (Some("/dev/vda".into()), true));
        assert_eq!(cmdline_target("lake.target=/dev/sdb"), (Some("/dev/sdb".into()), false));
        assert_eq!(cmdline_target("quiet"), (None, false));
    }

    #[test]
    fn finds_the_install_configuration() {
        assert_eq!(cmdline_config("quiet lake.install.config=none"), Some(None));
        assert_eq!(cmdline_config("lake.install.config=/run/x.toml"), Some(Some(PathBuf::from("/run/x.toml"))));
        assert_eq!(cmdline_config("quiet"), None);
        let d = tempfile::tempdir().unwrap();
        let (medium, scratch) = (d.path().join("m"), d.path().join("s"));
        std::fs::create_dir_all(&medium).unwrap();
        // (No LAKECONFIG medium on a build host.)
        assert!(find_config(None, "", &medium, &scratch).unwrap().is_none());
        std::fs::write(medium.join("lake-install.toml"), "").unwrap();
        assert_eq!(find_config(None, "", &medium, &scratch).unwrap().unwrap().0, medium.join("lake-install.toml"));
        assert!(find_config(None, "lake.install.config=none", &medium, &scratch).unwrap().is_none());
        std::fs::write(medium.join("other.toml"), "").unwrap();
        assert_eq!(find_config(None, "lake.install.config=other.toml", &medium, &scratch).unwrap().unwrap().0, medium.join("other.toml"));
        let e = find_config(None, "lake.install.config=/nope.toml", &medium, &scratch).unwrap_err().to_string();
        assert!(e.contains("/nope.toml") && e.contains("kernel command line"), "{e}");
        assert_eq!(find_config(Some(Path::new("/x")), "lake.install.config=none", &medium, &scratch).unwrap().unwrap().0, Path::new("/x"));
    }
}
