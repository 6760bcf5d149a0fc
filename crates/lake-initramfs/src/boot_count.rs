//! Is this boot a boot-counted try? systemd-boot sets the EFI variable
//! LoaderBootCountPath when it boots an entry named NAME+LEFT[-DONE].conf (a
//! generation deployed after installation, not yet blessed). On such a boot
//! a failure in the initramfs reboots instead of stopping in the emergency
//! shell: systemd-boot then tries again or, with no tries left, falls back to
//! the previous entry by itself.

use std::path::{Path, PathBuf};

/// The boot loader interface's vendor GUID (systemd-boot's variables).
pub const LOADER_GUID: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// Where the kernel's efivarfs is normally mounted.
pub const EFIVARS: &str = "/sys/firmware/efi/efivars";

/// The efivarfs file of loader variable `name`.
pub fn loader_var(efivars: &Path, name: &str) -> PathBuf {
    efivars.join(format!("{name}-{LOADER_GUID}"))
}

/// The entry being tried (e.g. `\loader\entries\lake-5+2-1.conf`) when this
/// boot is counted, else None.
pub fn counted_entry(efivars: &Path) -> Option<String> {
    let data = std::fs::read(loader_var(efivars, "LoaderBootCountPath")).ok()?;
    Some(efi_string(&data).unwrap_or_default())
}

/// The string value of an efivarfs file: 4 bytes of attributes, then
/// UTF-16LE up to the first NUL.
pub fn efi_string(data: &[u8]) -> Option<String> {
    let body = data.get(4..)?;
    let units: Vec<u16> = body.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).take_while(|&u| u != 0).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    fn var(s: &str) -> Vec<u8> {
        let mut v = vec![6, 0, 0, 0];
        for u in s.encode_utf16().chain([0]) {
            v.extend(u.to_le_bytes());
        }
        v
    }

    #[test]
    fn decodes_loader_strings() {
        assert_eq!(efi_string(&var("\\loader\\entries\\lake-5+2-1.conf")).as_deref(), Some("\\loader\\entries\\lake-5+2-1.conf"));
        assert_eq!(efi_string(&[6, 0, 0, 0]).as_deref(), Some(""));
        assert_eq!(efi_string(&[6, 0]), None);
        // Surrogate halves alone are not text.
        assert_eq!(efi_string(&[6, 0, 0, 0, 0x00, 0xd8]), None);
    }

    #[test]
    fn counted_only_with_the_variable() {
        let t = TestDir::new("bootcount");
        assert_eq!(counted_entry(t.path()), None);
        std::fs::write(loader_var(t.path(), "LoaderEntrySelected"), var("lake-1.conf")).unwrap();
        assert_eq!(counted_entry(t.path()), None);
        std::fs::write(
            t.path().join("LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"),
            var("\\loader\\entries\\lake-2+2-1.conf"),
        )
        .unwrap();
        assert_eq!(counted_entry(t.path()).as_deref(), Some("\\loader\\entries\\lake-2+2-1.conf"));
    }
}
