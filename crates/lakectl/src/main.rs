//! lakectl: the user's command line over a lake. Thin: every operation is a
//! lakefs library call; this file parses arguments and prints results.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use lakefs::diff::ChangeKind;
use lakefs::tree::Node;
use lakefs::{Lake, ObjectId};

mod branch_cmd;
mod catalog_cmd;
mod generation_cmd;
mod posix_cmd;
mod show;
mod volume_cmd;

#[derive(Parser)]
#[command(
    name = "lakectl",
    version,
    about = "Work with a lake: a content-addressed, versioned store of file trees",
    long_about = "Work with a lake: a content-addressed, versioned store of file trees.\n\n\
        Quick start:\n  lakectl --lake /tmp/lake init\n  lakectl --lake /tmp/lake commit /etc -m 'first'\n  \
        lakectl --lake /tmp/lake log\n  lakectl --lake /tmp/lake diff main~1 main\n  lakectl --lake /tmp/lake verify\n\n\
        REVISIONS name commits: a ref (main), a commit id or prefix (b3:1f2e.. or 1f2e), REV~N, or a time \
        meaning the newest commit at or before it on --ref: yesterday, '2h ago', tuesday, 2025-06-01, \
        2025-06-01T10:00:00Z, before:<time>, or REF@{<time>}. Paths inside a commit are written PATH@REV.\n\n\
        NAMES are taken as the system gives them (any bytes, not only UTF-8) and printed escaped: \
        a backslash as \\\\, control characters and bytes that are not UTF-8 as \\xHH (caf\\xe9.txt); \
        in --json output such a path is {\"bytes\": \"caf\\\\xe9.txt\"}, other paths are plain strings."
)]
struct Cli {
    /// The lake directory (the mounted lake partition). Default: $LAKE, else /lake.
    #[arg(long, global = true, env = "LAKE", default_value = "/lake")]
    lake: PathBuf,
    /// Ref that times and bare paths refer to.
    #[arg(long = "ref", global = true, default_value = "main")]
    reference: String,
    /// Print machine-readable JSON instead of text (read commands, commit, verify, gc, stats).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Work on a zone's history: `posix` (/usr, /etc, /var, /opt: ref posix/main,
    /// commits at package runs, generations, rollback; log and diff show packages too).
    #[arg(long, global = true, value_enum)]
    zone: Option<Zone>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Zone {
    Posix,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new, empty lake in a directory (which must be empty or absent).
    Init {
        /// Where to create it (default: --lake).
        dir: Option<PathBuf>,
    },
    /// Import a directory tree as a new commit on --ref; with --zone posix and no
    /// directory, commit the running root's changes (its overlay upper layer); with
    /// paths inside a lakefs mount (such as /home), commit exactly those paths in one commit.
    #[command(
        alias = "import",
        after_help = "POSIX zone:\n  lakectl commit --zone posix -m 'tuned sshd'       commit what changed since boot\n  \
            lakectl commit --zone posix --deploy             ... and make it the next generation\n  \
            lakectl commit --zone posix --hook apt-pre       what /etc/apt/apt.conf.d/80lake runs\n\n\
            Hooks do nothing when the system did not boot from a lake, or with LAKE_HOOKS=off.\n\n\
            LAKE zone (paths inside a lakefs mount):\n  lakectl commit ~/a.txt ~/b.txt -m 'both at once'"
    )]
    Commit {
        /// The directory to import (none with --zone posix: the running root), or
        /// paths inside a lakefs mount to commit together.
        src: Vec<PathBuf>,
        #[arg(short, long, default_value = "")]
        message: String,
        /// What the commit covers, e.g. zone:posix or path:/home/ann.
        #[arg(long, default_value = "path:/")]
        scope: String,
        /// What made the commit (manual, apt, timer, ...).
        #[arg(long, default_value = "manual")]
        trigger: String,
        /// File listing the paths (relative to SRC, one per line) that changed since
        /// the ref's commit; only they are scanned ('-' reads standard input).
        #[arg(long, value_name = "FILE")]
        changed: Option<PathBuf>,
        /// Store file contents as loose, hard-linkable objects (for POSIX-zone checkouts).
        #[arg(long)]
        loose: bool,
        /// Make a commit even if nothing changed.
        #[arg(long)]
        allow_empty: bool,
        /// Leave out paths matching GLOB, with everything below them (repeatable).
        /// A pattern with a '/' matches the path relative to SRC (`var/cache/*`);
        /// one without matches any name (`*.tmp`, `node_modules`).
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Do not descend into other file systems mounted below SRC (their mount
        /// points are recorded as empty directories), as `tar --one-file-system`.
        #[arg(long, short = 'x')]
        one_file_system: bool,
        /// (--zone posix) Called from a package-manager hook: records trigger, phase and
        /// the command line; apt-post/dpkg-post also deploy a new generation.
        #[arg(long, value_enum)]
        hook: Option<posix_cmd::Hook>,
        /// (--zone posix) Also deploy the commit as a new generation.
        #[arg(long)]
        deploy: bool,
        #[command(flatten)]
        root: posix_cmd::RootArgs,
        #[command(flatten)]
        deploy_args: posix_cmd::DeployArgs,
    },
    /// Roll the POSIX zone back (or forward) to an earlier state, as a new generation.
    #[command(after_help = "WHEN is a time ('2h ago', tuesday, 2026-11-20T10:00), before:<time>, \
        before:last-apt-upgrade, last-apt-upgrade, a commit id, or gen:N.\n\n\
        The result is a new commit on posix/main and a new generation with a boot-counted entry; \
        earlier generations stay bootable. Files under /etc that were edited locally after WHEN keep \
        their current content unless --include-etc (the preview lists them). With --file/--filter only \
        those paths are restored.\n\nExamples:\n  lakectl rollback --zone posix --to before:last-apt-upgrade\n  \
        lakectl rollback --zone posix --to yesterday --now --yes\n  lakectl rollback --zone posix --to gen:3 --file /etc/ssh/sshd_config\n  \
        lakectl rollback --zone posix --to tuesday --filter '/usr/lib/python3/**' --dry-run")]
    Rollback {
        /// The state to return to.
        #[arg(long, value_name = "WHEN")]
        to: String,
        /// Also write the difference into the running root, so it takes effect without a reboot.
        #[arg(long)]
        now: bool,
        /// Restore only this path (file or directory); repeatable.
        #[arg(long = "file", value_name = "PATH")]
        files: Vec<String>,
        /// Restore only the changed paths matching this glob (e.g. '/usr/share/doc/**'); repeatable.
        #[arg(long = "filter", value_name = "GLOB")]
        filters: Vec<String>,
        /// Roll back local edits under /etc too.
        #[arg(long)]
        include_etc: bool,
        /// Do not ask for confirmation.
        #[arg(long, short)]
        yes: bool,
        /// Only show what would change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        root: posix_cmd::RootArgs,
        #[command(flatten)]
        deploy_args: posix_cmd::DeployArgs,
    },
    /// Show commit history, newest first; for a FILE in a lakefs mount, the versions of that file.
    #[command(after_help = "In a lakefs mount (such as /home), `lakectl log FILE` lists the file's versions, \
        newest first: time, trigger (close, fsync, snapshot, manual, recovery, restore, ...), size, commit.\n\n\
        Examples:\n  lakectl log\n  lakectl log ~/notes.txt\n  lakectl log ~/notes.txt --json -n 5")]
    Log {
        /// Where to start (default: --ref), or a file in a lakefs mount.
        rev: Option<OsString>,
        /// At most this many commits.
        #[arg(short = 'n', long)]
        max: Option<usize>,
    },
    /// Show one commit: its metadata and what it changed.
    Show { rev: String },
    /// List a directory in a commit: PATH@REV (default: / at --ref).
    Ls {
        target: Option<OsString>,
        /// Long listing: kind, mode, owner, size, mtime, id.
        #[arg(short, long)]
        long: bool,
        /// Recurse into subdirectories.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Write a file's content from a commit to standard output: PATH@REV.
    Cat { target: OsString },
    /// Show what changed between two commits (A D M m = added, deleted, modified, metadata only).
    Diff {
        from: String,
        /// Default: --ref.
        to: Option<String>,
    },
    /// Write a commit's tree into an empty or new directory, exactly.
    Checkout {
        rev: String,
        dest: PathBuf,
        /// Hard-link files to loose objects in the lake (dest must be on the lake's file system).
        #[arg(long)]
        hardlink: bool,
    },
    /// Re-hash every object; name each damaged or missing one and the paths that use it.
    Verify,
    /// Delete what no ref reaches and repack.
    Gc {
        /// Only report what would be dropped.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sizes and counts: objects, packs, dedup, commits, refs.
    Stats,
    /// The lake's generations: which one is the default, which one is booted. Inside a
    /// lakefs mount (or given a PATH in one): the volume, its head, PATH's zone and branch,
    /// files open for writing and merge conflicts.
    Status {
        /// A path in a lakefs mount (default: the current directory, if it is in one).
        path: Option<PathBuf>,
    },
    /// Generations and their boot entries: list, deploy, pin, keep, prune, remove.
    Generation {
        #[command(subcommand)]
        cmd: generation_cmd::GenerationCmd,
    },
    /// Restore a file or directory of a lakefs mount (such as /home) to an earlier version.
    Restore(volume_cmd::RestoreArgs),
    /// Zones inside a lakefs mount: which paths get full history (lake), history on
    /// close (hybrid) or are stored plainly (posix).
    Zone {
        #[command(subcommand)]
        cmd: volume_cmd::ZoneCmd,
    },
    /// Branches of a path in a lakefs mount: create, switch, list, delete (docs/branches.md).
    Branch {
        #[command(subcommand)]
        cmd: branch_cmd::BranchCmd,
    },
    /// Three-way merge of a branch into the current branch of its path.
    Merge(branch_cmd::MergeArgs),
    /// Saved queries shown as directories under <mount>/views/.
    View {
        #[command(subcommand)]
        cmd: catalog_cmd::ViewCmd,
    },
    /// Full-text search over the text files of a lakefs mount.
    Search(catalog_cmd::SearchArgs),
    /// List refs, or delete one.
    Refs {
        /// Delete this ref (its commits go at the next gc unless something else reaches them).
        #[arg(long, value_name = "NAME")]
        delete: Option<String>,
    },
}

fn main() {
    lake_cli_docs::maybe_generate(Cli::command(), lake_cli_docs::Section::Commands);
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // One line, the hint at its end: scripts and tests read errors by the line.
        match hint(&e) {
            Some(h) => eprintln!("lakectl: error: {e:#} (hint: {h})"),
            None => eprintln!("lakectl: error: {e:#}"),
        }
        std::process::exit(2);
    }
}

/// What to run about an error. The libraries name what is wrong (typed errors);
/// which lakectl command or option helps is said here, from the first error in
/// the chain that has a hint.
fn hint(e: &anyhow::Error) -> Option<String> {
    use lake_catalog::error::Error as C;
    use lake_volume::error::Error as V;
    e.chain().find_map(|c| {
        if let Some(s) = c.downcast_ref::<lakefs::Error>() {
            return store_hint(s);
        }
        match c.downcast_ref::<V>() {
            Some(V::Store(s)) => return store_hint(s),
            Some(V::NoSuchBranch { .. } | V::NoBranchScope { .. }) => return Some("see `lakectl branch list`".into()),
            Some(V::CurrentBranch { scope, .. }) => {
                return Some(format!(
                    "switch away first (`lakectl branch switch main --path {}`)",
                    if scope.is_empty() { "." } else { scope }
                ))
            }
            Some(V::MergeInProgress { .. }) => return Some("commit the conflicted files or run `lakectl merge --abort` first".into()),
            Some(V::UnresolvedMerge { .. }) => return Some("fix them and `lakectl commit` them, or run `lakectl merge --abort`".into()),
            _ => {}
        }
        if let Some(lake_boot::error::Error::NoSpace { what, .. }) = c.downcast_ref() {
            return Some(if *what == lake_boot::error::LAKE_FS {
                "remove old generations with `lakectl generation prune` (or keep fewer: `lakectl generation keep N`), \
                 then drop what nothing uses with `lakectl gc`, and retry"
                    .into()
            } else {
                "remove old generations with `lakectl generation prune` (their kernels and initrds go with them) \
                 or free space on the ESP, then retry"
                    .into()
            });
        }
        match c.downcast_ref::<C>() {
            Some(C::Store(s)) => store_hint(s),
            Some(C::ViewExists { .. }) => Some("delete it first or use --replace".into()),
            _ => None,
        }
    })
}

fn store_hint(e: &lakefs::Error) -> Option<String> {
    use lakefs::Error as S;
    Some(match e {
        S::CorruptObject { .. } | S::MissingObject(_) => {
            "run `lakectl verify` to list every damaged object and the paths it affects".into()
        }
        S::NotALake { path, .. } => format!("create one with `lakectl init {}` or `mkfs.lakefs`", path.display()),
        S::DiskFull { .. } => "free space or run `lakectl gc`, then retry".into(),
        // The POSIX zone's names (lake-posix::rev) are checked first: their hints too.
        S::UnknownRevision(r) if r.starts_with("gen:") || r.starts_with("generation:") => "see `lakectl generation list`".into(),
        S::UnknownRevision(r) if r.contains("last-apt-upgrade") => "use --zone posix".into(),
        S::UnknownRevision(_) => "`lakectl log` lists commit ids".into(),
        S::NotFound { what: "generation", .. } => "see `lakectl generation list`".into(),
        _ => return None,
    })
}

fn open(cli: &Cli) -> Result<Lake> {
    Lake::open(&cli.lake).map_err(|e| {
        // Run from inside a dead /home mount, the volume could not be found and the
        // default lake was tried instead: the dead mount is the news.
        let dead = matches!(e, lakefs::Error::NotALake { .. })
            .then(|| std::env::current_dir().ok().and_then(|d| lake_volume::locate::dead_mount(&d)))
            .flatten();
        match dead {
            Some(root) => anyhow::anyhow!("{}", lake_volume::locate::dead_mount_hint(&root)),
            None => anyhow::Error::new(e).context(format!("opening the lake at {}", cli.lake.display())),
        }
    })
}

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Splits `PATH@REV` at the right-most '@' whose right side resolves; otherwise the
/// whole argument is a path at --ref (paths may contain '@', as systemd units do).
/// The path is bytes (any name); a revision is text.
fn path_at(lake: &Lake, target: &[u8], default_ref: &str) -> Result<(Vec<u8>, ObjectId)> {
    for i in (0..target.len()).rev().filter(|i| target[*i] == b'@') {
        let Ok(rev) = std::str::from_utf8(&target[i + 1..]) else { continue };
        if rev.is_empty() {
            continue;
        }
        match lake_posix::rev::resolve(lake, rev, default_ref) {
            Ok(id) => return Ok((target[..i].to_owned(), id)),
            Err(lakefs::Error::UnknownRevision(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok((target.to_owned(), lake_posix::rev::resolve(lake, "", default_ref)?))
}

fn run(mut cli: Cli) -> Result<()> {
    if cli.zone == Some(Zone::Posix) {
        cli.reference = lake_posix::posix::POSIX_REF.to_owned();
    }
    match &cli.cmd {
        Cmd::Init { dir } => {
            let dir = dir.as_ref().unwrap_or(&cli.lake);
            let lake = Lake::create(dir, &Default::default()).with_context(|| format!("creating a lake in {}", dir.display()))?;
            if cli.json {
                print_json(lake.superblock())?;
            } else {
                println!("created lake {} in {}", lake.superblock().uuid_string(), dir.display());
            }
        }
        Cmd::Commit { src, message, .. } if cli.zone.is_none() && src.first().is_some_and(|p| volume_cmd::in_mount(p).is_some()) => {
            volume_cmd::commit(src, message, cli.json)?;
        }
        Cmd::Commit { src, message, trigger, hook, deploy, root, deploy_args, .. } if src.is_empty() => {
            if cli.zone != Some(Zone::Posix) {
                bail!("give the directory to import, or use --zone posix to commit the running root's changes");
            }
            let a = posix_cmd::CommitArgs { hook: *hook, message, trigger, deploy: *deploy, root, deploy_args };
            posix_cmd::commit(&cli.lake, &a, cli.json, cli.quiet)?;
        }
        Cmd::Rollback { to, now, files, filters, include_etc, yes, dry_run, root, deploy_args } => {
            let lake = open(&cli)?;
            let a = posix_cmd::RollbackArgs {
                to,
                now: *now,
                files,
                filters,
                include_etc: *include_etc,
                yes: *yes,
                dry_run: *dry_run,
                root,
                deploy_args,
            };
            posix_cmd::rollback(&lake, &a, cli.json, cli.quiet)?;
        }
        Cmd::Commit { src, message, scope, trigger, changed, loose, allow_empty, exclude, one_file_system, .. } => {
            let [src] = src.as_slice() else { bail!("give one directory to import (several paths only inside a lakefs mount)") };
            let lake = open(&cli)?;
            let posix = cli.zone == Some(Zone::Posix);
            let changed_list = match changed {
                None => None,
                Some(f) => Some(read_list(f)?),
            };
            let bar = lakefs::progress::Bar::new(cli.quiet);
            let req = lakefs::ops::CommitRequest {
                src,
                reference: &cli.reference,
                message,
                // The POSIX zone is checked out as hard links: its files are stored loose.
                scope: if posix && scope == "path:/" { lake_posix::posix::SCOPE } else { scope },
                trigger,
                changed: changed_list.as_deref(),
                options: lakefs::import::ImportOptions { loose: *loose || posix },
                extra: vec![],
                allow_empty: *allow_empty,
            };
            let scan =
                lakefs::import::ScanOptions { exclude: exclude_matcher(exclude)?, one_file_system: *one_file_system, ..Default::default() };
            let t = std::time::Instant::now();
            let out = lakefs::ops::commit_dir_with(&lake, &req, None, &scan, &bar)
                .with_context(|| format!("committing {} to '{}' in {}", src.display(), cli.reference, cli.lake.display()))?;
            let secs = t.elapsed().as_secs_f64();
            if cli.json {
                let mut v = serde_json::to_value(&out)?;
                v["seconds"] = secs.into();
                print_json(&v)?;
            } else {
                let s = &out.stats;
                eprintln!(
                    "{} files, {} dirs, {} other, {} in {:.2}s ({:.0} MB/s); {} new in packs{}",
                    s.files,
                    s.dirs,
                    s.others,
                    show::bytes(s.bytes),
                    secs,
                    s.bytes as f64 / 1e6 / secs.max(1e-9),
                    show::bytes(s.packed_bytes),
                    if out.unchanged { "; nothing changed, no new commit" } else { "" }
                );
                println!("{}", out.commit);
            }
        }
        Cmd::Log { rev: Some(f), max } if looks_like_path(Path::new(f)) && volume_cmd::in_mount(Path::new(f)).is_some() => {
            let loc = volume_cmd::in_mount(Path::new(f)).context("the mount went away")?;
            volume_cmd::log_file(&loc, *max, cli.json)?;
        }
        Cmd::Log { rev, max } => {
            let lake = open(&cli)?;
            let rev = match rev {
                Some(r) => r.to_str().with_context(|| {
                    format!(
                        "'{}' is neither a file in a lakefs mount nor a revision (revisions are UTF-8)",
                        lakefs::names::escape(r.as_bytes())
                    )
                })?,
                None => &cli.reference,
            };
            let start = lake_posix::rev::resolve(&lake, rev, &cli.reference)?;
            show::log(&lake, start, max.unwrap_or(usize::MAX), cli.json, cli.zone == Some(Zone::Posix))?;
        }
        Cmd::Restore(a) => volume_cmd::restore(a, cli.json)?,
        Cmd::Zone { cmd } => volume_cmd::zone(cmd, cli.json)?,
        Cmd::Branch { cmd } => branch_cmd::branch(cmd, cli.json)?,
        Cmd::Merge(a) => branch_cmd::merge(a, cli.json)?,
        Cmd::View { cmd } => catalog_cmd::view(cmd, &cli.lake, cli.json)?,
        Cmd::Search(a) => catalog_cmd::search(a, &cli.lake, cli.json)?,
        Cmd::Show { rev } => {
            let lake = open(&cli)?;
            let id = lake_posix::rev::resolve(&lake, rev, &cli.reference)?;
            show::commit(&lake, id, cli.json)?;
        }
        Cmd::Ls { target, long, recursive } => {
            let lake = open(&cli)?;
            let (path, id) = path_at(&lake, target.as_ref().map_or(b"/", |t| t.as_bytes()), &cli.reference)?;
            let c = lake.read_commit(&id)?;
            let node =
                lake.lookup(&c.tree, &path)?.ok_or_else(|| lakefs::Error::NoSuchPath { path: lakefs::names::escape(&path), commit: id })?;
            show::ls(&lake, &path, &node, *long, *recursive, cli.json)?;
        }
        Cmd::Cat { target } => {
            let lake = open(&cli)?;
            let (path, id) = path_at(&lake, target.as_bytes(), &cli.reference)?;
            let c = lake.read_commit(&id)?;
            let shown = lakefs::names::escape(&path);
            // A hard link is another name of the file it names.
            let node = match lake.lookup(&c.tree, &path)? {
                Some(Node::Hardlink { target }) => lake.lookup(&c.tree, &target)?,
                n => n,
            };
            match node {
                Some(Node::File { content, .. }) => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    lake.write_content(&content, &mut out)?;
                    out.flush()?;
                }
                Some(n) => bail!("{shown} is a {}, not a file", n.kind_name()),
                None => bail!(lakefs::Error::NoSuchPath { path: shown, commit: id }),
            }
        }
        Cmd::Diff { from, to } => {
            let lake = open(&cli)?;
            let a = lake_posix::rev::resolve(&lake, from, &cli.reference)?;
            let b = lake_posix::rev::resolve(&lake, to.as_deref().unwrap_or(&cli.reference), &cli.reference)?;
            let (ca, cb) = (lake.read_commit(&a)?, lake.read_commit(&b)?);
            let mut changes = Vec::new();
            if ca.root != cb.root {
                changes.push(lakefs::diff::ByteChange { kind: ChangeKind::Metadata, path: b"/".to_vec(), entry: "dir" });
            }
            changes.extend(lakefs::diff::diff_bytes(&lake, &ca.tree, &cb.tree)?);
            let packages = match cli.zone {
                Some(Zone::Posix) => Some(lake_posix::dpkg::diff_trees(&lake, &ca.tree, &cb.tree)?),
                None => None,
            };
            if cli.json {
                print_json(&serde_json::json!({"from": a, "to": b, "packages": packages, "changes": changes}))?;
            } else {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                if let Some(p) = &packages {
                    writeln!(out, "packages: {}", if p.is_empty() { "no change".to_owned() } else { p.len().to_string() })?;
                    for c in p {
                        writeln!(out, "  {c}")?;
                    }
                    writeln!(out, "files: {}", changes.len())?;
                }
                for c in &changes {
                    writeln!(out, "{} {}", c.kind.letter(), lakefs::names::escape(&c.path))?;
                }
            }
        }
        Cmd::Checkout { rev, dest, hardlink } => {
            let lake = open(&cli)?;
            let id = lake_posix::rev::resolve(&lake, rev, &cli.reference)?;
            let c = lake.read_commit(&id)?;
            let bar = lakefs::progress::Bar::new(cli.quiet);
            let opts = lakefs::checkout::CheckoutOptions { hardlink: *hardlink };
            let st = lakefs::checkout::checkout(&lake, &c.tree, &c.root, dest, opts, &bar)
                .with_context(|| format!("checking out {id} into {}", dest.display()))?;
            if cli.json {
                print_json(&serde_json::json!({"commit": id, "dest": dest, "stats": st}))?;
            } else {
                eprintln!(
                    "{} files, {} dirs, {} other, {} written to {}",
                    st.files,
                    st.dirs,
                    st.others,
                    show::bytes(st.bytes),
                    dest.display()
                );
            }
        }
        Cmd::Verify => {
            let lake = open(&cli)?;
            let bar = lakefs::progress::Bar::new(cli.quiet);
            let report = lakefs::verify::verify(&lake, &bar)?;
            show::verify(&report, cli.json)?;
            if !report.clean() {
                std::process::exit(1);
            }
        }
        Cmd::Gc { dry_run } => {
            let lake = open(&cli)?;
            let bar = lakefs::progress::Bar::new(cli.quiet);
            let r = lakefs::gc::gc(&lake, *dry_run, &bar)?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!(
                    "{}dropped {} objects, {} loose objects, {} commits; kept {} objects; packs {} -> {}, {} -> {}",
                    if r.dry_run { "(dry run) would have " } else { "" },
                    r.objects_dropped,
                    r.loose_dropped,
                    r.commits_dropped,
                    r.objects_kept,
                    r.packs_before,
                    r.packs_after,
                    show::bytes(r.bytes_before),
                    show::bytes(r.bytes_after)
                );
            }
        }
        Cmd::Stats => {
            let lake = open(&cli)?;
            show::stats(&lake, cli.json)?;
        }
        Cmd::Status { path } if volume_cmd::in_mount(path.as_deref().unwrap_or(Path::new("."))).is_some() => {
            let loc = volume_cmd::in_mount(path.as_deref().unwrap_or(Path::new("."))).context("the mount went away")?;
            volume_cmd::status(&loc, cli.json)?;
        }
        Cmd::Status { path: Some(p) } => bail!("{} is not inside a lakefs mount", p.display()),
        Cmd::Status { path: None } => {
            let lake = open(&cli)?;
            show::status(&lake, cli.json)?;
        }
        Cmd::Generation { cmd } => {
            let lake = open(&cli)?;
            generation_cmd::run(&lake, cmd, cli.json, cli.quiet)?;
        }
        Cmd::Refs { delete: Some(name) } => {
            let lake = open(&cli)?;
            let old = lake.delete_ref(name).with_context(|| format!("deleting ref '{name}'"))?;
            eprintln!("deleted ref '{name}' (was {old})");
        }
        Cmd::Refs { delete: None } => {
            let lake = open(&cli)?;
            let refs = lake.refs()?;
            if cli.json {
                let v: Vec<_> = refs.iter().map(|(n, id)| serde_json::json!({"name": n, "commit": id})).collect();
                print_json(&v)?;
            } else {
                for (n, id) in refs {
                    println!("{id} {n}");
                }
            }
        }
    }
    Ok(())
}

/// A `lakectl log` argument names a file (not a revision) when it exists or has a '/'.
fn looks_like_path(p: &Path) -> bool {
    p.as_os_str().as_bytes().contains(&b'/') || std::fs::symlink_metadata(p).is_ok()
}

/// A change list: one path a line, as bytes (names need not be UTF-8);
/// surrounding spaces and blank lines are ignored.
fn read_list(f: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = if f == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading the change list from standard input")?;
        b
    } else {
        std::fs::read(f).with_context(|| format!("reading the change list {}", f.display()))?
    };
    Ok(bytes.split(|c| *c == b'\n').map(|l| l.trim_ascii()).filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect())
}

/// `--exclude` patterns as a scan predicate: patterns with a '/' match the
/// source-relative path, the others any single name on it.
fn exclude_matcher(patterns: &[String]) -> Result<Option<lakefs::import::PathFilter>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let (mut paths, mut names) = (globset::GlobSetBuilder::new(), globset::GlobSetBuilder::new());
    for p in patterns {
        let glob = globset::GlobBuilder::new(p.trim_start_matches('/').trim_end_matches('/'))
            .literal_separator(true)
            .build()
            .with_context(|| format!("--exclude '{p}' is not a valid glob"))?;
        if p.trim_end_matches('/').contains('/') {
            paths.add(glob);
        } else {
            names.add(glob);
        }
    }
    let (paths, names) = (paths.build()?, names.build()?);
    use std::os::unix::ffi::OsStrExt;
    let path = |b: &[u8]| std::path::Path::new(std::ffi::OsStr::from_bytes(b)).to_owned();
    Ok(Some(std::sync::Arc::new(move |rel: &[u8]| {
        paths.is_match(path(rel)) || rel.rsplit(|b| *b == b'/').next().is_some_and(|name| names.is_match(path(name)))
    })))
}
