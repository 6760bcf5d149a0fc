//! Deploying a commit as a new generation that the boot loader offers: the
//! lake checkout (lakefs), the kernel and initrd on the ESP (by hash, so
//! generations share them), a boot-counted entry, the lake's default, and
//! pruning to the retention count.
//!
//! Space is checked before anything is written: a deploy that stops half way
//! on a full disk would leave a checkout no entry boots, or an entry whose
//! initrd is cut short.

use std::path::PathBuf;

use lake_posix::generation;
use lakefs::progress::Progress;
use lakefs::{Lake, ObjectId};
use serde::Serialize;

use crate::bls::{self, BootFile, Entry};
use crate::error::{Error, Result};
use crate::esp::{self, Esp, EspEntry};
use crate::{human, retention};

#[derive(Clone, Debug, Serialize)]
pub struct DeployOptions {
    /// The mounted ESP; default: found among /efi, /boot/efi, /boot.
    pub esp: Option<PathBuf>,
    /// Boot-counting tries for the new entry (`lake-N+T.conf`); `None` writes
    /// an uncounted `lake-N.conf`.
    pub tries: Option<u32>,
    /// Kernel and initrd to boot; default: those of the entry it copies
    /// (the newest good one on the ESP).
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    /// Pin the new generation (pruning keeps it, gc keeps its commit).
    pub pinned: bool,
    /// Kernel command line after `lake.gen=N rw`; default: that of the entry it copies.
    pub cmdline: Option<String>,
    pub title: Option<String>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions { esp: None, tries: Some(3), kernel: None, initrd: None, pinned: false, cmdline: None, title: None }
    }
}

/// What a deploy did.
#[derive(Clone, Debug, Serialize)]
pub struct Deployed {
    pub generation: u32,
    pub commit: ObjectId,
    /// The entry's path on the ESP, e.g. `/loader/entries/lake-5+3.conf`.
    pub entry: String,
    /// Kernel and initrd as paths on the ESP.
    pub kernel: String,
    pub initrd: String,
    /// Generations removed by retention, before (to make room) or after the deploy.
    pub pruned: Vec<u32>,
    pub esp: PathBuf,
}

/// Estimated cost of a generation's checkout on the lake's file system. File
/// content is hard links to loose objects already in the lake; what is new is
/// directories, inodes of symlinks and special files, directory entries, the
/// hot-cache view, and content not yet stored loose (packed or chunked files).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LakeNeed {
    pub bytes: u64,
    pub inodes: u64,
    pub dirs: u64,
    pub entries: u64,
    /// Content that has to be written (not yet a loose object).
    pub content_bytes: u64,
}

const BLOCK: u64 = 4096;
/// Metadata database growth and the generation's own directories.
const LAKE_SLACK: u64 = 1 << 20;

fn round_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit) * unit
}

/// What deploying `commit` will take on the lake's file system.
pub fn lake_need(lake: &Lake, commit: ObjectId) -> Result<LakeNeed> {
    let during = || format!("estimating the space generation checkout of {commit} needs");
    let c = lake.read_commit(&commit).map_err(Error::lake(during()))?;
    let entries = lake_posix::hotcache::build(lake, &c.tree).map_err(Error::lake(during()))?;
    // deploy/N and its root, upper, work dirs.
    let mut n = LakeNeed { bytes: LAKE_SLACK + 4 * BLOCK, inodes: 5, ..LakeNeed::default() };
    for e in &entries {
        n.entries += 1;
        let name_len = e.path.rsplit(|&b| b == b'/').next().map_or(0, <[u8]>::len) as u64;
        // A directory entry (ext4: 8 bytes + name, 4-aligned) and its hot-cache record.
        n.bytes += round_up(8 + name_len, 4) + e.path.len() as u64 + 48;
        match e.kind {
            2 => {
                n.dirs += 1;
                n.inodes += 1;
                n.bytes += BLOCK;
            }
            1 => {
                let stored = match (&e.id, &e.meta) {
                    (Some(id), Some(meta)) => lakefs::loose::path(lake.root(), &lakefs::loose::key(id, meta)).exists(),
                    _ => false,
                };
                if !stored {
                    n.inodes += 1;
                    n.content_bytes += round_up(e.size, BLOCK);
                }
            }
            // Symlinks longer than ext4's inline 60 bytes take a block.
            3 => {
                n.inodes += 1;
                if e.target.len() >= 60 {
                    n.bytes += BLOCK;
                }
            }
            4 => {}
            _ => n.inodes += 1,
        }
    }
    n.bytes += n.content_bytes;
    Ok(n)
}

/// What the ESP needs for `files` (those not already there), the entry and its
/// temporary copy, in whole clusters.
pub fn esp_need(esp: &Esp, files: &[&BootFile]) -> Result<u64> {
    let cluster = esp.cluster_size()?;
    let mut need = 2 * cluster;
    for f in files {
        if !esp.has_boot_file(f)? {
            // The file and (at worst) its new directory.
            need += round_up(f.size, cluster) + cluster;
        }
    }
    Ok(need)
}

