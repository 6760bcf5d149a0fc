//! systemd-boot configuration and Boot Loader Specification (type 1) entries.
//!
//! Kernels and initrds are stored by content hash, `/lake/<h>/vmlinuz` and
//! `/lake/<h>/initrd` where `<h>` is the first 16 hex digits of the file's own
//! BLAKE3, so generations that boot the same kernel or initrd share the file.
//! Generation N boots through `/loader/entries/lake-N.conf`, which passes
//! `lake.gen=N` to the early-boot program. Generations deployed on a running
//! system get a boot-counted entry, `lake-N+T.conf` (see [`crate::counting`]);
//! the installer's generation 1 is uncounted, having nothing to fall back to.

use std::path::Path;

use serde::Serialize;

use crate::error::{IoContext, Result};

/// The removable-media / fallback path every UEFI firmware boots.
pub const FALLBACK_EFI_PATH: &str = "/EFI/BOOT/BOOTX64.EFI";
pub const LOADER_CONF_PATH: &str = "/loader/loader.conf";
pub const ENTRIES_DIR: &str = "/loader/entries";
pub const DEFAULT_CMDLINE: &str = "console=tty0 console=ttyS0,115200 quiet";
pub const DEFAULT_TITLE: &str = "Lake OS";
pub const SORT_KEY: &str = "lake";
/// Hex digits of the BLAKE3 that name a stored kernel or initrd.
pub const HASH_PREFIX_LEN: usize = 16;

/// A kernel or initrd as stored on the ESP (or XBOOTLDR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootFile {
    /// `b3:<64 hex>` of the content.
    pub id: String,
    /// Path on the FAT volume, e.g. `/lake/0123456789abcdef/vmlinuz`.
    pub path: String,
    pub size: u64,
}

impl BootFile {
    /// Hashes `src`; `name` is `vmlinuz` or `initrd`.
    pub fn of(src: &Path, name: &str) -> Result<BootFile> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(src).at(src)?).at(src)?;
        let size = std::fs::metadata(src).at(src)?.len();
        let hex = h.finalize().to_hex();
        Ok(BootFile { id: format!("b3:{hex}"), path: format!("/lake/{}/{name}", &hex[..HASH_PREFIX_LEN]), size })
    }
}

/// `/loader/loader.conf`: boot the newest Lake OS generation by default.
pub fn loader_conf(timeout: u32) -> String {
    format!("default lake-*\ntimeout {timeout}\neditor no\n")
}

/// A BLS type 1 entry for one generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub title: String,
    pub generation: u32,
    pub linux: String,
    pub initrd: String,
    /// Kernel command line after `lake.gen=N rw`.
    pub cmdline: String,
    /// Boot-counting tries (`lake-N+T.conf`); `None` for an uncounted entry.
    pub tries: Option<u32>,
}

impl Entry {
    pub fn file_name(&self) -> String {
        match self.tries {
            None => format!("lake-{}.conf", self.generation),
            Some(t) => format!("lake-{}+{t}.conf", self.generation),
        }
    }

    pub fn path(&self) -> String {
        format!("{ENTRIES_DIR}/{}", self.file_name())
    }

    pub fn options(&self) -> String {
        let mut o = format!("lake.gen={} rw", self.generation);
        if !self.cmdline.trim().is_empty() {
            o.push(' ');
            o.push_str(self.cmdline.trim());
        }
        o
    }

    pub fn render(&self) -> String {
        format!(
            "title {}\nversion {}\nsort-key {SORT_KEY}\nlinux {}\ninitrd {}\noptions {}\n",
            self.title,
            self.generation,
            self.linux,
            self.initrd,
            self.options()
        )
    }
}

/// The user's part of an entry's `options`: without `lake.gen=` and `rw`,
/// which [`Entry::options`] adds for the generation it boots.
pub fn cmdline_of(options: &str) -> String {
    options.split_whitespace().filter(|w| !w.starts_with("lake.gen=") && *w != "rw").collect::<Vec<_>>().join(" ")
}

/// Key/value pairs of a BLS entry or loader.conf, in order (keys such as
/// `initrd` may repeat).
pub fn parse_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(char::is_whitespace) {
            Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
            None => (l.to_owned(), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_text() {
        let e = Entry {
            title: "Lake OS".into(),
            generation: 1,
            linux: "/lake/0123456789abcdef/vmlinuz".into(),
            initrd: "/lake/fedcba9876543210/initrd".into(),
            cmdline: DEFAULT_CMDLINE.into(),
            tries: None,
        };
        assert_eq!(e.path(), "/loader/entries/lake-1.conf");
        assert_eq!(
            e.render(),
            "title Lake OS\nversion 1\nsort-key lake\nlinux /lake/0123456789abcdef/vmlinuz\n\
             initrd /lake/fedcba9876543210/initrd\noptions lake.gen=1 rw console=tty0 console=ttyS0,115200 quiet\n"
        );
        let kv = parse_conf(&e.render());
        assert_eq!(kv[0], ("title".into(), "Lake OS".into()));
        assert_eq!(kv[5].1, "lake.gen=1 rw console=tty0 console=ttyS0,115200 quiet");
        assert_eq!(loader_conf(0), "default lake-*\ntimeout 0\neditor no\n");
        assert_eq!(cmdline_of(&kv[5].1), DEFAULT_CMDLINE);
    }

    #[test]
    fn counted_entries_are_named_for_systemd_boot() {
        let e = Entry {
            title: "Lake OS".into(),
            generation: 12,
            linux: "/lake/0123456789abcdef/vmlinuz".into(),
            initrd: "/lake/fedcba9876543210/initrd".into(),
            cmdline: "quiet".into(),
            tries: Some(3),
        };
        assert_eq!(e.path(), "/loader/entries/lake-12+3.conf");
        let c = crate::counting::CountedName::parse(&e.file_name()).expect("parses back");
        assert_eq!((c.generation, c.tries_left), (12, Some(3)));
        assert_eq!(e.options(), "lake.gen=12 rw quiet");
        // Copying an entry's options for another generation drops its lake.gen= and rw.
        assert_eq!(cmdline_of("lake.gen=3 rw console=ttyS0 quiet"), "console=ttyS0 quiet");
        assert!(e.render().contains("\nversion 12\n"));
    }

    #[test]
    fn boot_files_are_named_by_content() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("k");
        std::fs::write(&p, b"kernel").expect("write");
        let f = BootFile::of(&p, "vmlinuz").expect("hash");
        let hex = blake3::hash(b"kernel").to_hex();
        assert_eq!(f.id, format!("b3:{hex}"));
        assert_eq!(f.path, format!("/lake/{}/vmlinuz", &hex[..16]));
        assert_eq!(f.size, 6);
    }
}
