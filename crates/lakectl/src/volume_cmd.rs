//! LAKE-zone volume commands (a lakefs FUSE mount such as /home): per-file log,
//! restore, zones, commits of chosen paths, status.
//!
//! The mount is found from a path (walking up to `.lake/info`). Restores change
//! the working copy THROUGH the mount (ordinary writes, so the kernel's caches
//! stay right), then ask the daemon to commit (`flush`, trigger `restore`).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lakefs::tree::{Content, Node};
use lakefs::volume::{control, file_log, locate, Located};
use lakefs::zones::{VolumeZones, Zone, ZonesFile};
use lakefs::{Lake, ObjectId};

#[derive(clap::Args)]
#[command(after_help = "WHEN is a time ('10 min ago', yesterday, 2026-11-20T10:00, before:<time>) or a commit id \
    (see `lakectl log FILE`). A directory gets its whole subtree back: files that differ are rewritten, missing \
    ones created, ones that did not exist then removed (POSIX-zone paths such as .cache are left alone). \
    Deleted files can be restored too. The restore is one commit with trigger 'restore'.\n\n\
    Examples:\n  lakectl restore ~/notes.txt --to '10 min ago'\n  lakectl restore ~/thesis --to yesterday --dry-run\n  \
    lakectl restore ~/old.txt --to b3:1f2e")]
