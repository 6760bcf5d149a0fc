//! Branches and merges of paths in a lakefs mount (`lakectl branch`, `lakectl merge`).
//!
//! The mount is found from a path (walking up to `.lake/info`); the working
//! copy is changed through the mount and committed with the control file's
//! flush, so the kernel's caches and the volume's history stay right.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lake_volume::branch::{self, Branch, WorkChange, Workdir};
use lake_volume::{control, locate, merge};
use lakefs::{Lake, ObjectId};

#[derive(clap::Subcommand)]
pub enum BranchCmd {
    /// Start a branch of a directory (or file) in a lakefs mount, from its current version.
    #[command(after_help = "The branch covers PATH (its 'scope'); the scope also gets a 'main' line the \
        first time. The working copy does not change until `lakectl branch switch`.\n\n\
        Examples:\n  lakectl branch create ~/thesis --name rewrite\n  \
        lakectl branch create ~/thesis --name rewrite --switch")]
    Create {
        /// A directory or file inside a lakefs mount.
        path: PathBuf,
        /// The branch's name (letters, digits, - _ .; unique in the volume).
        #[arg(long)]
        name: String,
        /// Switch to the new branch at once.
        #[arg(long)]
        switch: bool,
    },
    /// Make a branch's version the working copy of its scope.
    #[command(after_help = "The scope's current version is first recorded on the branch it was on, so \
        nothing is lost; then the files that differ are rewritten, created or removed. Refused while a \
        merge in the scope has unresolved conflicts. Lists what changed (A added, D removed, M modified, \
        m metadata only).\n\nExamples:\n  lakectl branch switch rewrite\n  \
        lakectl branch switch main --path ~/thesis\n  lakectl branch switch rewrite --dry-run")]
    Switch {
        /// The branch; `main` is the scope's own line (needs --path when several scopes have branches).
        name: String,
        /// A path in the mount (and, for `main`, in the scope). Default: the current directory.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Only list what would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// List branches: all of the mount, or those of the scope PATH is in.
    #[command(after_help = "Examples:\n  lakectl branch list\n  lakectl branch list ~/thesis --json")]
    List {
        /// A path in the mount. Default: the current directory, listing every scope.
        path: Option<PathBuf>,
    },
    /// Delete a branch (not the current one of its scope, not `main`).
    #[command(after_help = "The branch's ref goes; its commits stay until `lakectl gc` finds nothing else \
        reaching them. Prints the tip commit it had.\n\nExample:\n  lakectl branch delete rewrite")]
    Delete {
        name: String,
        /// A path in the mount. Default: the current directory.
        #[arg(long)]
        path: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
#[command(after_help = "Three-way merge: files changed on one side take that side; text files changed on \
    both are merged line by line, with conflict markers where the same lines changed; binary files changed \
    on both keep ours and get theirs beside them as NAME.merge-BRANCH; an edit beats a deletion. Conflicts \
    are listed by `lakectl status` and cleared by `lakectl commit PATH -m ..`; once none are left the merge \
    is committed with two parents. A clean merge is committed at once.\n\n\
    Examples:\n  lakectl merge rewrite                     merge branch rewrite into its scope's current branch\n  \
    lakectl merge main --path ~/thesis        bring main's changes into the current branch\n  \
    lakectl merge rewrite --dry-run           only show what would change and conflict\n  \
    lakectl merge --abort --path ~/thesis     give up a conflicted merge")]
pub struct MergeArgs {
    /// The branch to merge into the current one.
    #[arg(required_unless_present = "abort")]
    pub name: Option<String>,
    /// A path in the mount (and, for `main`, in the scope). Default: the current directory.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Only show what would change and what would conflict.
    #[arg(long)]
    pub dry_run: bool,
    /// Give up the conflicted merge in progress: the working copy goes back to
    /// the current branch's version before it.
    #[arg(long, conflicts_with_all = ["name", "dry_run"])]
    pub abort: bool,
}

/// A mounted volume found from a path.
struct Mount {
    lake: Lake,
    volume: String,
    root: PathBuf,
    /// The path, mount-relative, escaped (scopes are kept in that form: `lake_volume::branch`).
    rel: String,
}

fn mount_of(path: Option<&Path>) -> Result<Mount> {
    let path = path.map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
    let loc = locate(&path)
        .with_context(|| format!("looking for the lakefs mount of {}", path.display()))?
        .with_context(|| format!("{} is not inside a lakefs mount (no .lake/info above it)", path.display()))?;
    let lake = Lake::open(&loc.info.lake).with_context(|| format!("opening the lake at {}", loc.info.lake.display()))?;
    Ok(Mount { lake, volume: loc.info.volume, root: loc.root, rel: lakefs::names::escape(&loc.rel) })
}

/// Commits what is pending in the mount (the daemon's flush) and returns the volume's head.
fn flush(root: &Path, trigger: &str, message: &str) -> lakefs::Result<ObjectId> {
    let v = control::request(root, &serde_json::json!({"op": "flush", "trigger": trigger, "message": message}))?;
    let c = v["commit"].as_str().ok_or_else(|| lakefs::Error::Invalid(format!("{}: flush reply has no commit: {v}", root.display())))?;
    c.parse()
}

fn show_scope(s: &str) -> &str {
    if s.is_empty() {
        "/"
    } else {
        s
    }
}

fn print_changes(changes: &[WorkChange], root: &Path) {
    for c in changes {
        println!("  {} {}", c.kind, root.join(&c.path).display());
    }
}

pub fn branch(c: &BranchCmd, json: bool) -> Result<()> {
    match c {
        BranchCmd::Create { path, name, switch } => {
            let m = mount_of(Some(path))?;
            let mut f = || flush(&m.root, "manual", &format!("before branching '{name}'"));
            let b = branch::create(&m.lake, &m.volume, &m.rel, name, &mut Workdir { root: &m.root, flush: &mut f })
                .with_context(|| format!("creating branch '{name}' of {}", path.display()))?;
            let sw = if *switch {
                let mut f = || flush(&m.root, "switch", &format!("switch to '{name}'"));
                Some(branch::switch(&m.lake, &m.volume, name, None, &mut Workdir { root: &m.root, flush: &mut f }, false)?)
            } else {
                None
            };
            if json {
                return crate::print_json(&serde_json::json!({"branch": b, "switch": sw}));
            }
            println!(
                "created branch '{}' of {} at {}",
                b.name,
                m.root.join(&b.scope).display(),
                b.tip.map(|t| t.short()).unwrap_or_default()
            );
            if sw.is_some() {
                println!("switched to '{}'", b.name);
            } else {
                println!("switch to it with: lakectl branch switch {}", b.name);
            }
        }
        BranchCmd::Switch { name, path, dry_run } => {
            let m = mount_of(path.as_deref())?;
            let scope = path.as_ref().map(|_| m.rel.as_str());
            let mut f = || flush(&m.root, "switch", &format!("switch to '{name}'"));
            let out = branch::switch(&m.lake, &m.volume, name, scope, &mut Workdir { root: &m.root, flush: &mut f }, *dry_run)
                .with_context(|| format!("switching to branch '{name}'"))?;
            if json {
                return crate::print_json(&out);
            }
            let target = m.root.join(&out.scope);
            if *dry_run {
                println!("switching {} from '{}' to '{}' would change {} path(s):", target.display(), out.from, out.to, out.changes.len());
            } else if out.from == out.to {
                println!("{} is on '{}' already; nothing changed", target.display(), out.to);
            } else {
                println!("switched {} from '{}' to '{}'; {} path(s) changed:", target.display(), out.from, out.to, out.changes.len());
                if let Some(s) = out.saved {
                    println!("  ('{}' keeps its last version as commit {})", out.from, s.short());
                }
            }
            print_changes(&out.changes, &m.root);
        }
        BranchCmd::List { path } => {
            let m = mount_of(path.as_deref())?;
            let scope = match path {
                Some(_) => Some(
                    branch::scope_of(&m.lake, &m.volume, &m.rel)?
                        .with_context(|| format!("{} is in no scope with branches", m.root.join(&m.rel).display()))?,
                ),
                None => None,
            };
            let list = branch::list(&m.lake, &m.volume, scope.as_deref())?;
            let conflicts = branch::conflicts(&m.lake, &m.volume)?;
            if json {
                return crate::print_json(&serde_json::json!({"volume": m.volume, "branches": list, "conflicts": conflicts}));
            }
            if list.is_empty() {
                println!("no branches in {} (start one with `lakectl branch create PATH --name NAME`)", m.root.display());
            }
            let mut last: Option<&str> = None;
            for b in &list {
                if last != Some(b.scope.as_str()) {
                    println!("{}:", m.root.join(show_scope(&b.scope).trim_start_matches('/')).display());
                    last = Some(&b.scope);
                }
                print_branch(b);
            }
            for s in branch::scopes(&m.lake, &m.volume)? {
                if let Some(p) = branch::pending_merge(&m.lake, &m.volume, &s)? {
                    let n = conflicts.iter().filter(|c| c.scope == s).count();
                    println!("merging '{}' into '{}' in {}: {n} conflict(s) (see `lakectl status`)", p.theirs, p.ours, show_scope(&s));
                }
            }
        }
        BranchCmd::Delete { name, path } => {
            let m = mount_of(path.as_deref())?;
            let b = branch::delete(&m.lake, &m.volume, name).with_context(|| format!("deleting branch '{name}'"))?;
            if json {
                return crate::print_json(&b);
            }
            println!(
                "deleted branch '{}' of {} (its tip was {}; it stays in the lake until gc)",
                b.name,
                m.root.join(&b.scope).display(),
                b.tip.map(|t| t.to_string()).unwrap_or_else(|| "none".into())
            );
        }
    }
    Ok(())
}

fn print_branch(b: &Branch) {
    let when = jiff::Timestamp::from_second(b.created).map(|t| t.strftime("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
    println!(
        "{} {:<20} {}  created {when}",
        if b.current { '*' } else { ' ' },
        b.name,
        b.tip.map(|t| t.short()).unwrap_or_else(|| "-".into())
    );
}

pub fn merge(a: &MergeArgs, json: bool) -> Result<()> {
    let m = mount_of(a.path.as_deref())?;
    let scope = a.path.as_ref().map(|_| m.rel.as_str());
    if a.abort {
        let mut f = || flush(&m.root, "merge", "merge aborted");
        let out = merge::abort(&m.lake, &m.volume, scope, &mut Workdir { root: &m.root, flush: &mut f }).context("aborting the merge")?;
        if json {
            return crate::print_json(&out);
        }
        println!("merge aborted; {} is back at '{}' ({} path(s) changed):", m.root.join(&out.scope).display(), out.to, out.changes.len());
        print_changes(&out.changes, &m.root);
        return Ok(());
    }
    let Some(name) = a.name.as_deref() else { bail!("name the branch to merge (or --abort)") };
    let mut f = || flush(&m.root, "merge", &format!("merge '{name}'"));
    let out = merge::merge(&m.lake, &m.volume, name, scope, &mut Workdir { root: &m.root, flush: &mut f }, a.dry_run)
        .with_context(|| format!("merging branch '{name}'"))?;
    if json {
        return crate::print_json(&out);
    }
    let target = m.root.join(&out.scope);
    if out.up_to_date {
        println!("'{}' is already merged into '{}' ({}): nothing to do", out.theirs, out.ours, target.display());
        return Ok(());
    }
    let verb = if a.dry_run { "would change" } else { "changed" };
    println!("merging '{}' into '{}' in {}: {} path(s) {verb}:", out.theirs, out.ours, target.display(), out.changes.len());
    print_changes(&out.changes, &m.root);
    if !out.conflicts.is_empty() {
        println!("{} conflict(s){}:", out.conflicts.len(), if a.dry_run { " would remain" } else { "" });
        for c in &out.conflicts {
            let beside = c.theirs_copy.as_ref().map(|p| format!(" (theirs: {})", m.root.join(p).display())).unwrap_or_default();
            println!("  {:<16} {}{beside}", c.kind, m.root.join(&c.path).display());
        }
        if !a.dry_run {
            println!("fix them, then `lakectl commit PATH.. -m MESSAGE` to finish the merge (or `lakectl merge --abort`)");
        }
    } else if let Some(c) = out.commit {
        println!("merged: commit {} on '{}' (parents: '{}' and '{}')", c.short(), out.ours, out.ours, out.theirs);
    }
    Ok(())
}
