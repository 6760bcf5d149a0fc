//! A mounted ESP: the running system's `/efi` (the initramfs mounts the ESP of
//! the lake's disk there), or any directory given with `--esp` (tests use a
//! loop-mounted vfat image).
//!
//! Files are replaced atomically as far as FAT allows: written to a temporary
//! name that systemd-boot ignores (no `.conf` suffix), synced, then renamed.

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bls::{self, BootFile, Entry};
use crate::counting::{CountedName, State};
use crate::error::{Error, IoContext, Result};

/// Where a running system's ESP (or XBOOTLDR) may be mounted, in the order tried.
pub const SEARCH_PATHS: [&str; 3] = ["/efi", "/boot/efi", "/boot"];
const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Directory on the ESP holding kernels and initrds by content hash.
pub const BOOT_FILES_DIR: &str = "/lake";

#[derive(Clone, Debug)]
pub struct Esp {
    root: PathBuf,
}

/// A lake entry found on the ESP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EspEntry {
    pub file_name: String,
    /// Path on the ESP, e.g. `/loader/entries/lake-5+3.conf`.
    pub path: String,
    pub generation: u32,
    pub tries_left: Option<u32>,
    pub tries_done: Option<u32>,
    pub state: State,
    pub title: String,
    /// Kernel and (first) initrd as paths on the ESP.
    pub linux: String,
    pub initrd: String,
    pub options: String,
}

/// Held while a command changes the ESP (a lock on its root directory).
pub struct EspLock {
    _dir: File,
}

impl Esp {
    /// The ESP at `explicit` (any directory), else the first of
    /// [`SEARCH_PATHS`] that is a mount point and holds `loader/`.
    pub fn find(explicit: Option<&Path>) -> Result<Esp> {
        if let Some(d) = explicit {
            if !d.is_dir() {
                return Err(Error::NotADirectory { path: d.to_owned() });
            }
            return Ok(Esp { root: d.to_owned() });
        }
        let mounts = mount_points(Path::new(MOUNTINFO));
        SEARCH_PATHS
            .iter()
            .map(Path::new)
            .find(|p| mounts.contains(*p) && p.join("loader").is_dir())
            .map(|p| Esp { root: p.to_owned() })
            .ok_or_else(|| Error::NoEsp { tried: SEARCH_PATHS.join(", ") })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a path on the ESP (`/lake/<h>/vmlinuz`) is in this file system.
    pub fn host_path(&self, esp_path: &str) -> PathBuf {
        self.root.join(esp_path.trim_start_matches(['/', '\\']).replace('\\', "/"))
    }

    fn entries_dir(&self) -> PathBuf {
        self.host_path(bls::ENTRIES_DIR)
    }

    /// Serialises changes to the ESP between commands.
    pub fn lock(&self) -> Result<EspLock> {
        let dir = File::open(&self.root).at(&self.root)?;
        lakefs::sys::lock_exclusive(&dir, true).at(&self.root)?;
        Ok(EspLock { _dir: dir })
    }

    /// Whether the ESP already holds `f` with the same content (BLAKE3 checked).
    pub fn has_boot_file(&self, f: &BootFile) -> Result<bool> {
        let p = self.host_path(&f.path);
        if !p.is_file() {
            return Ok(false);
        }
        Ok(BootFile::of(&p, "")?.id == f.id)
    }

    /// Copies `src` (whose hash is `f`) to `f.path` unless the same content is
    /// already there. Returns whether it wrote.
    pub fn install_boot_file(&self, src: &Path, f: &BootFile) -> Result<bool> {
        if self.has_boot_file(f)? {
            return Ok(false);
        }
        let dest = self.host_path(&f.path);
        let mut input = File::open(src).at(src)?;
        write_atomic(&dest, |out| copy_plain(&mut input, out))?;
        // The copy is what boots: check it, not the source.
        if !self.has_boot_file(f)? {
            return Err(Error::Invalid(format!(
                "{}: the copy of {} on the ESP does not match its hash {}",
                dest.display(),
                src.display(),
                f.id
            )));
        }
        Ok(true)
    }

    /// Writes `e` as `/loader/entries/<its file name>`; returns that ESP path.
    pub fn write_entry(&self, e: &Entry) -> Result<String> {
        let text = e.render();
        write_atomic(&self.host_path(&e.path()), |out| out.write_all(text.as_bytes()))?;
        Ok(e.path())
    }

    /// The lake entries (`lake-N[+L[-D]].conf`), by generation.
    pub fn entries(&self) -> Result<Vec<EspEntry>> {
        let dir = self.entries_dir();
        let mut out = Vec::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(c) = CountedName::parse(&name) else { continue };
            let text = std::fs::read_to_string(e.path()).at(e.path())?;
            let kv = bls::parse_conf(&text);
            let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap_or_default();
            out.push(EspEntry {
                path: format!("{}/{name}", bls::ENTRIES_DIR),
                file_name: name,
                generation: c.generation,
                tries_left: c.tries_left,
                tries_done: c.tries_done,
                state: c.state(),
                title: get("title"),
                linux: get("linux"),
                initrd: get("initrd"),
                options: get("options"),
            });
        }
        out.sort_by(|a, b| a.generation.cmp(&b.generation).then_with(|| a.file_name.cmp(&b.file_name)));
        Ok(out)
    }

