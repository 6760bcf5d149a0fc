//! `lake-installer build`: from a profile to a bootable image. Runs the two
//! mkosi builds (root file system, initramfs) through `ci/build-images.sh`, which
//! carries the mkosi 14 host workarounds, then installs the result into
//! `images/<name>.raw`. The profile format is documented in docs/profiles.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::units;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    #[serde(default)]
    pub description: String,
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
}

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
    for (key, v) in [("image.size", &p.image.size), ("image.esp_size", &p.image.esp_size)] {
        units::parse_size(v).map_err(|e| Error::Invalid(format!("profile {}: {key} = '{v}': {e}", path.display())))?;
    }
    if let Some(bad) = p.packages.extra.iter().find(|n| n.is_empty() || n.contains(|c: char| c.is_whitespace() || c == ',')) {
        return Err(Error::Invalid(format!("profile {}: packages.extra has an invalid package name '{bad}'", path.display())));
    }
    Ok(p)
}

/// Outputs of the mkosi builds, as ci/build-images.sh leaves them.
pub struct Built {
    pub rootfs: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// Runs both mkosi builds with the workspace binaries from `bin_dir` copied in.
pub fn run_mkosi(repo: &Path, bin_dir: &Path, profile: &Profile) -> Result<Built> {
    let script = repo.join("ci/build-images.sh");
    if !script.exists() {
        return Err(Error::Invalid(format!(
            "{} not found: run lake-installer build from the repository root (or pass --repo)",
            script.display()
        )));
    }
    let st = Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(bin_dir)
        .env("LAKE_EXTRA_PACKAGES", profile.packages.extra.join(","))
        .current_dir(repo)
        .status()
        .map_err(|e| Error::Invalid(format!("cannot run {}: {e}", script.display())))?;
    if !st.success() {
        return Err(Error::Invalid(format!("the mkosi builds failed ({st}); see images/build/logs/ for the full mkosi output")));
    }
    let out = repo.join("images/build");
    let built = Built { rootfs: out.join("rootfs"), kernel: out.join("vmlinuz"), initrd: out.join("initrd.cpio.zst") };
    for p in [&built.rootfs, &built.kernel, &built.initrd] {
        if !p.exists() {
            return Err(Error::Invalid(format!("the mkosi builds finished but {} is missing", p.display())));
        }
    }
    Ok(built)
}
