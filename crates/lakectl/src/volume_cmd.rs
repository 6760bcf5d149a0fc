//! LAKE-zone volume commands (a lakefs FUSE mount such as /home): per-file log,
//! restore, zones, commits of chosen paths, status.
//!
//! The mount is found from a path (walking up to `.lake/info`). Restores change
//! the working copy THROUGH the mount (ordinary writes, so the kernel's caches
//! stay right), then ask the daemon to commit (`flush`, trigger `restore`).
//!
//! Paths are taken as the OS gives them (any bytes) and printed escaped
//! (`lakefs::names::escape`: `caf\xe9.txt`); in JSON a path that is not UTF-8
//! is `{"bytes": "<escaped>"}`.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lake_volume::restore::{self, Past, Step};
use lake_volume::zones::{VolumeZones, Zone, ZonesFile};
use lake_volume::{control, locate, Located};
use lakefs::names::{self, escape};
use lakefs::ObjectId;

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
    let found = locate(path).ok().flatten();
    if found.is_none() {
        // A dead mount answers nothing; say so instead of "not a lake".
        if let Some(root) = lake_volume::locate::dead_mount(path) {
            eprintln!("lakectl: error: {}", lake_volume::locate::dead_mount_hint(&root));
            std::process::exit(2);
        }
    }
    found
}

fn zones_of(loc: &Located) -> Result<VolumeZones> {
    let f = override_file(loc);
    VolumeZones::load(&f, &loc.info.mountpoint).with_context(|| format!("reading zones ({})", f.display()))
}

fn override_file(loc: &Located) -> PathBuf {
    loc.info.lake.join(lake_volume::VOLUMES_DIR).join(&loc.info.volume).join(lake_volume::ZONES_FILE)
}

fn local_time(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .map(|ts| ts.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| t.to_string())
}

fn short(id: &ObjectId) -> String {
    id.to_hex()[..12].to_owned()
}

/// Asks the mount's daemon; it answers as this process's user, with what that user may read.
fn ask(loc: &Located, req: serde_json::Value) -> Result<serde_json::Value> {
    control::request(&loc.root, &req).with_context(|| format!("asking the daemon of {}", loc.root.display()))
}