    /// Removes every entry of generation `n`, whatever its counter; returns
    /// the ESP paths removed.
    pub fn remove_generation(&self, n: u32) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for e in self.entries()?.into_iter().filter(|e| e.generation == n) {
            let p = self.host_path(&e.path);
            std::fs::remove_file(&p).at(&p)?;
            removed.push(e.path);
        }
        if !removed.is_empty() {
            sync_dir(&self.entries_dir())?;
        }
        Ok(removed)
    }

    /// Every file any entry in `/loader/entries` boots (all entries, not only
    /// the lake's: another entry may share a kernel), lower-cased ESP paths.
    fn referenced(&self) -> Result<HashSet<String>> {
        let dir = self.entries_dir();
        let mut out = HashSet::new();
        if !dir.is_dir() {
            return Ok(out);
        }
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let p = e.at(&dir)?.path();
            if p.extension().is_none_or(|x| x != "conf") || !p.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&p).at(&p)?;
            for (k, v) in bls::parse_conf(&text) {
                if matches!(k.as_str(), "linux" | "initrd" | "efi" | "devicetree") {
                    out.insert(normalize(&v));
                }
            }
        }
        Ok(out)
    }

    /// Removes `/lake/<hash>/` directories no entry uses (and none of `keep`,
    /// ESP paths of files about to be used); returns the directories removed.
    pub fn drop_unreferenced(&self, keep: &[&str]) -> Result<Vec<String>> {
        let mut used = self.referenced()?;
        used.extend(keep.iter().map(|k| normalize(k)));
        let dir = self.host_path(BOOT_FILES_DIR);
        let mut dropped = Vec::new();
        if !dir.is_dir() {
            return Ok(dropped);
        }
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().to_lowercase();
            if name.len() != bls::HASH_PREFIX_LEN || !name.bytes().all(|b| b.is_ascii_hexdigit()) || !e.path().is_dir() {
                continue;
            }
            let prefix = format!("{BOOT_FILES_DIR}/{name}/");
            if used.iter().any(|u| u.starts_with(&prefix)) {
                continue;
            }
            std::fs::remove_dir_all(e.path()).at(e.path())?;
            dropped.push(format!("{BOOT_FILES_DIR}/{}", e.file_name().to_string_lossy()));
        }
        if !dropped.is_empty() {
            sync_dir(&dir)?;
        }
        Ok(dropped)
    }

    /// Bytes available on the ESP's file system.
    pub fn free_space(&self) -> Result<u64> {
        free_space(&self.root)
    }

    /// The allocation unit (FAT cluster): files take whole ones.
    pub fn cluster_size(&self) -> Result<u64> {
        let s = nix::sys::statvfs::statvfs(&self.root).map_err(|e| Error::io(&self.root, e.into()))?;
        Ok((s.fragment_size() as u64).max(512))
    }

    /// The entry a new generation copies its kernel, initrd, title and command
    /// line from: the newest good one (it booted), else the newest of any state.
    pub fn template(&self) -> Result<Option<EspEntry>> {
        let all = self.entries()?;
        let good = all.iter().rev().find(|e| e.state == State::Good);
        Ok(good.or(all.last()).cloned())
    }

    /// Kernel and initrd (paths in this file system) of [`Esp::template`].
    pub fn current_boot_files(&self) -> Result<Option<(PathBuf, PathBuf)>> {
        Ok(self.template()?.map(|e| (self.host_path(&e.linux), self.host_path(&e.initrd))))
    }
}

