//! mkfs.lakefs: format a block device or an image-file region as a lake
//! (ext4 substrate labelled `lake` holding the lake layout), optionally
//! populated from a directory. Installed as `mkfs.lakefs` (ci/install.sh).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use lakefs::substrate::{self, TargetKind};

#[derive(Parser)]
#[command(
    name = "mkfs.lakefs",
    version,
    about = "Format a block device or an image file as a lake partition",
    long_about = "Format a block device or an image file as a lake partition: an ext4 file system \
        labelled 'lake' that holds the lake layout (superblock, metadata database, packs).\n\n\
        Examples:\n  mkfs.lakefs --size 4G --populate ./rootfs lake.img\n  \
        mkfs.lakefs --offset 537919488 --size 8G --yes disk.raw     # a partition inside a disk image\n  \
        mkfs.lakefs --yes /dev/sdb2\n\n\
        The lake is built in a staging directory and written with `mke2fs -d`, so image files \
        need no loop device. Existing data is only overwritten with --yes."
)]
struct Args {
    /// Block device, or image file (created if missing; then --size is required).
    target: PathBuf,
    /// Byte offset of the file system inside the target (a partition in a disk image).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    offset: u64,
    /// File-system size (e.g. 512M, 8G). Default: the whole device or file after --offset.
    #[arg(long, value_parser = parse_size)]
    size: Option<u64>,
    /// Import this directory as the first commit.
    #[arg(long, value_name = "DIR")]
    populate: Option<PathBuf>,
    /// Ref for the populated commit.
    #[arg(long = "ref", default_value = "main")]
    reference: String,
    /// Store populated files as loose, hard-linkable objects (POSIX zone).
    #[arg(long)]
    loose: bool,
    #[arg(long, default_value = substrate::LABEL)]
    label: String,
    /// Where to stage the lake before writing it (needs room for the populated content).
    #[arg(long, value_name = "DIR")]
    staging: Option<PathBuf>,
    /// Overwrite a block device or existing data without asking.
    #[arg(long, short = 'y')]
    yes: bool,
    #[arg(long)]
    json: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    substrate::parse_size(s).map_err(|e| e.to_string())
}

fn main() {
    lake_cli_docs::maybe_generate(Args::command(), lake_cli_docs::Section::Admin);
    if let Err(e) = run(Args::parse()) {
        eprintln!("mkfs.lakefs: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(a: Args) -> Result<()> {
    let kind = substrate::target_kind(&a.target)?;
    let existing = if kind == TargetKind::New { None } else { substrate::probe(&a.target, a.offset) };
    if kind == TargetKind::BlockDevice {
        let m = substrate::mounted_at(&a.target);
        if !m.is_empty() {
            bail!("{} (or a partition on it) is mounted at {}; unmount it first", a.target.display(), m.join(", "));
        }
    }
    let what = match kind {
        TargetKind::BlockDevice => "block device",
        TargetKind::ImageFile => "image file",
        TargetKind::New => "new image file",
    };
    eprintln!("mkfs.lakefs will:");
    eprintln!(
        "  format {} {} at offset {} with {} as ext4 labelled '{}'",
        what,
        a.target.display(),
        a.offset,
        a.size.map_or("all remaining space".to_string(), |s| format!("{s} bytes")),
        a.label
    );
    if let Some(e) = &existing {
        eprintln!("  DESTROYING what is there now: {e}");
    }
    if let Some(p) = &a.populate {
        eprintln!("  import {} as the first commit on '{}'", p.display(), a.reference);
    }
    if (kind == TargetKind::BlockDevice || existing.is_some()) && !a.yes {
        bail!("refusing to overwrite {} without --yes", a.target.display());
    }
    let staging_parent = a.staging.clone().unwrap_or_else(std::env::temp_dir);
    let staging = tempfile_dir(&staging_parent)?;
    let result = (|| -> Result<serde_json::Value> {
        let lake = lakefs::Lake::create(&staging, &Default::default())?;
        let uuid = lake.superblock().uuid_string();
        let mut commit = None;
        if let Some(src) = &a.populate {
            let bar = lakefs::progress::Bar::new(false);
            let req = lakefs::ops::CommitRequest {
                src,
                reference: &a.reference,
                message: "populated by mkfs.lakefs",
                scope: "path:/",
                trigger: "mkfs",
                changed: None,
                options: lakefs::import::ImportOptions { loose: a.loose },
                extra: vec![],
                allow_empty: false,
            };
            let out = lakefs::ops::commit_dir(&lake, &req, &bar).with_context(|| format!("importing {}", src.display()))?;
            commit = Some(out.commit);
        }
        drop(lake);
        substrate::format(&substrate::Format {
            target: &a.target,
            offset: a.offset,
            size: a.size,
            label: &a.label,
            uuid: uuid.clone(),
            populate: &staging,
        })?;
        Ok(serde_json::json!({"target": a.target, "offset": a.offset, "size": a.size, "uuid": uuid, "commit": commit}))
    })();
    let _ = std::fs::remove_dir_all(&staging);
    let v = result?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("lake {} created on {}", v["uuid"].as_str().unwrap_or(""), a.target.display());
        if let Some(c) = v["commit"].as_str() {
            println!("first commit {c}");
        }
    }
    Ok(())
}

fn tempfile_dir(parent: &std::path::Path) -> Result<PathBuf> {
    let d = parent.join(format!("mkfs-lakefs-{}", lakefs::util::random_hex(6)));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    Ok(d)
}
