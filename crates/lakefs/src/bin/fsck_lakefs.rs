//! fsck.lakefs: check a lake. On a device or image: `e2fsck -n` of the ext4
//! substrate, then a read-only mount and a full lake verification. On a
//! directory: the lake verification alone. Exit codes follow fsck(8):
//! 0 clean, 4 problems found (not corrected), 8 operational error.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use lakefs::substrate::{self, TargetKind};

#[derive(Parser)]
#[command(
    name = "fsck.lakefs",
    version,
    about = "Check a lake: the ext4 substrate and every object in it (read-only)",
    long_about = "Check a lake: the ext4 substrate (e2fsck -n) and every object in it (re-hashed), \
        naming each damaged object and the paths that use it. Nothing is modified.\n\n\
        Examples:\n  fsck.lakefs /dev/sdb2\n  fsck.lakefs --offset 537919488 disk.raw\n  fsck.lakefs /lake      # a mounted lake directory\n\n\
        Exit status: 0 clean, 4 problems found, 8 could not check."
)]
struct Args {
    /// Block device, image file, or lake directory.
    target: PathBuf,
    /// Byte offset of the file system inside an image file.
    #[arg(long, default_value = "0", value_parser = |s: &str| substrate::parse_size(s).map_err(|e| e.to_string()))]
    offset: u64,
    /// Accepted for fsck(8) compatibility: checks are always read-only.
    #[arg(short = 'n', hide = true)]
    no: bool,
    #[arg(long)]
    json: bool,
    #[arg(long, short)]
    quiet: bool,
}

fn main() {
    match run(Args::parse()) {
        Ok(true) => {}
        Ok(false) => std::process::exit(4),
        Err(e) => {
            eprintln!("fsck.lakefs: error: {e:#}");
            std::process::exit(8);
        }
    }
}

fn check_dir(dir: &std::path::Path, a: &Args, ext4: Option<String>) -> Result<bool> {
    let lake = lakefs::Lake::open(dir).with_context(|| format!("opening the lake at {}", dir.display()))?;
    let bar = lakefs::progress::Bar::new(a.quiet);
    let r = lakefs::verify::verify(&lake, &bar)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({"substrate": ext4, "lake": r}))?);
    } else {
        for p in &r.problems {
            println!("{p}");
        }
        println!(
            "{}: {} packs, {} objects, {} loose, {} commits: {}",
            a.target.display(),
            r.packs,
            r.objects,
            r.loose,
            r.commits,
            if r.clean() { "clean".to_string() } else { format!("{} problem(s)", r.problems.len()) }
        );
    }
    Ok(r.clean())
}

fn run(a: Args) -> Result<bool> {
    if a.target.is_dir() {
        return check_dir(&a.target, &a, None);
    }
    if substrate::target_kind(&a.target)? == TargetKind::New {
        anyhow::bail!("{} does not exist", a.target.display());
    }
    let (dev, loopdev) = substrate::attach(&a.target, a.offset, None, true)?;
    let ext4 = substrate::check_ext4(&dev);
    let ext4 = match ext4 {
        Ok(Ok(_)) => "clean".to_string(),
        Ok(Err(report)) => {
            if let Some(l) = &loopdev {
                substrate::detach(l);
            }
            println!("{}: the ext4 substrate has errors (run e2fsck -f on it, then fsck.lakefs again):\n{report}", a.target.display());
            return Ok(false);
        }
        Err(e) => {
            if let Some(l) = &loopdev {
                substrate::detach(l);
            }
            return Err(e.into());
        }
    };
    let m = substrate::mount(&dev, loopdev, true).with_context(|| format!("mounting {} read-only", dev.display()))?;
    check_dir(&m.dir, &a, Some(ext4))
}
