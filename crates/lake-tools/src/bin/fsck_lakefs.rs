//! fsck.lakefs: check a lake. On a device or image: `e2fsck -n` of the ext4
//! substrate, then a read-only mount and a full lake verification. On a
//! directory: the lake verification alone. Also checks that the lake's own files
//! are private (see `lakefs::privacy`); `-y` makes them so. Exit codes follow
//! fsck(8): 0 clean, 1 problems corrected, 4 problems left, 8 operational error.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use lakefs::substrate::{self, TargetKind};

#[derive(Parser)]
#[command(
    name = "fsck.lakefs",
    version,
    about = "Check a lake: the ext4 substrate, every object in it, and who may read it",
    long_about = "Check a lake: the ext4 substrate (e2fsck -n) and every object in it (re-hashed), \
        naming each damaged object and the paths that use it, and that the lake's own files \
        (meta.db, packs, refs, volumes) are readable by their owner only. Nothing is modified \
        unless -y is given, which makes the lake's own files private again.\n\n\
        Examples:\n  fsck.lakefs /dev/sdb2\n  fsck.lakefs --offset 537919488 disk.raw\n  fsck.lakefs /lake      # a mounted lake directory\n  \
        fsck.lakefs -y /lake   # also fix what can be fixed (file modes)\n\n\
        Exit status: 0 clean, 1 problems corrected, 4 problems left, 8 could not check."
)]
struct Args {
    /// Block device, image file, or lake directory.
    target: PathBuf,
    /// Byte offset of the file system inside an image file.
    #[arg(long, default_value = "0", value_parser = |s: &str| substrate::parse_size(s).map_err(|e| e.to_string()))]
    offset: u64,
    /// Check only, change nothing (the default).
    #[arg(short = 'n', conflicts_with = "yes")]
    no: bool,
    /// Fix what can be fixed safely: the modes of the lake's own files. (-a and -p,
    /// fsck(8)'s automatic repair, mean the same.)
    #[arg(short = 'y', visible_short_aliases = ['a', 'p'])]
    yes: bool,
    #[arg(long)]
    json: bool,
    #[arg(long, short)]
    quiet: bool,
}

fn main() {
    lake_cli_docs::maybe_generate(Args::command(), lake_cli_docs::Section::Admin);
    match run(Args::parse()) {
        Ok(Outcome::Clean) => {}
        Ok(Outcome::Corrected) => std::process::exit(1),
        Ok(Outcome::Problems) => std::process::exit(4),
        Err(e) => {
            eprintln!("{}", lake_tools::error_line("fsck.lakefs", "error: ", &e));
            std::process::exit(8);
        }
    }
}

enum Outcome {
    Clean,
    Corrected,
    Problems,
}

fn check_dir(dir: &std::path::Path, a: &Args, ext4: Option<String>) -> Result<Outcome> {
    let lake = lakefs::Lake::open(dir).with_context(|| format!("opening the lake at {}", dir.display()))?;
    let bar = lakefs::progress::Bar::new(a.quiet);
    let r = lakefs::verify::verify(&lake, &bar)?;
    let exposed = if a.yes { lakefs::privacy::tighten(dir)? } else { lakefs::privacy::exposed(dir)? };
    if a.json {
        let exposed: Vec<_> = exposed.iter().map(|e| serde_json::json!({"path": e.path, "mode": format!("{:04o}", e.mode)})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"substrate": ext4, "lake": r, "exposed": exposed, "fixed": a.yes}))?
        );
    } else {
        for p in &r.problems {
            println!("{p}");
        }
        for e in &exposed {
            println!(
                "{}: mode {:04o}: other users may reach the lake's own files{}",
                e.path.display(),
                e.mode,
                if a.yes { format!("; made {:04o}", e.mode & !0o077) } else { " (fsck.lakefs -y makes them private)".into() }
            );
        }
        println!(
            "{}: {} packs, {} objects, {} loose, {} commits: {}",
            a.target.display(),
            r.packs,
            r.objects,
            r.loose,
            r.commits,
            if r.clean() && exposed.is_empty() {
                "clean".to_string()
            } else {
                format!("{} problem(s), {} exposed path(s){}", r.problems.len(), exposed.len(), if a.yes { " fixed" } else { "" })
            }
        );
    }
    Ok(match (r.clean(), exposed.is_empty(), a.yes) {
        (true, true, _) => Outcome::Clean,
        (true, false, true) => Outcome::Corrected,
        _ => Outcome::Problems,
    })
}

fn run(a: Args) -> Result<Outcome> {
    if a.target.is_dir() {
        return check_dir(&a.target, &a, None);
    }
    if substrate::target_kind(&a.target)? == TargetKind::New {
        anyhow::bail!("{} does not exist", a.target.display());
    }
    // Read-only unless asked to fix.
    let (dev, loopdev) = substrate::attach(&a.target, a.offset, None, !a.yes)?;
    let ext4 = substrate::check_ext4(&dev);
    let ext4 = match ext4 {
        Ok(Ok(_)) => "clean".to_string(),
        Ok(Err(report)) => {
            if let Some(l) = &loopdev {
                substrate::detach(l);
            }
            println!("{}: the ext4 substrate has errors (run e2fsck -f on it, then fsck.lakefs again):\n{report}", a.target.display());
            return Ok(Outcome::Problems);
        }
        Err(e) => {
            if let Some(l) = &loopdev {
                substrate::detach(l);
            }
            return Err(e.into());
        }
    };
    let m = substrate::mount(&dev, loopdev, !a.yes).with_context(|| format!("mounting {}", dev.display()))?;
    check_dir(&m.dir, &a, Some(ext4))
}
