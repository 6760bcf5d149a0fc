//! `lake-installer build`: from a profile to a bootable image. Runs the two
//! mkosi builds (root file system, initramfs) through `ci/build-images.sh`, which
//! runs Debian trixie's mkosi 25 on the build host, then installs the result into
//! `images/<name>.raw`. The profile format is documented in docs/profiles.md.
//!
//! # The script boundary ([`run_mkosi`])
//! What the library passes: `bash ci/build-images.sh --bin-dir DIR --json`, run in
//! the repository, with the profile's choices in the environment ([`script_env`]:
//! `LAKE_RELEASE`, `LAKE_COMPONENTS`, `LAKE_EXTRA_PACKAGES`). Nothing else.
//! What it expects back: exit status 0 (1: a build or check failed, 2: a usage
//! error — [`Error::ImageScript`] tells them apart), stderr left to the user
//! (progress), and on stdout one JSON line ([`ScriptReport`]) naming the kernel
//! version and the outputs under `images/build/`, which must exist
//! ([`Error::ImageScriptOutput`] otherwise).
//!
//! # Why the script stays
//! It is the mkosi boundary: mkosi is a Python program run from Debian's unpacked
//! .deb (ci/mkosi-env.sh installs host packages and fetches it), the steps are
//! command pipelines (mkosi runs, cpio/zstd listings of the initramfs, the
//! bzImage's version string, apt sources files), and CI and people run it without
//! the installer (`ci/build-images.sh --rootfs-only`, ci/boot-*.sh). Rewritten in
//! Rust it would be the same commands wrapped in `Command`; what Rust owns is
//! the profile (checked here before anything runs) and the image made from the
//! outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::units;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The Debian release of the root file system and the initramfs (`trixie`):
    /// the next Debian is a profile change.
    pub release: String,
    /// `networkd` (DHCP on every wired interface) or `networkmanager` (desktops);
    /// mkosi.postinst.chroot enables one and disables the other.
    #[serde(default = "default_network")]
    pub network: String,
    #[serde(default)]
    pub image: ImageCfg,
    #[serde(default)]
    pub boot: BootCfg,
    #[serde(default)]
    pub packages: PackagesCfg,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageCfg {
    pub size: String,
    pub esp_size: String,
}