/// Bytes available to unprivileged writers on the file system holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| Error::io(path, e.into()))?;
    Ok(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Free inodes on the file system holding `path`; `None` when it does not count them (FAT).
pub fn free_inodes(path: &Path) -> Result<Option<u64>> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| Error::io(path, e.into()))?;
    Ok((s.files() > 0).then_some(s.files_available() as u64))
}

fn normalize(esp_path: &str) -> String {
    let p = esp_path.trim().replace('\\', "/").to_lowercase();
    if p.starts_with('/') {
        p
    } else {
        format!("/{p}")
    }
}

/// Copies with read/write: `std::io::copy` between files uses copy_file_range
/// and sendfile, which FUSE FAT drivers answer in ways std asserts on when full.
fn copy_plain(input: &mut File, out: &mut File) -> std::io::Result<()> {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n])?;
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir).and_then(|f| f.sync_all()) {
        // Some file systems cannot fsync a directory; the rename is still done.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.at(dir),
    }
}

/// Writes `dest` through a temporary name in its directory, synced, then renamed.
fn write_atomic(dest: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let dir = dest.parent().ok_or_else(|| Error::Invalid(format!("{}: no parent directory", dest.display())))?;
    std::fs::create_dir_all(dir).at(dir)?;
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let r = (|| {
        let mut f = File::create(&tmp)?;
        fill(&mut f)?;
        f.sync_all()
    })();
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(dest, e));
    }
    std::fs::rename(&tmp, dest).at(dest)?;
    sync_dir(dir)
}

