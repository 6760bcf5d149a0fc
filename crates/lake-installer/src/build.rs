//! `lake-installer build`: from a profile to a bootable image. Runs the two
//! mkosi builds (root file system, initramfs) through `ci/build-images.sh`, which
//! runs Debian trixie's mkosi 25 on the build host, then installs the result into
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
        .env("LAKE_RELEASE", &profile.release)
        .env(
            "LAKE_COMPONENTS",
            std::iter::once("main").chain(profile.packages.components.iter().map(String::as_str)).collect::<Vec<_>>().join(","),
        )
        .env("LAKE_EXTRA_PACKAGES", profile.packages.extra.join(","))
        .env("LAKE_NETWORK", &profile.network)
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
}