impl Default for ImageCfg {
    fn default() -> Self {
        ImageCfg { size: "4G".into(), esp_size: "512M".into() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootCfg {
    pub cmdline: String,
    pub timeout: u32,
}

impl Default for BootCfg {
    fn default() -> Self {
        BootCfg { cmdline: "console=tty0 console=ttyS0,115200".into(), timeout: 3 }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackagesCfg {
    pub extra: Vec<String>,
    /// Archive components besides `main` (`non-free-firmware` for firmware).
    pub components: Vec<String>,
}

fn default_network() -> String {
    "networkd".into()
}

/// The network stacks mkosi.postinst.chroot knows how to set up.
const NETWORKS: &[&str] = &["networkd", "networkmanager"];

/// Debian archive components a profile may add to `main`.
const COMPONENTS: &[&str] = &["contrib", "non-free", "non-free-firmware"];

/// Reads and checks a profile; errors name the file, the line and what to fix.
pub fn load_profile(path: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Invalid(format!("cannot read profile {}: {e}", path.display())))?;
    let p: Profile = toml::from_str(&text)
        .map_err(|e| Error::Invalid(format!("profile {} is not valid (see docs/profiles.md): {e}", path.display())))?;
    if p.name.is_empty() || !p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Error::Invalid(format!(
            "profile {}: name '{}' must be letters, digits, '-' or '_' (it names images/<name>.raw)",
            path.display(),
            p.name
        )));
    }
    if p.release.is_empty() || !p.release.chars().all(|c| c.is_ascii_lowercase()) {
        return Err(Error::Invalid(format!(
            "profile {}: release = '{}' must be a Debian release code name such as \"trixie\"",
            path.display(),
            p.release
        )));
    }
    if !NETWORKS.contains(&p.network.as_str()) {
        return Err(Error::Invalid(format!(
            "profile {}: network = '{}' must be one of: {}",
            path.display(),
            p.network,
            NETWORKS.join(", ")
        )));
    }
    if let Some(bad) = p.packages.components.iter().find(|c| !COMPONENTS.contains(&c.as_str())) {
        return Err(Error::Invalid(format!(
            "profile {}: packages.components has '{bad}'; allowed: {} (main is always there)",
            path.display(),
            COMPONENTS.join(", ")
        )));
    }
    for (key, v) in [("image.size", &p.image.size), ("image.esp_size", &p.image.esp_size)] {
        units::parse_size(v).map_err(|e| Error::Invalid(format!("profile {}: {key} = '{v}': {e}", path.display())))?;
    }
    if let Some(bad) = p.packages.extra.iter().find(|n| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == ',')) {
        return Err(Error::Invalid(format!("profile {}: packages.extra has an invalid package name '{bad}'", path.display())));
    }
    Ok(p)
}

/// Outputs of the mkosi builds, as ci/build-images.sh leaves them.
#[derive(Debug)]
pub struct Built {
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

impl Built {
    /// The outputs in the script's output directory (`images/build`).
    pub fn at(dir: &Path) -> Self {
        Built { rootfs: dir.join("rootfs"), kernel: dir.join("vmlinuz"), initrd: dir.join("initrd.cpio.zst") }
    }
}

/// The script, relative to the repository.
pub const IMAGE_SCRIPT: &str = "ci/build-images.sh";

/// The JSON line `ci/build-images.sh --json` prints last on stdout (the fields
/// the installer reads; the script prints more).
#[derive(Debug, Deserialize)]
pub struct ScriptReport {
    pub kernel_version: String,
    pub rootfs: ScriptOutput,
    pub initrd: ScriptOutput,
    pub vmlinuz: ScriptOutput,
    pub total_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct ScriptOutput {
    pub path: PathBuf,
    pub bytes: Option<u64>,
}

/// The environment the script reads the profile's choices from (its --help lists them).
pub fn script_env(profile: &Profile) -> Vec<(&'static str, String)> {
    let components = std::iter::once("main").chain(profile.packages.components.iter().map(String::as_str));
    vec![
        ("LAKE_RELEASE", profile.release.clone()),
        ("LAKE_COMPONENTS", components.collect::<Vec<_>>().join(",")),
        ("LAKE_EXTRA_PACKAGES", profile.packages.extra.join(",")),
        ("LAKE_NETWORK", profile.network.clone()),
    ]
}

/// Runs both mkosi builds with the workspace binaries from `bin_dir` copied in
/// (the boundary: module doc).
pub fn run_mkosi(repo: &Path, bin_dir: &Path, profile: &Profile) -> Result<(Built, ScriptReport)> {
    let script = repo.join(IMAGE_SCRIPT);
    if !script.exists() {
        return Err(Error::ImageScriptMissing { script });
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--json")
        .envs(script_env(profile))
        .current_dir(repo)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| Error::Spawn { program: "bash".into(), package: "bash", error })?;
    read_report(repo, &script, &out.status, &out.stdout)
}

/// Checks what the script gave back: its status, its report, the outputs it names.
fn read_report(repo: &Path, script: &Path, status: &ExitStatus, stdout: &[u8]) -> Result<(Built, ScriptReport)> {
    if !status.success() {
        let logs = repo.join("images/build/logs");
        return Err(Error::ImageScript { script: script.to_owned(), code: status.code(), logs });
    }
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().rev().find(|l| l.trim_start().starts_with('{')).unwrap_or_default();
    let report: ScriptReport = serde_json::from_str(line).map_err(|e| Error::ImageScriptReport {
        script: script.to_owned(),
        error: if line.is_empty() { "no JSON line on stdout".to_owned() } else { e.to_string() },
    })?;
    let built = Built { rootfs: report.rootfs.path.clone(), kernel: report.vmlinuz.path.clone(), initrd: report.initrd.path.clone() };
    for (what, p) in [("rootfs", &built.rootfs), ("vmlinuz", &built.kernel), ("initrd", &built.initrd)] {
        if !p.exists() {
            return Err(Error::ImageScriptOutput { script: script.to_owned(), what, path: p.clone() });
        }
    }
    Ok((built, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositorys_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let server = load_profile(&dir.join("server.toml")).unwrap();
        assert_eq!(server.name, "server");
        for p in ["openssh-server", "sudo", "curl", "ca-certificates"] {
            assert!(server.packages.extra.iter().any(|e| e == p), "server lacks {p}");
        }
        let minimal = load_profile(&dir.join("minimal.toml")).unwrap();
        assert_eq!((minimal.name.as_str(), minimal.release.as_str()), ("minimal", server.release.as_str()));
    }

    fn load(text: &str) -> Result<Profile> {
        let dir = tempfile::tempdir().map_err(|e| Error::Invalid(e.to_string()))?;
        let path = dir.path().join("p.toml");
        std::fs::write(&path, text).map_err(|e| Error::Invalid(e.to_string()))?;
        load_profile(&path)
    }

    #[test]
    fn repository_profiles_load_and_name_their_release() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../profiles");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let p = load_profile(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(p.release, "trixie", "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 1, "no profiles in {}", dir.display());
    }