/// `lakectl log FILE` inside a mount: the versions of that file, newest first (those
/// the caller could read; the daemon decides).
pub fn log_file(loc: &Located, max: Option<usize>, json: bool) -> Result<()> {
    let r = ask(loc, serde_json::json!({"op": "log", "path": names::to_json(&loc.rel), "max": max}))
        .with_context(|| format!("reading the history of {}", escape(&loc.rel)))?;
    let versions = r["versions"].as_array().cloned().unwrap_or_default();
    if json {
        return crate::print_json(&serde_json::json!({
            "volume": loc.info.volume, "path": names::to_json(&loc.rel), "ref": loc.info.reference, "versions": versions
        }));
    }
    if versions.is_empty() {
        eprintln!("{}: no versions in the history of volume {} (a POSIX-zone path, or never committed)", escape(&loc.rel), loc.info.volume);
        return Ok(());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for v in &versions {
        let (kind, size) = (v["kind"].as_str().unwrap_or_default(), v["size"].as_u64());
        let size = match (kind, size) {
            ("deleted", _) => "deleted".to_owned(),
            (_, Some(s)) => crate::show::bytes(s),
            (k, None) => k.to_owned(),
        };
        let note = if v["metadata_only"].as_bool() == Some(true) { " (metadata)" } else { "" };
        let commit = v["commit"].as_str().unwrap_or_default();
        let short = commit.strip_prefix("b3:").unwrap_or(commit).get(..12).unwrap_or(commit);
        writeln!(
            out,
            "{}  {:<9} {:>10}  {}{}  {}",
            local_time(v["time"].as_i64().unwrap_or_default()),
            v["trigger"].as_str().unwrap_or_default(),
            size,
            short,
            note,
            v["message"].as_str().unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(())
}

pub fn restore(a: &RestoreArgs, json: bool) -> Result<()> {
    let loc = find(&a.path)?;
    // Zones are the daemon's answer: its zone files are in the lake, which only root may read.
    let zones = |paths: &[&[u8]]| -> Result<Vec<String>> {
        let paths: Vec<serde_json::Value> = paths.iter().map(|p| names::to_json(p)).collect();
        let r = ask(&loc, serde_json::json!({"op": "zone", "paths": paths}))?;
        Ok(r["zones"].as_array().into_iter().flatten().map(|z| z.as_str().unwrap_or_default().to_owned()).collect())
    };
    if zones(&[&loc.rel])?.first().map(String::as_str) == Some("posix") {
        bail!("{} is in the POSIX zone: it has no history to restore from", escape(a.path.as_os_str().as_bytes()));
    }
    let version = ask(&loc, serde_json::json!({"op": "tree", "rev": a.to, "path": names::to_json(&loc.rel)}))
        .with_context(|| format!("finding '{}' in the history of volume {}", a.to, loc.info.volume))?;
    let commit = version["commit"].as_str().unwrap_or_default().to_owned();
    let short = commit.strip_prefix("b3:").unwrap_or(&commit).get(..12).unwrap_or(&commit).to_owned();
    let time = version["time"].as_i64().unwrap_or_default();
    // A path the caller could not read then is answered as one that did not exist.
    let node = &version["node"];
    if node.is_null() {
        bail!("{} did not exist at {} (commit {commit}, {})", escape(&loc.rel), a.to, local_time(time));
    }
    let past = Past::at_commit(&loc.root, &commit);
    let abs = loc.root.join(names::path(&loc.rel));
    let mut steps = restore::plan(&past, &loc.rel, &abs, node)?;
    // POSIX-zone paths have no history: never removed.
    let removals = restore::removals(&steps);
    let posix: std::collections::HashSet<Vec<u8>> =
        removals.iter().zip(zones(&removals)?).filter(|(_, z)| z == "posix").map(|(p, _)| p.to_vec()).collect();
    restore::keep_paths(&mut steps, &posix);
    let what = if loc.rel.is_empty() { "the whole volume".to_owned() } else { escape(&loc.rel) };
    if !json || a.dry_run {
        if json {
            return crate::print_json(&serde_json::json!({"commit": commit, "time": time, "steps": steps, "dry_run": true}));
        }
        eprintln!(
            "{}restore {what} to its version of {} (commit {short}, {}): {} change(s)",
            if a.dry_run { "(dry run) " } else { "" },
            local_time(time),
            version["trigger"].as_str().unwrap_or_default(),
            steps.len()
        );
        for s in &steps {
            match s {
                Step::Write { path, size } => eprintln!("  write   {} ({})", escape(path), crate::show::bytes(*size)),
                Step::Symlink { path, target } => eprintln!("  symlink {} -> {}", escape(path), escape(target)),
                Step::Mkdir { path } => eprintln!("  mkdir   {}", escape(path)),
                Step::Remove { path } => eprintln!("  remove  {}", escape(path)),
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
    restore::apply(&past, &loc.root, &loc.rel, node, &steps)?;
    let reply = control::request(
        &loc.root,
        &serde_json::json!({"op": "flush", "trigger": "restore", "message": format!("restore {what} to {} ({short})", a.to)}),
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
            // The daemon answers: the zone files are in the lake, which is root's only.
            let d = control::request(&loc.root, &serde_json::json!({"op": "zone", "paths": [names::to_json(&loc.rel)]}))
                .with_context(|| format!("asking the lakefs daemon of {}", loc.root.display()))?;
            let z = d["zones"][0].as_str().unwrap_or("lake").to_owned();
            if json {
                crate::print_json(&serde_json::json!({"path": names::to_json(&loc.rel), "volume": loc.info.volume, "zone": z}))
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
            let Ok(rel) = std::str::from_utf8(&loc.rel) else {
                bail!(
                    "{}: zone overrides are kept in zones.toml, which holds UTF-8 paths only; set the zone of a parent directory instead",
                    escape(&loc.rel)
                );
            };
            let f = override_file(&loc);
            let mut file = ZonesFile::load_or_empty(&f)?;
            file.set_override(rel, z);
            let mut text = String::from("# Zone overrides of this volume (mount-relative paths); written by `lakectl zone set`.\n");
            text.push_str(&file.to_toml()?);
            lakefs::util::write_atomic(&f, text.as_bytes()).with_context(|| format!("writing {}", f.display()))?;
            let reply = control::request(&loc.root, &serde_json::json!({"op": "reload"}))
                .with_context(|| format!("asking the daemon of {} to reload its zones", loc.root.display()))?;
            if json {
                crate::print_json(&serde_json::json!({"path": rel, "zone": z, "was": old, "commit": reply["commit"]}))
            } else {
                eprintln!("{rel}: {old} -> {z} (override in {})", f.display());
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
        rels.push(names::to_json(&loc.rel));
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
    // Everything from the daemon, answering as this user: the lake is root's only.
    let d = control::request(&loc.root, &serde_json::json!({"op": "status", "path": names::to_json(&loc.rel)}))
        .with_context(|| format!("asking the lakefs daemon of {}", loc.root.display()))?;
    let head: Option<ObjectId> = d["head"].as_str().and_then(|h| h.parse().ok());
    // (time, trigger, message) of the head commit.
    let head_commit = head.map(|_| {
        (
            d["head_time"].as_i64().unwrap_or_default(),
            d["head_trigger"].as_str().unwrap_or_default().to_owned(),
            d["head_message"].as_str().unwrap_or_default().to_owned(),
        )
    });
    let zone = d["zone"].as_str().unwrap_or("lake").to_owned();
    let scope = d["scope"].as_str().map(str::to_owned);
    let branch = d["branch"].as_str().map(str::to_owned);
    let conflicts: Vec<lake_volume::branch::Conflict> = serde_json::from_value(d["conflicts"].clone()).unwrap_or_default();
    let daemon = Some(d);
    let open: Vec<Vec<u8>> = daemon
        .as_ref()
        .and_then(|d| d["open"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| names::from_json(v).ok())
        .collect();
    // Paths the daemon could not record (left out of commits until they change).
    let not_recorded: Vec<(Vec<u8>, String)> = daemon
        .as_ref()
        .and_then(|d| d["not_recorded"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| Some((names::from_json(&v["path"]).ok()?, v["reason"].as_str().unwrap_or_default().to_owned())))
        .collect();
    if json {
        return crate::print_json(&serde_json::json!({
            "volume": loc.info.volume, "mountpoint": loc.root, "lake": loc.info.lake, "ref": loc.info.reference,
            "passthrough": daemon.as_ref().and_then(|d| d["passthrough"].as_bool()),
            "head": head, "head_time": head_commit.as_ref().map(|c| c.0), "head_trigger": head_commit.as_ref().map(|c| &c.1),
            "path": names::to_json(&loc.rel), "zone": zone, "scope": scope, "branch": branch,
            "open_for_write": open.iter().map(|p| names::to_json(p)).collect::<Vec<_>>(), "conflicts": conflicts,
            "not_recorded": not_recorded.iter().map(|(p, r)| serde_json::json!({"path": names::to_json(p), "reason": r})).collect::<Vec<_>>(),
        }));
    }
    println!("volume:   {} (lake {}, mounted on {})", loc.info.volume, loc.info.lake.display(), loc.root.display());
    if let Some(on) = daemon.as_ref().and_then(|d| d["passthrough"].as_bool()) {
        println!(
            "data:     {}",
            if on {
                "FUSE passthrough (the kernel reads and writes file data directly)"
            } else {
                "served by the daemon (no FUSE passthrough)"
            }
        );
    }
    match (&head, &head_commit) {
        (Some(h), Some(c)) => println!("head:     {} ({}, {}) {}", short(h), local_time(c.0), c.1, c.2),
        _ => println!("head:     (no commits yet)"),
    }
    let shown = if loc.rel.is_empty() { "/".to_owned() } else { escape(&loc.rel) };
    println!("path:     {shown}: zone {zone}");
    if let (Some(s), Some(b)) = (&scope, &branch) {
        println!("branch:   {b} (scope {})", if s.is_empty() { "/" } else { s });
    }
    if !open.is_empty() {
        println!("open for writing: {}", open.len());
        for o in &open {
            println!("  {}", escape(o));
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
            println!("  {}: {r}", escape(p));
        }
    }
    Ok(())
}