pub struct RestoreArgs {
    /// The file (or directory) in a lakefs mount to restore.
    pub path: std::path::PathBuf,
    /// The version to go back to: a time ('10 min ago', yesterday, 2026-11-20T10:00) or a commit id.
    #[arg(long, value_name = "WHEN")]
    pub to: String,
    /// Only show what would change.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(clap::Subcommand)]
pub enum ZoneCmd {
    /// Move a path of a lakefs mount into another zone (posix, hybrid or lake).
    #[command(after_help = "posix: stored plainly, never hashed nor committed (caches, build trees);\n\
        hybrid: committed on close, no micro-snapshots, not in the catalog (dotfiles);\n\
        lake: full history with micro-snapshots of open files, catalog and search.\n\n\
        The override goes into LAKE/volumes/NAME/zones.toml; the daemon rereads it and rescans.\n\n\
        Example:\n  lakectl zone set ~/build posix")]
    Set {
        path: std::path::PathBuf,
        /// posix, hybrid or lake (named apart from the global --zone option).
        #[arg(value_name = "ZONE")]
        new_zone: String,
    },
    /// Show the zone of a path.
    Show { path: std::path::PathBuf },
}

fn find(path: &Path) -> Result<Located> {
    locate(path)
        .with_context(|| format!("looking for the lakefs mount of {}", path.display()))?
        .with_context(|| format!("{} is not inside a lakefs mount (no .lake/info above it)", path.display()))
}

/// The volume `path` is in, if any (lakectl's commands switch behaviour on it).
pub fn in_mount(path: &Path) -> Option<Located> {
    locate(path).ok().flatten()
}

fn open_lake(loc: &Located) -> Result<Lake> {
    Lake::open(&loc.info.lake).with_context(|| format!("opening the lake at {}", loc.info.lake.display()))
}

fn zones_of(loc: &Located) -> Result<VolumeZones> {
    let f = override_file(loc);
    VolumeZones::load(&f, &loc.info.mountpoint).with_context(|| format!("reading zones ({})", f.display()))
}

fn override_file(loc: &Located) -> PathBuf {
    loc.info.lake.join(lakefs::volume::VOLUMES_DIR).join(&loc.info.volume).join(lakefs::volume::ZONES_FILE)
}

fn local_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn short(id: &ObjectId) -> String {
    id.to_hex()[..12].to_owned()
}

/// `lakectl log FILE` inside a mount: the versions of that file, newest first.
pub fn log_file(loc: &Located, max: Option<usize>, json: bool) -> Result<()> {
    let lake = open_lake(loc)?;
    let versions = file_log::file_log_limit(&lake, &loc.info.reference, &loc.rel, max.unwrap_or(usize::MAX))
        .with_context(|| format!("reading the history of {}", loc.rel))?;
    if json {
        return crate::print_json(&serde_json::json!({
            "volume": loc.info.volume, "path": loc.rel, "ref": loc.info.reference, "versions": versions
        }));
    }
    if versions.is_empty() {
        eprintln!("{}: no versions in the history of volume {} (a POSIX-zone path, or never committed)", loc.rel, loc.info.volume);
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for v in &versions {
        let size = match (v.kind.as_str(), v.size) {
            ("deleted", _) => "deleted".to_owned(),
            (_, Some(s)) => crate::show::bytes(s),
            (k, None) => k.to_owned(),
        };
        let note = if v.metadata_only { " (metadata)" } else { "" };
        writeln!(out, "{}  {:<9} {:>10}  {}{}  {}", local_time(v.time), v.trigger, size, short(&v.commit), note, v.message)?;
    }
    out.flush()?;
    Ok(())
}

/// One step of a restore.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
enum Step {
    Write { path: String, size: u64 },
    Symlink { path: String, target: String },
    Mkdir { path: String },
    Remove { path: String },
}

/// True if the file at `path` holds exactly `content`.
fn same_file(lake: &Lake, path: &Path, content: &Content, size: u64) -> Result<bool> {
    let Ok(md) = std::fs::symlink_metadata(path) else { return Ok(false) };
    if !md.is_file() || md.len() != size {
        return Ok(false);
    }
    if let Content::Whole(id) = content {
        let b = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(ObjectId::hash(&b) == *id);
    }
    let mut want = Vec::new();
    lake.write_content(content, &mut want)?;
    Ok(std::fs::read(path).with_context(|| format!("reading {}", path.display()))? == want)
}

/// Resolves a hard-link entry to the node of its first name in the same tree.
fn resolve(lake: &Lake, tree: &ObjectId, node: Node) -> Result<Node> {
    match node {
        Node::Hardlink { target } => {
            let t = String::from_utf8_lossy(&target).into_owned();
            lake.lookup(tree, &t)?.with_context(|| format!("hard link target {t} missing from the tree"))
        }
        n => Ok(n),
    }
}

/// Plans making mount-relative `rel` (at `abs`) equal to `node`.
fn plan(lake: &Lake, tree: &ObjectId, zones: &VolumeZones, rel: &str, abs: &Path, node: &Node, steps: &mut Vec<Step>) -> Result<()> {
    let cur = std::fs::symlink_metadata(abs).ok();
    match node {
        Node::File { content, size, .. } => {
            if !same_file(lake, abs, content, *size)? {
                if cur.as_ref().is_some_and(|m| m.is_dir()) {
                    steps.push(Step::Remove { path: rel.to_owned() });
                }
                steps.push(Step::Write { path: rel.to_owned(), size: *size });
            }
        }
        Node::Symlink { target, .. } => {
            let same = std::fs::read_link(abs).is_ok_and(|t| t.as_os_str().as_bytes() == target.as_slice());
            if !same {
                if cur.is_some() {
                    steps.push(Step::Remove { path: rel.to_owned() });
                }
                steps.push(Step::Symlink { path: rel.to_owned(), target: String::from_utf8_lossy(target).into_owned() });
            }
        }
        Node::Dir { tree: sub, .. } => {
            match &cur {
                Some(m) if m.is_dir() => {}
                Some(_) => {
                    steps.push(Step::Remove { path: rel.to_owned() });
                    steps.push(Step::Mkdir { path: rel.to_owned() });
                }
                None => steps.push(Step::Mkdir { path: rel.to_owned() }),
            }
            let entries = lake.read_tree(sub)?.entries;
            let join = |name: &[u8]| {
                let n = String::from_utf8_lossy(name);
                if rel.is_empty() {
                    n.into_owned()
                } else {
                    format!("{rel}/{n}")
                }
            };
            let wanted: std::collections::HashSet<Vec<u8>> = entries.iter().map(|e| e.name.clone()).collect();
            if cur.as_ref().is_some_and(|m| m.is_dir()) {
                let mut names: Vec<_> = std::fs::read_dir(abs)
                    .with_context(|| format!("listing {}", abs.display()))?
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect();
                names.sort();
                for n in names {
                    let crel = join(n.as_bytes());
                    // POSIX-zone paths have no history: never remove them; `.lake` is the driver's.
                    if !wanted.contains(n.as_bytes()) && zones.zone(&crel) != Zone::Posix && !(rel.is_empty() && n == ".lake") {
                        steps.push(Step::Remove { path: crel });
                    }
                }
            }
            for e in entries {
                let crel = join(&e.name);
                let node = resolve(lake, tree, e.node)?;
                plan(lake, tree, zones, &crel, &abs.join(std::ffi::OsStr::from_bytes(&e.name)), &node, steps)?;
            }
        }
        // Devices, fifos and sockets are not restored through a user's mount.
        _ => {}
    }
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    let md = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()),
    };
    if md.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
        .with_context(|| format!("removing {}", path.display()))
}

