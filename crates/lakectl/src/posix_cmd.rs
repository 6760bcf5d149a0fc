//! `lakectl commit --zone posix` (the package-manager hooks) and
//! `lakectl rollback --zone posix`: thin drivers over lake_posix::posix,
//! lake_posix::rollback, lake_posix::live_apply and lake_boot::deploy.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lake_posix::posix::{self, Record, RunningRoot};
use lakefs::{Lake, ObjectId};

use crate::show;

/// Which package-manager hook is calling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    /// apt's DPkg::Pre-Invoke: before apt runs dpkg.
    AptPre,
    /// apt's DPkg::Post-Invoke: after; deploys a new generation if anything changed.
    AptPost,
    /// dpkg's pre-invoke, for dpkg run by hand (skipped inside an apt run).
    DpkgPre,
    /// dpkg's post-invoke (skipped inside an apt run).
    DpkgPost,
}

/// Marks an apt run in progress, so dpkg's own hooks (which fire for each dpkg
/// call apt makes) leave the commits to apt's.
const APT_MARKER: &str = "/run/lakefs/apt-transaction";

/// Where a commit or rollback finds the running root: the booted one, or an
/// overlay named on the command line (tests, benchmarks, rescue systems).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RootArgs {
    /// Merged overlay root to commit or roll back (default: / when booted from the lake).
    #[arg(long, value_name = "DIR", requires_all = ["upper", "lower"])]
    pub root: Option<PathBuf>,
    /// The overlay's upper directory (with --root).
    #[arg(long, value_name = "DIR", requires = "root")]
    pub upper: Option<PathBuf>,
    /// The overlay's lower directory (with --root).
    #[arg(long, value_name = "DIR", requires = "root")]
    pub lower: Option<PathBuf>,
    /// The commit the lower directory is a checkout of (default: the generation
    /// whose deploy/N/root it is).
    #[arg(long, value_name = "REV", requires = "root")]
    pub base: Option<String>,
}

/// Options for deploying a generation (the ESP and boot counting).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeployArgs {
    /// The mounted EFI system partition (default: /efi, /boot/efi or /boot).
    #[arg(long, value_name = "DIR")]
    pub esp: Option<PathBuf>,
    /// Boot attempts before systemd-boot falls back to the previous generation.
    #[arg(long, default_value_t = 3)]
    pub tries: u32,
}

impl RootArgs {
    pub fn resolve(&self, lake: &Lake) -> Result<Option<RunningRoot>> {
        let (Some(root), Some(upper), Some(lower)) = (&self.root, &self.upper, &self.lower) else {
            return Ok(RunningRoot::booted(lake)?);
        };
        let (base, generation) = match &self.base {
            Some(rev) => (lake_posix::rev::resolve(lake, rev, posix::POSIX_REF)?, None),
            None => {
                let n = generation_of_lower(lake, lower).with_context(|| {
                    format!("{} is not a generation's deploy/N/root in {}: pass --base REV", lower.display(), lake.root().display())
                })?;
                let g = lake_posix::generation::get(lake, n)?.with_context(|| format!("generation {n} is not in the lake"))?;
                (g.commit, Some(n))
            }
        };
        Ok(Some(RunningRoot { merged: root.clone(), upper: upper.clone(), lower: lower.clone(), base, generation }))
    }
}

fn generation_of_lower(lake: &Lake, lower: &Path) -> Option<u32> {
    let lower = lower.canonicalize().ok()?;
    let deploy = lake.root().join(lake_posix::generation::DEPLOY_DIR).canonicalize().ok()?;
    let rel = lower.strip_prefix(deploy).ok()?;
    let mut it = rel.components();
    let n = it.next()?.as_os_str().to_str()?.parse().ok()?;
    (it.next()?.as_os_str() == "root" && it.next().is_none()).then_some(n)
}

pub struct CommitArgs<'a> {
    pub hook: Option<Hook>,
    pub message: &'a str,
    pub trigger: &'a str,
    pub deploy: bool,
    pub root: &'a RootArgs,
    pub deploy_args: &'a DeployArgs,
}

fn hooks_off() -> bool {
    std::env::var("LAKE_HOOKS").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "no" | "false"))
}

fn apt_run_open() -> bool {
    let Ok(pid) = std::fs::read_to_string(APT_MARKER) else { return false };
    // A marker left by a killed apt run does not silence dpkg's hooks forever.
    pid.trim().parse::<u32>().is_ok_and(|p| Path::new("/proc").join(p.to_string()).exists())
}

