//! `lakectl generation`: list, deploy, pin, keep, prune and remove the lake's
//! generations and their boot entries. The work is lake_posix::generation (the
//! lake side) and lake_boot (the ESP side); this file parses and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use lake_boot::esp::{Esp, EspEntry};
use lake_boot::retention;
use lake_posix::generation::{self, Generation};
use lakefs::Lake;

use crate::show;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct EspArg {
    /// The mounted EFI system partition (default: the first of /efi, /boot/efi,
    /// /boot that is a mount point holding loader/).
    #[arg(long, value_name = "DIR")]
    pub esp: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum GenerationCmd {
    /// List generations: number, commit, creation time, whether pinned, the default
    /// or booted, and the state of its boot entry (good, counting N left, bad).
    #[command(after_help = "A boot entry is `good` once a boot of it completed (or it was never counted, as the \
        installer's generation 1), `counting (N left)` while systemd-boot still tries it, and `bad` when every try \
        failed (systemd-boot then boots the previous entry). Entry states need the ESP: found at /efi, /boot/efi \
        or /boot, or given with --esp.")]
    List {
        #[command(flatten)]
        esp: EspArg,
    },
    /// Deploy a commit as a new generation with a boot-counted entry, make it the
    /// default and prune beyond the retention count.
    #[command(after_help = "The kernel, initrd, title and command line are copied from the newest good entry on \
        the ESP unless given. Kernels and initrds are stored once per content hash (/lake/<hash>/ on the ESP). \
        Space on the lake and the ESP is checked before anything is written.\n\nExamples:\n  \
        lakectl generation deploy                       deploy posix/main\n  \
        lakectl generation deploy posix/main~1 --pin    an older state, kept by pruning\n  \
        lakectl generation deploy --kernel /boot/vmlinuz-6.1.0-30-amd64 --initrd /boot/initrd.img-6.1.0-30-amd64")]
    Deploy {
        /// The commit to deploy (a revision; times refer to posix/main).
        #[arg(default_value = generation::POSIX_REF)]
        rev: String,
        /// Kernel to boot (default: the one of the newest good entry).
        #[arg(long, value_name = "FILE")]
        kernel: Option<PathBuf>,
        /// Initrd to boot (default: the one of the newest good entry).
        #[arg(long, value_name = "FILE")]
        initrd: Option<PathBuf>,
        /// Boot attempts before systemd-boot falls back to the previous generation
        /// (0: an uncounted entry, good from the start).
        #[arg(long, default_value_t = 3, value_name = "N")]
        tries: u32,
        /// Pin the new generation: pruning keeps it.
        #[arg(long)]
        pin: bool,
        /// Kernel command line after `lake.gen=N rw` (default: that of the copied entry).
        #[arg(long, value_name = "ARGS")]
        cmdline: Option<String>,
        /// Entry title (default: that of the copied entry).
        #[arg(long)]
        title: Option<String>,
        #[command(flatten)]
        esp: EspArg,
    },
    /// Pin a generation: pruning never removes it, gc keeps its commit.
    Pin { n: u32 },
    /// Unpin a generation: it is pruned once older than the newest `keep`.
    Unpin { n: u32 },
    /// Show or set how many of the newest generations pruning keeps (default 3).
    #[command(after_help = "Pinned generations, the default and the booted one are kept on top of these. \
        The new count applies at the next deploy or `lakectl generation prune`.")]
    Keep {
        /// Keep this many (at least 1); without it, print the current count.
        n: Option<u32>,
    },
    /// Remove the generations beyond the newest `keep` (not pinned ones, the default
    /// or the booted one), with their boot entries and unused kernels.
    #[command(after_help = "Shows what it removes; removes only with --yes. Run `lakectl gc` afterwards to \
        drop content that nothing references any more.")]
    Prune {
        /// Only show what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Remove without asking.
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        esp: EspArg,
    },
    /// Remove one generation: its boot entries, checkout, overlay upper layer and record.
    #[command(after_help = "Refused for the default generation and the booted one. Changes made while that \
        generation ran and not committed (its overlay upper layer) are lost. Shows what it removes; removes \
        only with --yes.")]
    Remove {
        n: u32,
        /// Remove it (without this, only show what would go).
        #[arg(long, short)]
        yes: bool,
        #[command(flatten)]
        esp: EspArg,
    },
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The ESP if one is found; an explicit --esp that is not usable is an error.
fn esp_if_any(esp: &EspArg) -> Result<Option<Esp>> {
    match &esp.esp {
        Some(d) => Ok(Some(Esp::find(Some(d))?)),
        None => Ok(Esp::find(None).ok()),
    }
}

fn esp_needed(esp: &EspArg) -> Result<Esp> {
    Esp::find(esp.esp.as_deref()).context("the ESP holds the generations' boot entries, which go with them")
}

fn flags(g: &Generation, default: Option<u32>, booted: Option<u32>) -> String {
    let mut f = Vec::new();
    if Some(g.number) == default {
        f.push("default");
    }
    if Some(g.number) == booted {
        f.push("booted");
    }
    if g.pinned {
        f.push("pinned");
    }
    f.join(", ")
}

fn entry_of(entries: &[EspEntry], n: u32) -> Option<&EspEntry> {
    entries.iter().find(|e| e.generation == n)
}

pub fn run(lake: &Lake, cmd: &GenerationCmd, json: bool, quiet: bool) -> Result<()> {
    match cmd {
        GenerationCmd::List { esp } => list(lake, esp, json),
        GenerationCmd::Deploy { rev, kernel, initrd, tries, pin, cmdline, title, esp } => {
            let commit = lake_posix::rev::resolve(lake, rev, generation::POSIX_REF).with_context(|| format!("resolving '{rev}'"))?;
            let opts = lake_boot::deploy::DeployOptions {
                esp: esp.esp.clone(),
                tries: (*tries > 0).then_some(*tries),
                kernel: kernel.clone(),
                initrd: initrd.clone(),
                pinned: *pin,
                cmdline: cmdline.clone(),
                title: title.clone(),
            };
            let bar = lakefs::progress::Bar::new(quiet);
            let d = lake_boot::deploy::deploy_generation(lake, commit, &opts, &bar)
                .with_context(|| format!("deploying {} as a new generation of {}", commit.short(), lake.root().display()))?;
            if json {
                return print_json(&d);
            }
            println!("generation {} of {} is the default now", d.generation, d.commit.short());
            println!("  entry  {}", show_esp_path(&d.esp, &d.entry));
            println!("  kernel {}", show_esp_path(&d.esp, &d.kernel));
            println!("  initrd {}", show_esp_path(&d.esp, &d.initrd));
            if !d.pruned.is_empty() {
                println!("  pruned generations {}", join(&d.pruned));
            }
            Ok(())
        }
        GenerationCmd::Pin { n } => {
            let g = generation::pin(lake, *n).with_context(|| format!("pinning generation {n}"))?;
            report_one(&g, json, "pinned: pruning keeps it")
        }
        GenerationCmd::Unpin { n } => {
            let g = generation::unpin(lake, *n).with_context(|| format!("unpinning generation {n}"))?;
            report_one(&g, json, "unpinned: pruned once older than the newest `keep`")
        }
        GenerationCmd::Keep { n } => {
            if let Some(n) = n {
                generation::set_keep(lake, *n).with_context(|| format!("setting the retention of {} to {n}", lake.root().display()))?;
            }
            let keep = generation::keep(lake)?;
            if json {
                return print_json(&serde_json::json!({ "keep": keep }));
            }
            println!("keeping the newest {keep} generation(s), plus pinned ones, the default and the booted one");
            if n.is_some() {
                println!("applies at the next deploy, or now with `lakectl generation prune`");
            }
            Ok(())
        }
        GenerationCmd::Prune { dry_run, yes, esp } => prune(lake, *dry_run, *yes, esp, json),
        GenerationCmd::Remove { n, yes, esp } => remove(lake, *n, *yes, esp, json),
    }
}

fn join(ns: &[u32]) -> String {
    ns.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

fn show_esp_path(esp: &Path, p: &str) -> String {
    esp.join(p.trim_start_matches('/')).display().to_string()
}

fn report_one(g: &Generation, json: bool, what: &str) -> Result<()> {
    if json {
        return print_json(g);
    }
    println!("generation {} ({}) {what}", g.number, g.commit.short());
    Ok(())
}

fn list(lake: &Lake, esp: &EspArg, json: bool) -> Result<()> {
    let gens = generation::list(lake)?;
    let default = generation::default(lake)?;
    let booted = generation::booted();
    let keep = generation::keep(lake)?;
    let esp = esp_if_any(esp)?;
    let entries = match &esp {
        Some(e) => e.entries().with_context(|| format!("reading the boot entries on {}", e.root().display()))?,
        None => Vec::new(),
    };
    // Entries whose generation is gone from the lake (removed by hand, another lake).
    let orphans: Vec<&EspEntry> = entries.iter().filter(|e| !gens.iter().any(|g| g.number == e.generation)).collect();
    if json {
        let v: Vec<_> = gens
            .iter()
            .map(|g| {
                serde_json::json!({
                    "number": g.number, "commit": g.commit, "created": g.created, "pinned": g.pinned,
                    "default": Some(g.number) == default, "booted": Some(g.number) == booted,
                    "entry": entry_of(&entries, g.number),
                })
            })
            .collect();
        return print_json(&serde_json::json!({
            "lake": lake.root(), "keep": keep, "default": default, "booted": booted,
            "esp": esp.as_ref().map(|e| e.root()), "generations": v, "orphan_entries": orphans,
        }));
    }
    if gens.is_empty() {
        println!("no generations in {} (install one with lake-installer, or `lakectl generation deploy`)", lake.root().display());
    } else {
        println!("  {:>4}  {:<15}  {:<25}  {:<20}  FLAGS", "GEN", "COMMIT", "CREATED", "ENTRY");
    }
    for g in &gens {
        let entry = match (&esp, entry_of(&entries, g.number)) {
            (None, _) => "?".to_owned(),
            (Some(_), None) => "none".to_owned(),
            (Some(_), Some(e)) => e.state.to_string(),
        };
        println!(
            "{} {:>4}  {:<15}  {:<25}  {:<20}  {}",
            if Some(g.number) == booted { "*" } else { " " },
            g.number,
            g.commit.short(),
            show::time(g.created),
            entry,
            flags(g, default, booted)
        );
    }
    for e in &orphans {
        println!("entry {} boots generation {}, which this lake does not have", e.path, e.generation);
    }
    match &esp {
        Some(e) => eprintln!("keep {keep}; entries on {}", e.root().display()),
        None => eprintln!("keep {keep}; no ESP found at /efi, /boot/efi or /boot: entry states unknown (pass --esp DIR)"),
    }
    Ok(())
}

/// Lines describing generation `g` and what goes with it.
fn describe(lake: &Lake, g: &Generation, entries: &[EspEntry]) -> Vec<String> {
    let mut out = vec![format!(
        "generation {} ({}, created {}{})",
        g.number,
        g.commit.short(),
        show::time(g.created),
        if g.pinned { ", pinned" } else { "" }
    )];
    for e in entries.iter().filter(|e| e.generation == g.number) {
        out.push(format!("  boot entry {} ({})", e.path, e.state));
    }
    out.push(format!("  checkout {}", generation::dir(lake.root(), g.number).display()));
    let upper = generation::upper_dir(lake.root(), g.number);
    let changed = std::fs::read_dir(&upper).map(|d| d.count()).unwrap_or(0);
    if changed > 0 {
        out.push(format!("  its overlay upper layer {} holds {changed} top-level entries of changes made while it ran", upper.display()));
    }
    out
}

fn prune(lake: &Lake, dry_run: bool, yes: bool, esp: &EspArg, json: bool) -> Result<()> {
    let keep = generation::keep(lake)?;
    let plan = retention::prune_plan(lake, keep, &[])?;
    if dry_run || !yes || plan.is_empty() {
        let esp = esp_if_any(esp)?;
        let entries = match &esp {
            Some(e) => e.entries()?,
            None => Vec::new(),
        };
        if json {
            print_json(&serde_json::json!({ "dry_run": dry_run || !yes, "keep": keep, "would_remove": plan }))?;
        } else if plan.is_empty() {
            println!("nothing to prune: no unpinned generation beyond the newest {keep} (other than the default and the booted one)");
        } else {
            println!("pruning to the newest {keep} would remove:");
            for g in &plan {
                for l in describe(lake, g, &entries) {
                    println!("  {l}");
                }
            }
        }
        if !dry_run && !yes && !plan.is_empty() {
            bail!("refusing to remove generations without --yes (see above; --dry-run only shows them)");
        }
        return Ok(());
    }
    let esp = esp_needed(esp)?;
    let r =
        retention::prune(lake, &esp, keep, &[], &[]).with_context(|| format!("pruning the generations of {}", lake.root().display()))?;
    print_removal(&r, json)
}

fn remove(lake: &Lake, n: u32, yes: bool, esp: &EspArg, json: bool) -> Result<()> {
    let g = generation::check_removable(lake, n, generation::booted()).with_context(|| format!("removing generation {n}"))?;
    let esp = esp_needed(esp)?;
    let entries = esp.entries()?;
    if !yes {
        println!("would remove:");
        for l in describe(lake, &g, &entries) {
            println!("  {l}");
        }
        bail!("refusing to remove generation {n} without --yes");
    }
    let r = retention::remove(lake, &esp, n, &[]).with_context(|| format!("removing generation {n}"))?;
    print_removal(&r, json)
}

fn print_removal(r: &retention::Report, json: bool) -> Result<()> {
    if json {
        return print_json(r);
    }
    if r.removed.is_empty() {
        println!("nothing removed");
    }
    for g in &r.removed {
        let entries = if g.entries.is_empty() { "no boot entry".to_owned() } else { g.entries.join(", ") };
        println!("removed generation {} ({}): {}, {}", g.generation, g.commit.short(), entries, g.dir.display());
    }
    for d in &r.boot_files_dropped {
        println!("removed {d} from the ESP (no entry uses it)");
    }
    if !r.removed.is_empty() {
        println!("run `lakectl gc` to drop content nothing references any more");
    }
    Ok(())
}