/// Mount points listed in a mountinfo file (field 5, octal escapes undone).
fn mount_points(mountinfo: &Path) -> HashSet<PathBuf> {
    let text = std::fs::read_to_string(mountinfo).unwrap_or_default();
    text.lines().filter_map(|l| l.split(' ').nth(4)).map(|m| PathBuf::from(unescape(m))).collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32, tries: Option<u32>, kernel: &BootFile, initrd: &BootFile) -> Entry {
        Entry {
            title: format!("Lake OS {n}"),
            generation: n,
            linux: kernel.path.clone(),
            initrd: initrd.path.clone(),
            cmdline: "console=ttyS0".into(),
            tries,
        }
    }

    fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn boot_files_entries_and_cleanup_on_a_directory() {
        let t = tempfile::tempdir().expect("tempdir");
        let esp_dir = t.path().join("esp");
        std::fs::create_dir(&esp_dir).expect("mkdir");
        let esp = Esp::find(Some(&esp_dir)).expect("explicit dir");
        assert!(Esp::find(Some(&t.path().join("missing"))).is_err());
        let k1 = file(t.path(), "k1", b"kernel one");
        let k2 = file(t.path(), "k2", b"kernel two");
        let i1 = file(t.path(), "i1", b"initrd one");
        let (bk1, bk2, bi1) =
            (BootFile::of(&k1, "vmlinuz").unwrap(), BootFile::of(&k2, "vmlinuz").unwrap(), BootFile::of(&i1, "initrd").unwrap());

        assert!(esp.install_boot_file(&k1, &bk1).unwrap(), "written the first time");
        assert!(!esp.install_boot_file(&k1, &bk1).unwrap(), "skipped: same hash present");
        // A damaged copy is replaced, not trusted.
        std::fs::write(esp.host_path(&bk1.path), b"garbage").unwrap();
        assert!(esp.install_boot_file(&k1, &bk1).unwrap());
        assert_eq!(std::fs::read(esp.host_path(&bk1.path)).unwrap(), b"kernel one");
        esp.install_boot_file(&i1, &bi1).unwrap();
        esp.install_boot_file(&k2, &bk2).unwrap();

        esp.write_entry(&entry(1, None, &bk1, &bi1)).unwrap();
        esp.write_entry(&entry(2, Some(3), &bk1, &bi1)).unwrap();
        esp.write_entry(&entry(10, Some(3), &bk2, &bi1)).unwrap();
        std::fs::write(esp.host_path("/loader/entries/other.conf"), "title other\nlinux /vmlinuz-other\n").unwrap();
        // What systemd-boot does to entries: 10 used up its tries, 2 is mid-count.
        std::fs::rename(esp.host_path("/loader/entries/lake-10+3.conf"), esp.host_path("/loader/entries/lake-10+0-3.conf")).unwrap();
        std::fs::rename(esp.host_path("/loader/entries/lake-2+3.conf"), esp.host_path("/loader/entries/lake-2+1-2.conf")).unwrap();
        let es = esp.entries().unwrap();
        let got: Vec<(u32, State)> = es.iter().map(|e| (e.generation, e.state)).collect();
        assert_eq!(got, [(1, State::Good), (2, State::Counting { left: 1 }), (10, State::Bad)]);
        assert_eq!(es[0].options, "lake.gen=1 rw console=ttyS0");
        assert_eq!(es[2].linux, bk2.path);
        assert!(std::fs::read_dir(esp.host_path("/loader/entries")).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));

        // The template is the newest good entry, not the newest.
        let tpl = esp.template().unwrap().expect("template");
        assert_eq!(tpl.generation, 1);
        assert_eq!(esp.current_boot_files().unwrap(), Some((esp.host_path(&bk1.path), esp.host_path(&bi1.path))));

        // Removing generation 1 leaves 10 (and its counted name) alone.
        assert_eq!(esp.remove_generation(1).unwrap(), ["/loader/entries/lake-1.conf"]);
        assert_eq!(esp.remove_generation(10).unwrap(), ["/loader/entries/lake-10+0-3.conf"]);
        assert!(esp.remove_generation(10).unwrap().is_empty());
        // Kernel two is now unreferenced; kernel one is still used by generation 2.
        let k2_dir = Path::new(&bk2.path).parent().unwrap().to_str().unwrap().to_owned();
        assert_eq!(esp.drop_unreferenced(&[]).unwrap(), [k2_dir]);
        assert!(!esp.host_path(&bk2.path).exists() && esp.host_path(&bk1.path).exists());
        // Without good entries the newest of any state is the template.
        assert_eq!(esp.template().unwrap().expect("template").generation, 2);
        // A kept path survives even with no entry.
        esp.remove_generation(2).unwrap();
        assert!(esp.drop_unreferenced(&[&bk1.path]).unwrap().len() == 1, "only the initrd dir goes");
        assert!(esp.host_path(&bk1.path).exists());
        assert_eq!(esp.template().unwrap(), None);
        assert!(esp.free_space().unwrap() > 0);
    }

    #[test]
    fn mountinfo_parsing() {
        let t = tempfile::tempdir().expect("tempdir");
        let mi = t.path().join("mountinfo");
        std::fs::write(
            &mi,
            "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
             40 22 254:1 / /efi rw,relatime shared:2 - vfat /dev/vda1 rw\n\
             41 22 0:5 / /mnt/with\\040space rw - tmpfs tmpfs rw\n",
        )
        .unwrap();
        let m = mount_points(&mi);
        assert!(m.contains(Path::new("/efi")) && m.contains(Path::new("/mnt/with space")) && !m.contains(Path::new("/boot")));
    }
}