/// `lakectl commit --zone posix`: commit the running root's changes.
pub fn commit(lake_dir: &Path, a: &CommitArgs, json: bool, quiet: bool) -> Result<()> {
    if let Some(h) = a.hook {
        if hooks_off() {
            return Ok(());
        }
        if a.root.root.is_none() && lake_posix::generation::booted().is_none() {
            // Image builds, chroots, installers: not a system booted from a lake.
            return Ok(());
        }
        // apt exports DPKG_FRONTEND_LOCKED to the dpkg it runs; the marker is the
        // second witness (a front end that does not set it).
        if matches!(h, Hook::DpkgPre | Hook::DpkgPost) && (std::env::var_os("DPKG_FRONTEND_LOCKED").is_some() || apt_run_open()) {
            return Ok(());
        }
    }
    let lake = Lake::open(lake_dir).with_context(|| format!("opening the lake at {}", lake_dir.display()))?;
    let Some(root) = a.root.resolve(&lake)? else {
        bail!(
            "this system did not boot from a lake (no {}): nothing to commit. To commit an overlay, pass --root, --upper and --lower",
            lake_posix::generation::BOOTED_FILE
        );
    };
    let (trigger, phase) = match a.hook {
        Some(Hook::AptPre) => ("apt", Some("pre")),
        Some(Hook::AptPost) => ("apt", Some("post")),
        Some(Hook::DpkgPre) => ("dpkg", Some("pre")),
        Some(Hook::DpkgPost) => ("dpkg", Some("post")),
        None => (a.trigger, None),
    };
    let manager = if a.hook.is_some() { posix::package_manager() } else { None };
    if a.hook == Some(Hook::AptPre) {
        // apt's pid: the hook's own shell is gone by the time dpkg runs.
        write_marker(manager.as_ref().map_or(std::os::unix::process::parent_id(), |m| m.0))?;
    }
    let rec = Record {
        trigger: trigger.into(),
        phase: phase.map(str::to_owned),
        cmdline: manager.map(|m| m.1),
        message: if a.message.is_empty() && a.hook.is_some() { format!("{trigger} {}", phase.unwrap_or("")) } else { a.message.to_owned() },
        extra: vec![],
    };
    let bar = lakefs::progress::Bar::new(quiet || a.hook.is_some());
    let t = std::time::Instant::now();
    let out = posix::commit_running(&lake, &root, &rec, &bar).with_context(|| {
        format!("committing the changes in {} (upper layer {}) to '{}'", root.merged.display(), root.upper.display(), posix::POSIX_REF)
    })?;
    let commit_s = t.elapsed().as_secs_f64();
    if a.hook == Some(Hook::AptPost) {
        let _ = std::fs::remove_file(APT_MARKER);
    }
    let wants_deploy = a.deploy || matches!(a.hook, Some(Hook::AptPost | Hook::DpkgPost));
    let deployed = if wants_deploy && !out.unchanged { Some(deploy(&lake, out.commit, a.deploy_args, quiet)?) } else { None };
    if json {
        crate::print_json(&serde_json::json!({
            "commit": out.commit, "parent": out.parent, "unchanged": out.unchanged, "stats": out.stats,
            "seconds": commit_s, "deployed": deployed,
        }))?;
    } else if !(quiet && a.hook.is_some()) || deployed.is_some() {
        let s = &out.stats;
        eprintln!(
            "lake: {} {} {}: {} files, {} scanned in {:.2}s",
            if out.unchanged { "nothing changed; no commit on" } else { "committed" },
            posix::POSIX_REF,
            if out.unchanged { String::new() } else { out.commit.short() },
            s.files,
            show::bytes(s.bytes),
            commit_s
        );
        if let Some(d) = &deployed {
            eprintln!("lake: generation {} deployed ({}); it boots next. Roll back with `lakectl rollback --zone posix --to before:last-apt-upgrade`", d.generation, d.entry);
        }
    }
    Ok(())
}

fn write_marker(apt_pid: u32) -> Result<()> {
    let m = Path::new(APT_MARKER);
    if let Some(d) = m.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    std::fs::write(m, format!("{apt_pid}\n")).with_context(|| format!("writing {}", m.display()))
}

pub fn deploy(lake: &Lake, commit: ObjectId, d: &DeployArgs, quiet: bool) -> Result<lake_boot::deploy::Deployed> {
    let opts = lake_boot::deploy::DeployOptions { esp: d.esp.clone(), tries: Some(d.tries), ..Default::default() };
    let bar = lakefs::progress::Bar::new(quiet);
    lake_boot::deploy::deploy_generation(lake, commit, &opts, &bar)
        .with_context(|| format!("deploying {} as a new generation from {}", commit.short(), lake.root().display()))
}

pub struct RollbackArgs<'a> {
    pub to: &'a str,
    pub now: bool,
    pub files: &'a [String],
    pub filters: &'a [String],
    pub include_etc: bool,
    pub yes: bool,
    pub dry_run: bool,
    pub root: &'a RootArgs,
    pub deploy_args: &'a DeployArgs,
}

