//! The Secure Boot chain on an ESP (and on the install medium's EFI image).
//!
//! Firmware with Secure Boot on (Microsoft's keys enrolled, as most PCs ship)
//! only starts what Microsoft's UEFI CA signed. Debian's chain, all of it from
//! Debian packages of the root file system being installed:
//!
//! | ESP path | file | package |
//! |---|---|---|
//! | `/EFI/BOOT/BOOTX64.EFI` | shim, signed by Microsoft | shim-signed |
//! | `/EFI/BOOT/mmx64.efi` | MokManager (enrols a key of the user's own) | shim-helpers-amd64-signed |
//! | `/EFI/BOOT/grubx64.efi` | systemd-boot, signed by Debian | systemd-boot-efi-amd64-signed |
//!
//! shim verifies its second stage against Debian's key (built into shim) and
//! loads it under the name `grubx64.efi`, whatever the loader is; systemd-boot
//! then loads the (Debian-signed) kernel through shim's verification protocol.
//! No `fbx64.efi` beside shim: with it, shim would run the fallback loader
//! (which looks for BOOT*.CSV files) instead of its second stage. Nothing in
//! the chain verifies the initrd or the BLS entries (docs/secure-boot.md).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// ESP paths of the chain.
pub const SHIM_ESP_PATH: &str = crate::bls::FALLBACK_EFI_PATH;
pub const MOK_MANAGER_ESP_PATH: &str = "/EFI/BOOT/mmx64.efi";
/// Where Debian's shim looks for its second stage.
pub const SECOND_STAGE_ESP_PATH: &str = "/EFI/BOOT/grubx64.efi";

/// Where the packages put the signed binaries, relative to a root file system.
pub const SHIM_SIGNED: &str = "usr/lib/shim/shimx64.efi.signed";
pub const MOK_MANAGER_SIGNED: &str = "usr/lib/shim/mmx64.efi.signed";
pub const SYSTEMD_BOOT_SIGNED: &str = "usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed";

/// The three loader files to put on an ESP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootChain {
    pub shim: PathBuf,
    pub mok_manager: PathBuf,
    pub systemd_boot: PathBuf,
}

impl BootChain {
    /// The signed loaders of the root file system at `root` (`/` on a running system).
    pub fn in_root(root: &Path) -> BootChain {
        BootChain { shim: root.join(SHIM_SIGNED), mok_manager: root.join(MOK_MANAGER_SIGNED), systemd_boot: root.join(SYSTEMD_BOOT_SIGNED) }
    }

    /// (source file, ESP path, the Debian package that has it), in boot order.
    pub fn files(&self) -> [(&Path, &'static str, &'static str); 3] {
        [
            (&self.shim, SHIM_ESP_PATH, "shim-signed"),
            (&self.mok_manager, MOK_MANAGER_ESP_PATH, "shim-helpers-amd64-signed"),
            (&self.systemd_boot, SECOND_STAGE_ESP_PATH, "systemd-boot-efi-amd64-signed"),
        ]
    }

    /// Checks that every file is there; the error names the missing one and its package.
    pub fn check(&self) -> Result<()> {
        for (src, esp, package) in self.files() {
            if !src.is_file() {
                return Err(Error::Invalid(format!(
                    "{}: missing (the Secure Boot chain's {esp} comes from it); install the Debian package {package} \
                     in the root file system the loaders are taken from (lake-installer install --loader-root DIR names another)",
                    src.display()
                )));
            }
        }
        Ok(())
    }

    /// Total bytes of the three files.
    pub fn bytes(&self) -> Result<u64> {
        let mut n = 0;
        for (src, _, _) in self.files() {
            n += std::fs::metadata(src).map_err(|e| Error::io(src, e))?.len();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_loader_names_its_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = BootChain::in_root(dir.path());
        for (src, _, _) in c.files().iter().take(2) {
            std::fs::create_dir_all(src.parent().expect("parent")).expect("mkdir");
            std::fs::write(src, b"MZ").expect("write");
        }
        let e = c.check().expect_err("systemd-boot is missing").to_string();
        assert!(e.contains("systemd-boot-efi-amd64-signed") && e.contains(SYSTEMD_BOOT_SIGNED), "{e}");
        std::fs::create_dir_all(c.systemd_boot.parent().expect("parent")).expect("mkdir");
        std::fs::write(&c.systemd_boot, b"MZ..").expect("write");
        c.check().expect("all three there");
        assert_eq!(c.bytes().expect("bytes"), 8);
        assert_eq!(c.files().map(|f| f.1), ["/EFI/BOOT/BOOTX64.EFI", "/EFI/BOOT/mmx64.efi", "/EFI/BOOT/grubx64.efi"]);
    }
}