    #[test]
    fn release_is_required_and_checked() {
        let e = load("name = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("release"), "{e}");
        let e = load("name = \"x\"\nrelease = \"Trixie 13\"\n").unwrap_err().to_string();
        assert!(e.contains("release = 'Trixie 13'"), "{e}");
    }

    #[test]
    fn components_are_checked() {
        let p = load("name = \"x\"\nrelease = \"trixie\"\n[packages]\ncomponents = [\"non-free-firmware\"]\n").unwrap();
        assert_eq!(p.packages.components, ["non-free-firmware"]);
        let e = load("name = \"x\"\nrelease = \"trixie\"\n[packages]\ncomponents = [\"main contrib\"]\n").unwrap_err().to_string();
        assert!(e.contains("packages.components has 'main contrib'"), "{e}");
    }

    #[test]
    fn network_defaults_to_networkd_and_is_checked() {
        let p = load("name = \"x\"\nrelease = \"trixie\"\n").unwrap();
        assert_eq!(p.network, "networkd");
        let p = load("name = \"x\"\nrelease = \"trixie\"\nnetwork = \"networkmanager\"\n").unwrap();
        assert_eq!(p.network, "networkmanager");
        let e = load("name = \"x\"\nrelease = \"trixie\"\nnetwork = \"wicd\"\n").unwrap_err().to_string();
        assert!(e.contains("network = 'wicd' must be one of: networkd, networkmanager"), "{e}");
    }

    /// A repository whose ci/build-images.sh is `body` (a stand-in for mkosi).
    fn fake_repo(body: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ci")).unwrap();
        std::fs::write(dir.path().join(IMAGE_SCRIPT), format!("set -eu\n{body}\n")).unwrap();
        dir
    }

    /// Writes the outputs and prints a report as the real script does.
    const GOOD: &str = r#"
echo "$*" >args; env | grep ^LAKE_ | sort >env
out=$PWD/images/build; mkdir -p "$out/rootfs"; echo k >"$out/vmlinuz"; echo i >"$out/initrd.cpio.zst"
echo "build-images: progress" >&2
echo "a stray line"
printf '{"kernel_version":"6.12","rootfs":{"built":true,"seconds":3,"path":"%s","bytes":10,"entries":2},' "$out/rootfs"
printf '"initrd":{"built":true,"seconds":1,"path":"%s","bytes":2,"program":"x"},' "$out/initrd.cpio.zst"
printf '"vmlinuz":{"path":"%s","bytes":2},"total_seconds":4}\n' "$out/vmlinuz""#;

    fn profile(extra: &str) -> Profile {
        load(&format!("name = \"x\"\nrelease = \"trixie\"\n{extra}")).unwrap()
    }

    #[test]
    fn the_script_gets_the_profile_and_its_report_names_the_outputs() {
        let repo = fake_repo(GOOD);
        let p = profile("[packages]\nextra = [\"htop\", \"jq\"]\ncomponents = [\"non-free-firmware\"]\n");
        let (built, report) = run_mkosi(repo.path(), Path::new("/bins"), &p).unwrap();
        assert_eq!(std::fs::read_to_string(repo.path().join("args")).unwrap(), "--bin-dir /bins --json\n");
        let env = std::fs::read_to_string(repo.path().join("env")).unwrap();
        assert!(env.contains("LAKE_RELEASE=trixie\n"), "{env}");
        assert!(env.contains("LAKE_COMPONENTS=main,non-free-firmware\n"), "{env}");
        assert!(env.contains("LAKE_EXTRA_PACKAGES=htop,jq\n"), "{env}");
        assert!(env.contains("LAKE_NETWORK=networkd\n"), "{env}");
        assert_eq!(report.kernel_version, "6.12");
        assert_eq!(report.rootfs.bytes, Some(10));
        assert_eq!(built.rootfs, repo.path().join("images/build/rootfs"));
        assert_eq!(built.initrd, repo.path().join("images/build/initrd.cpio.zst"));
    }

    #[test]
    fn a_failed_or_misused_script_is_told_apart() {
        let repo = fake_repo("exit 1");
        let e = run_mkosi(repo.path(), Path::new("/b"), &profile("")).unwrap_err();
        assert!(matches!(e, Error::ImageScript { code: Some(1), .. }), "{e:?}");
        assert!(e.to_string().contains("images/build/logs"), "{e}");
        let repo = fake_repo("exit 2");
        let e = run_mkosi(repo.path(), Path::new("/b"), &profile("")).unwrap_err();
        assert!(e.to_string().contains("usage error, exit 2"), "{e}");
    }

    #[test]
    fn a_missing_script_report_or_output_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = run_mkosi(dir.path(), Path::new("/b"), &profile("")).unwrap_err();
        assert!(matches!(e, Error::ImageScriptMissing { .. }), "{e:?}");
        let repo = fake_repo("echo done");
        let e = run_mkosi(repo.path(), Path::new("/b"), &profile("")).unwrap_err();
        assert!(e.to_string().contains("no JSON line on stdout"), "{e}");
        let repo = fake_repo(&format!("{GOOD}\nrm images/build/vmlinuz"));
        let e = run_mkosi(repo.path(), Path::new("/b"), &profile("")).unwrap_err();
        assert!(matches!(e, Error::ImageScriptOutput { what: "vmlinuz", .. }), "{e:?}");
    }
}