/// Writes the version's bytes through the mount: a temp file beside it, renamed over.
fn write_version(lake: &Lake, tree: &ObjectId, root: &Path, rel: &str) -> Result<()> {
    let Some(node) = lake.lookup(tree, rel)? else { bail!("{rel} vanished from the tree") };
    let Node::File { content, meta, .. } = resolve(lake, tree, node)? else { bail!("{rel} is not a file in that version") };
    let dest = root.join(rel);
    let dir = dest.parent().context("a file has a parent directory")?;
    let name = dest.file_name().context("a file has a name")?.to_string_lossy().into_owned();
    let tmp = dir.join(format!(".{name}.lake-restore-{}", std::process::id()));
    let r = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        lake.write_content(&content, &mut f)?;
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode)).with_context(|| format!("chmod {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("writing {}", tmp.display()))?;
        // Owner as recorded when we may set it (root restoring someone's file).
        let md = f.metadata().with_context(|| format!("stat {}", tmp.display()))?;
        if md.uid() != meta.uid || md.gid() != meta.gid {
            let _ = std::os::unix::fs::fchown(&f, Some(meta.uid), Some(meta.gid));
        }
        std::fs::rename(&tmp, &dest).with_context(|| format!("renaming {} over {}", tmp.display(), dest.display()))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

pub fn restore(a: &RestoreArgs, json: bool) -> Result<()> {
    let loc = find(&a.path)?;
    let lake = open_lake(&loc)?;
    let commit = lakefs::rev::resolve(&lake, &a.to, &loc.info.reference)
        .with_context(|| format!("finding '{}' in the history of volume {}", a.to, loc.info.volume))?;
    let c = lake.read_commit(&commit)?;
    let zones = zones_of(&loc)?;
    if zones.zone(&loc.rel) == Zone::Posix {
        bail!("{} is in the POSIX zone: it has no history to restore from", a.path.display());
    }
    let node = lake
        .lookup(&c.tree, &loc.rel)?
        .with_context(|| format!("{} did not exist at {} (commit {commit}, {})", loc.rel, a.to, local_time(c.time)))?;
    let node = resolve(&lake, &c.tree, node)?;
    let mut steps = Vec::new();
    let abs = loc.root.join(&loc.rel);
    plan(&lake, &c.tree, &zones, &loc.rel, &abs, &node, &mut steps)?;
    let what = if loc.rel.is_empty() { "the whole volume".to_owned() } else { loc.rel.clone() };
    if !json || a.dry_run {
        if json {
            return crate::print_json(&serde_json::json!({"commit": commit, "time": c.time, "steps": steps, "dry_run": true}));
        }
        eprintln!(
            "{}restore {what} to its version of {} (commit {}, {}): {} change(s)",
            if a.dry_run { "(dry run) " } else { "" },
            local_time(c.time),
            short(&commit),
            c.trigger,
            steps.len()
        );
        for s in &steps {
            match s {
                Step::Write { path, size } => eprintln!("  write   {path} ({})", crate::show::bytes(*size)),
                Step::Symlink { path, target } => eprintln!("  symlink {path} -> {target}"),
                Step::Mkdir { path } => eprintln!("  mkdir   {path}"),
                Step::Remove { path } => eprintln!("  remove  {path}"),
            }
        }
    }
    if a.dry_run {
        return Ok(());
    }
    if steps.is_empty() {
        eprintln!("{what} already equals that version; nothing to do");
        if json {
            crate::print_json(&serde_json::json!({"commit": commit, "steps": steps, "head": serde_json::Value::Null}))?;
        }
        return Ok(());
    }
    for s in &steps {
        match s {
            Step::Write { path, .. } => write_version(&lake, &c.tree, &loc.root, path)?,
            Step::Symlink { path, target } => {
                std::os::unix::fs::symlink(target, loc.root.join(path)).with_context(|| format!("creating symlink {path}"))?
            }
            Step::Mkdir { path } => std::fs::create_dir_all(loc.root.join(path)).with_context(|| format!("creating {path}"))?,
            Step::Remove { path } => remove(&loc.root.join(path))?,
        }
    }
    let reply = control::request(
        &loc.root,
        &serde_json::json!({"op": "flush", "trigger": "restore", "message": format!("restore {what} to {} ({})", a.to, short(&commit))}),
    )
    .with_context(|| format!("committing the restore through {}", loc.root.display()))?;
    if json {
        crate::print_json(&serde_json::json!({"commit": commit, "steps": steps, "head": reply["commit"]}))?;
    } else {
        println!("{}", reply["commit"].as_str().unwrap_or("(no commit)"));
    }
    Ok(())
}

pub fn zone(c: &ZoneCmd, json: bool) -> Result<()> {
    match c {
        ZoneCmd::Show { path } => {
            let loc = find(path)?;
            let z = zones_of(&loc)?.zone(&loc.rel);
            if json {
                crate::print_json(&serde_json::json!({"path": loc.rel, "volume": loc.info.volume, "zone": z}))
            } else {
                println!("{z}");
                Ok(())
            }
        }
        ZoneCmd::Set { path, new_zone } => {
            let z: Zone = new_zone.parse()?;
            let loc = find(path)?;
            if loc.rel.is_empty() {
                bail!("the mount root itself is the volume; set zones of paths inside it");
            }
            let old = zones_of(&loc)?.zone(&loc.rel);
            let f = override_file(&loc);
            let mut file = ZonesFile::load_or_empty(&f)?;
            file.set_override(&loc.rel, z);
            let mut text = String::from("# Zone overrides of this volume (mount-relative paths); written by `lakectl zone set`.\n");
            text.push_str(&file.to_toml()?);
            lakefs::util::write_atomic(&f, text.as_bytes()).with_context(|| format!("writing {}", f.display()))?;
            let reply = control::request(&loc.root, &serde_json::json!({"op": "reload"}))
                .with_context(|| format!("asking the daemon of {} to reload its zones", loc.root.display()))?;
            if json {
                crate::print_json(&serde_json::json!({"path": loc.rel, "zone": z, "was": old, "commit": reply["commit"]}))
            } else {
                eprintln!("{}: {old} -> {z} (override in {})", loc.rel, f.display());
                Ok(())
            }
        }
    }
}

/// `lakectl commit PATH.. -m MSG` for paths in a lakefs mount: one atomic commit.
pub fn commit(paths: &[PathBuf], message: &str, json: bool) -> Result<()> {
    let mut root: Option<Located> = None;
    let mut rels = Vec::new();
    for p in paths {
        let loc = find(p)?;
        if let Some(r) = &root {
            if r.root != loc.root {
                bail!("{} and {} are in different lakefs mounts; commit them separately", paths[0].display(), p.display());
            }
        }
        if loc.rel.is_empty() {
            bail!("{} is the mount root; name the paths to commit", p.display());
        }
        rels.push(loc.rel.clone());
        root = Some(loc);
    }
    let Some(loc) = root else { bail!("name at least one path") };
    let reply = control::request(&loc.root, &serde_json::json!({"op": "commit", "paths": rels, "message": message}))
        .with_context(|| format!("committing through {}", loc.root.display()))?;
    if json {
        return crate::print_json(&reply);
    }
    let effect = &reply["branches"];
    for r in effect["resolved"].as_array().into_iter().flatten() {
        eprintln!("conflict resolved: {}", r.as_str().unwrap_or_default());
    }
    for m in effect["merged"].as_array().into_iter().flatten() {
        eprintln!("merge of '{}' into '{}' completed: {}", m[1].as_str().unwrap_or("?"), m[0].as_str().unwrap_or("?"), m[2]);
    }
    if reply["unchanged"].as_bool() == Some(true) {
        eprintln!("nothing changed in those paths; no new commit");
    }
    println!("{}", reply["commit"].as_str().unwrap_or("(none)"));
    Ok(())
}

/// `lakectl status [PATH]` inside a mount: volume, head, zone of PATH, branch, conflicts.
pub fn status(loc: &Located, json: bool) -> Result<()> {
    let lake = open_lake(loc)?;
    let head = lake.get_ref(&loc.info.reference)?;
    let head_commit = head.map(|h| lake.read_commit(&h)).transpose()?;
    let zone = zones_of(loc)?.zone(&loc.rel);
    let conflicts = lakefs::volume::branch::conflicts(&lake, &loc.info.volume)?;
    let scope = lakefs::volume::branch::scope_of(&lake, &loc.info.volume, &loc.rel)?;
    let branch = match &scope {
        Some(s) => Some(lakefs::volume::branch::current_branch(&lake, &loc.info.volume, s)?),
        None => None,
    };
    let daemon = control::request(&loc.root, &serde_json::json!({"op": "status"})).ok();
    let open: Vec<String> = daemon
        .as_ref()
        .and_then(|d| d["open"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    // Paths the daemon could not record (left out of commits until they change).
    let not_recorded: Vec<(String, String)> = daemon
        .as_ref()
        .and_then(|d| d["not_recorded"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some((v["path"].as_str()?.to_owned(), v["reason"].as_str().unwrap_or_default().to_owned())))
        .collect();
    if json {
        return crate::print_json(&serde_json::json!({
            "volume": loc.info.volume, "mountpoint": loc.root, "lake": loc.info.lake, "ref": loc.info.reference,
            "head": head, "head_time": head_commit.as_ref().map(|c| c.time), "head_trigger": head_commit.as_ref().map(|c| &c.trigger),
            "path": loc.rel, "zone": zone, "scope": scope, "branch": branch, "open_for_write": open, "conflicts": conflicts,
            "not_recorded": not_recorded.iter().map(|(p, r)| serde_json::json!({"path": p, "reason": r})).collect::<Vec<_>>(),
        }));
    }
    println!("volume:   {} (lake {}, mounted on {})", loc.info.volume, loc.info.lake.display(), loc.root.display());
    match (&head, &head_commit) {
        (Some(h), Some(c)) => println!("head:     {} ({}, {}) {}", short(h), local_time(c.time), c.trigger, c.message),
        _ => println!("head:     (no commits yet)"),
    }
    let shown = if loc.rel.is_empty() { "/".to_owned() } else { loc.rel.clone() };
    println!("path:     {shown}: zone {zone}");
    if let (Some(s), Some(b)) = (&scope, &branch) {
        println!("branch:   {b} (scope {})", if s.is_empty() { "/" } else { s });
    }
    if !open.is_empty() {
        println!("open for writing: {}", open.len());
        for o in &open {
            println!("  {o}");
        }
    }
    if conflicts.is_empty() {
        println!("conflicts: none");
    } else {
        println!("conflicts: {} (fix the files, then `lakectl commit PATH -m ..`)", conflicts.len());
        for c in &conflicts {
            let theirs = c.theirs_copy.as_deref().map(|t| format!(", theirs in {t}")).unwrap_or_default();
            println!("  {:<16} {} (merging '{}'{theirs})", c.kind, c.path, c.theirs);
        }
    }
    if !not_recorded.is_empty() {
        println!(
            "not recorded: {} (could not be read; history keeps their last version, tried again when they change)",
            not_recorded.len()
        );
        for (p, r) in &not_recorded {
            println!("  {p}: {r}");
        }
    }
    Ok(())
}