/// `lakectl rollback --zone posix --to WHEN`.
pub fn rollback(lake: &Lake, a: &RollbackArgs, json: bool, quiet: bool) -> Result<()> {
    let t0 = std::time::Instant::now();
    let running = a.root.resolve(lake)?;
    if a.now && running.is_none() {
        bail!("--now writes into the running root, but this system did not boot from the lake; pass --root/--upper/--lower, or drop --now");
    }
    // Uncommitted changes first: they become history (and count as local edits).
    let mut captured = None;
    if let (Some(root), false) = (&running, a.dry_run) {
        let rec = Record {
            trigger: "rollback".into(),
            phase: Some("pre".into()),
            message: "changes before a rollback".into(),
            ..Default::default()
        };
        let out = posix::commit_running(lake, root, &rec, &lakefs::progress::Silent)
            .with_context(|| format!("recording the running root's changes ({}) before rolling back", root.upper.display()))?;
        if !out.unchanged {
            captured = Some(out.commit);
        }
    }
    let target =
        lake_posix::rev::resolve(lake, a.to, posix::POSIX_REF).with_context(|| format!("finding the rollback target '{}'", a.to))?;
    let req = lake_posix::rollback::Request {
        target: Some(target),
        paths: a.files.to_vec(),
        globs: a.filters.to_vec(),
        include_etc: a.include_etc,
    };
    let plan = lake_posix::rollback::plan(lake, &req)?;
    if json && (a.dry_run || plan.noop) {
        crate::print_json(&serde_json::json!({"plan": plan, "captured": captured, "dry_run": a.dry_run}))?;
    } else if !json {
        preview(&plan, a, running.is_some() && a.dry_run)?;
    }
    if plan.noop {
        if !json {
            eprintln!("nothing to do: the POSIX zone already is as it was at {}", a.to);
        }
        return Ok(());
    }
    if a.dry_run {
        return Ok(());
    }
    if !a.yes {
        confirm()?;
    }
    let message = format!("rollback to {} ({})", a.to, target.short());
    let commit = lake_posix::rollback::record(lake, &plan, &message)?;
    let deployed = deploy(lake, commit, a.deploy_args, quiet)?;
    let deploy_s = t0.elapsed().as_secs_f64();
    let mut applied = None;
    if a.now {
        let root = running.as_ref().map(|r| r.merged.clone()).unwrap_or_else(|| PathBuf::from("/"));
        let st = lake_posix::live_apply::apply(lake, &plan.tree, &plan.root, &plan.changes, &root).with_context(|| {
            format!(
                "writing the rollback into the running root {} (it is partly applied; generation {} holds the whole result: reboot into it)",
                root.display(),
                deployed.generation
            )
        })?;
        applied = Some(st);
    }
    let total_s = t0.elapsed().as_secs_f64();
    if json {
        crate::print_json(&serde_json::json!({
            "commit": commit, "target": target, "captured": captured, "plan": plan, "deployed": deployed,
            "applied": applied, "seconds": total_s, "deploy_seconds": deploy_s,
        }))?;
    } else {
        eprintln!(
            "committed {} on {} and deployed it as generation {} ({}) in {:.1}s",
            commit.short(),
            posix::POSIX_REF,
            deployed.generation,
            deployed.entry,
            deploy_s
        );
        match applied {
            Some(st) => eprintln!(
                "applied to the running root now: {} written, {} removed, {} metadata changes ({:.1}s in all); restart services that use changed files",
                st.written, st.removed, st.metadata, total_s
            ),
            None => eprintln!("reboot to use it (or run again with --now to apply it to the running system too)"),
        }
    }
    Ok(())
}

fn preview(plan: &lake_posix::rollback::Plan, a: &RollbackArgs, uncaptured: bool) -> Result<()> {
    use lakefs::diff::ChangeKind;
    let mut out = std::io::stderr().lock();
    writeln!(out, "Rollback of the POSIX zone to {} ({}), from {}:", a.to, plan.target.short(), plan.head.short())?;
    if plan.packages.is_empty() {
        writeln!(out, "  packages: no change")?;
    } else {
        writeln!(out, "  packages ({}):", plan.packages.len())?;
        for p in &plan.packages {
            writeln!(out, "    {p}")?;
        }
    }
    let count = |k: ChangeKind| plan.changes.iter().filter(|c| c.kind == k).count();
    writeln!(
        out,
        "  files: {} added, {} removed, {} modified, {} metadata only",
        count(ChangeKind::Added),
        count(ChangeKind::Removed),
        count(ChangeKind::Modified),
        count(ChangeKind::Metadata)
    )?;
    const SHOW: usize = 30;
    for c in plan.changes.iter().take(SHOW) {
        writeln!(out, "    {} {}", c.kind.letter(), c.path)?;
    }
    if plan.changes.len() > SHOW {
        writeln!(out, "    ... and {} more (`--dry-run --json` lists all)", plan.changes.len() - SHOW)?;
    }
    if !plan.kept.is_empty() {
        writeln!(out, "  kept: local edits in /etc made after the target stay as they are (--include-etc rolls them back too):")?;
        for k in &plan.kept {
            writeln!(out, "    {k}")?;
        }
    }
    if uncaptured {
        writeln!(out, "  (dry run: changes not yet committed from the running root are not in this preview)")?;
    }
    writeln!(
        out,
        "This makes a new generation (the current ones stay bootable){}.",
        if a.now { " and writes the changes into the running system now" } else { "; it takes effect at the next boot" }
    )?;
    Ok(())
}

fn confirm() -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("not confirmed: standard input is not a terminal; add --yes to roll back without asking (or --dry-run to only preview)");
    }
    eprint!("Proceed? [y/N] ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("rollback cancelled; nothing was changed")
    }
}