fn check_space(lake: &Lake, esp: &Esp, need: &LakeNeed, boot: &[&BootFile], pruned: &[u32]) -> Result<()> {
    let after = if pruned.is_empty() { String::new() } else { format!(", even after pruning generations {pruned:?}") };
    let free = esp::free_space(lake.root())?;
    if free < need.bytes {
        return Err(Error::NoSpace {
            what: crate::error::LAKE_FS,
            path: lake.root().to_owned(),
            free: human(free),
            need: human(need.bytes),
            detail: format!(
                "estimate for the checkout of {} directories and {} entries, {} of content not yet in the lake as loose objects, and metadata{after}",
                need.dirs,
                need.entries,
                human(need.content_bytes)
            ),
        });
    }
    if let Some(inodes) = esp::free_inodes(lake.root())? {
        if inodes < need.inodes {
            return Err(Error::NoSpace {
                what: crate::error::LAKE_FS,
                path: lake.root().to_owned(),
                free: format!("{inodes} inodes"),
                need: format!("{} inodes", need.inodes),
                detail: format!("directories, symlinks and special files of the checkout{after}"),
            });
        }
    }
    let free = esp.free_space()?;
    let esp_bytes = esp_need(esp, boot)?;
    if free < esp_bytes {
        let missing: Vec<String> =
            boot.iter().filter(|f| !esp.has_boot_file(f).unwrap_or(false)).map(|f| format!("{} ({})", f.path, human(f.size))).collect();
        return Err(Error::NoSpace {
            what: crate::error::ESP,
            path: esp.root().to_owned(),
            free: human(free),
            need: human(esp_bytes),
            detail: if missing.is_empty() {
                format!("the boot entry{after}")
            } else {
                format!("{} and the boot entry{after}", missing.join(" and "))
            },
        });
    }
    Ok(())
}

fn source(explicit: &Option<PathBuf>, template: Option<&EspEntry>, esp: &Esp, what: &str) -> Result<PathBuf> {
    match (explicit, template) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(t)) => Ok(esp.host_path(if what == "kernel" { &t.linux } else { &t.initrd })),
        (None, None) => Err(Error::Invalid(format!(
            "no {what} to boot: the ESP at {} has no lake entry to copy one from; pass --kernel and --initrd",
            esp.root().display()
        ))),
    }
}

/// Deploys `commit` as a new generation: checks space (pruning beyond
/// retention once if short), checks it out in the lake, installs its kernel
/// and initrd on the ESP, writes its entry (`lake-N+T.conf`), makes it the
/// lake's default and prunes beyond retention (never the new one, the default,
/// the booted one or pinned ones).
pub fn deploy_generation(lake: &Lake, commit: ObjectId, opts: &DeployOptions, progress: &dyn Progress) -> Result<Deployed> {
    if opts.tries == Some(0) {
        return Err(Error::Invalid("--tries must be at least 1 (or no counting at all)".into()));
    }
    let esp = Esp::find(opts.esp.as_deref())?;
    let _lock = esp.lock()?;
    let template = esp.template()?;
    let kernel_src = source(&opts.kernel, template.as_ref(), &esp, "kernel")?;
    let initrd_src = source(&opts.initrd, template.as_ref(), &esp, "initrd")?;
    let kernel = BootFile::of(&kernel_src, "vmlinuz")?;
    let initrd = BootFile::of(&initrd_src, "initrd")?;
    let cmdline = match (&opts.cmdline, &template) {
        (Some(c), _) => c.clone(),
        (None, Some(t)) => bls::cmdline_of(&t.options),
        (None, None) => bls::DEFAULT_CMDLINE.into(),
    };
    let title = match (&opts.title, &template) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) if !t.title.is_empty() => t.title.clone(),
        _ => bls::DEFAULT_TITLE.into(),
    };
    let keep = generation::keep(lake).map_err(Error::lake("reading the retention count"))?;
    let boot = [&kernel, &initrd];

    let need = lake_need(lake, commit)?;
    let mut pruned = Vec::new();
    if let Err(short) = check_space(lake, &esp, &need, &boot, &[]) {
        // Generations beyond retention would go after the deploy anyway.
        let r = retention::prune_locked(lake, &esp, keep, &[], &[&kernel.path, &initrd.path])?;
        pruned = r.generations();
        if pruned.is_empty() {
            return Err(short);
        }
        check_space(lake, &esp, &need, &boot, &pruned)?;
    }

    let g = generation::deploy(lake, commit, opts.pinned, progress)
        .map_err(Error::lake(format!("deploying commit {commit} as a new generation")))?;
    let n = g.number;
    let entry = Entry { title, generation: n, linux: kernel.path.clone(), initrd: initrd.path.clone(), cmdline, tries: opts.tries };
    let written = (|| {
        // An entry left by an earlier generation of the same number.
        esp.remove_generation(n)?;
        esp.install_boot_file(&kernel_src, &kernel)?;
        esp.install_boot_file(&initrd_src, &initrd)?;
        esp.write_entry(&entry)
    })();
    let entry_path = match written {
        Ok(p) => p,
        Err(e) => {
            // Nothing boots it: take it back (the first generation, being the
            // default, stays and the error says why the entry is missing).
            let _ = esp.remove_generation(n);
            let _ = generation::remove(lake, n);
            let _ = esp.drop_unreferenced(&[]);
            return Err(e);
        }
    };
    generation::set_default(lake, n).map_err(Error::lake(format!("making generation {n} the default")))?;
    let r = retention::prune_locked(lake, &esp, keep, &[n], &[])?;
    pruned.extend(r.generations());
    Ok(Deployed { generation: n, commit, entry: entry_path, kernel: kernel.path, initrd: initrd.path, pruned, esp: esp.root().to_owned() })
}
