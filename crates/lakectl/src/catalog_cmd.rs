//! Saved-query views and full-text search over a lakefs mount's catalog
//! (`lakectl view`, `lakectl search`). The volume is found from a path in its
//! mount (walking up to `.lake/info`), or named with --volume in the --lake lake.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lakefs::catalog::{self, fts, views};
use lakefs::volume::{locate, Volume};
use lakefs::Lake;

const QUERY_HELP: &str = "QUERY: conditions `KEY OP VALUE` joined with and/or/not and parentheses.\n  \
    KEY: path name ext type mime size mtime taken make model width height\n  \
    OP: = != < <= > >= ~ (~ is a case-insensitive glob; without * ? [ a substring)\n  \
    type: image video audio text document archive executable other\n  \
    size: 1200, 4k, 1.5M; dates: 2025, 2025-06, 2025-06-01, 2025-06-01T10:00 (a date stands for its whole period)\n  \
    text:\"words\" matches text files containing all the words.\n  \
    Quote values with spaces: name ~ \"my trip*\". More in docs/catalog.md.";

#[derive(clap::Subcommand)]
pub enum ViewCmd {
    /// Save a query as a view, shown as the directory <mount>/views/NAME/.
    #[command(after_help = format!("{QUERY_HELP}\n\nExamples:\n  \
        lakectl view create june-2025 --query 'type = image and taken >= 2025-06-01 and taken < 2025-07-01'\n  \
        lakectl view create recipes --query 'text:\"flour\" and ext = md' ~/notes\n  \
        lakectl view create big --query 'size > 100M and not type = video' --volume home"))]
    Create {
        /// The view's name (its directory under views/).
        name: String,
        /// What the view shows (see below).
        #[arg(long)]
        query: String,
        /// Replace a view of the same name.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        at: Where,
    },
    /// List the volume's views and their queries.
    List {
        #[command(flatten)]
        at: Where,
    },
    /// A view's query and the files it matches (entry name -> path in the mount).
    Show {
        name: String,
        #[command(flatten)]
        at: Where,
    },
    /// Delete a view (the files stay; only the saved query goes).
    Delete {
        name: String,
        #[command(flatten)]
        at: Where,
    },
    /// Bring the volume's catalog up to its last commit (types, properties, words).
    #[command(after_help = "The mount's daemon indexes every commit as it makes it; this catches up \
        from the last indexed commit (after a crash, or for commits made without the daemon). --full \
        rebuilds the catalog whole, for instance after moving paths between zones.")]
    Reindex {
        /// Rebuild from scratch instead of catching up.
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        at: Where,
    },
}

/// Which volume: a path in its mount, or --volume in the --lake lake.
#[derive(clap::Args)]
pub struct Where {
    /// A path inside the lakefs mount (default: the current directory).
    pub path: Option<PathBuf>,
    /// The volume by name (in the lake given by --lake), instead of a path in its mount.
    #[arg(long, conflicts_with = "path")]
    pub volume: Option<String>,
}

#[derive(clap::Args)]
#[command(after_help = "Finds text files (UTF-8, up to 1 MiB, in the LAKE zone) containing all the words, \
    in their content or path; a word ending in * is a prefix. Best matches first.\n\nExamples:\n  \
    lakectl search kiwi mango\n  lakectl search 'lake*' --in ~/notes\n  lakectl search invoice --json")]
pub struct SearchArgs {
    /// Words to look for in text files.
    #[arg(required = true)]
    pub text: Vec<String>,
    /// Only files under this path of a lakefs mount (default: the whole mount of the current directory).
    #[arg(long = "in", value_name = "PATH", conflicts_with = "volume")]
    pub path: Option<PathBuf>,
    /// The volume by name (in the lake given by --lake).
    #[arg(long)]
    pub volume: Option<String>,
    /// At most this many results.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

struct Target {
    lake: Lake,
    volume: String,
    /// The mount root, when found from a path.
    mount: Option<PathBuf>,
    /// The path given, relative to the mount root ("" = all of it).
    rel: String,
}

fn target(lake_dir: &Path, path: Option<&Path>, volume: Option<&str>) -> Result<Target> {
    if let Some(v) = volume {
        if !lakefs::volume::valid_name(v) {
            bail!("invalid volume name '{v}': use letters, digits, - and _");
        }
        let lake = Lake::open(lake_dir).with_context(|| format!("opening the lake at {}", lake_dir.display()))?;
        if lake.get_ref(&format!("{v}/main"))?.is_none() {
            bail!("the lake at {} has no volume '{v}' (no ref {v}/main)", lake_dir.display());
        }
        return Ok(Target { lake, volume: v.to_owned(), mount: None, rel: String::new() });
    }
    let path = match path {
        Some(p) => p.to_owned(),
        None => std::env::current_dir().context("finding the current directory")?,
    };
    let loc = locate(&path).with_context(|| format!("looking for the lakefs mount of {}", path.display()))?.with_context(|| {
        format!(
            "{} is not inside a lakefs mount (no .lake/info above it); give a path in one, or --volume NAME (with --lake)",
            path.display()
        )
    })?;
    let lake = Lake::open(&loc.info.lake).with_context(|| format!("opening the lake at {}", loc.info.lake.display()))?;
    Ok(Target { lake, volume: loc.info.volume, mount: Some(loc.root), rel: loc.rel })
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub fn view(c: &ViewCmd, lake_dir: &Path, json: bool) -> Result<()> {
    let at = match c {
        ViewCmd::Create { at, .. }
        | ViewCmd::List { at }
        | ViewCmd::Show { at, .. }
        | ViewCmd::Delete { at, .. }
        | ViewCmd::Reindex { at, .. } => at,
    };
    let t = target(lake_dir, at.path.as_deref(), at.volume.as_deref())?;
    let dir_of = |name: &str| t.mount.as_ref().map(|m| m.join("views").join(name).display().to_string());
    match c {
        ViewCmd::Create { name, query, replace, .. } => {
            let n = views::create(&t.lake, &t.volume, name, query, *replace)
                .with_context(|| format!("saving view '{name}' of volume '{}'", t.volume))?;
            if json {
                print_json(&serde_json::json!({ "name": name, "volume": t.volume, "query": query, "matches": n, "dir": dir_of(name) }))?;
            } else {
                let files = if n == 1 { "file matches" } else { "files match" };
                match dir_of(name) {
                    Some(d) => println!("view '{name}' saved: {n} {files} now; see {d}/"),
                    None => println!("view '{name}' saved in volume '{}': {n} {files} now", t.volume),
                }
            }
        }
        ViewCmd::List { .. } => {
            let list = views::list(&t.lake, &t.volume)?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("volume '{}' has no views; make one with `lakectl view create NAME --query '...'`", t.volume);
            } else {
                let w = list.iter().map(|v| v.name.chars().count()).max().unwrap_or(0);
                for v in &list {
                    println!("{:w$}  {}", v.name, v.query);
                }
            }
        }
        ViewCmd::Show { name, .. } => {
            let Some(info) = views::get(&t.lake, &t.volume, name)? else {
                bail!("volume '{}' has no view '{name}' (see `lakectl view list`)", t.volume);
            };
            let entries = catalog::view_entries(&t.lake, &t.volume, name)?.unwrap_or_default();
            if json {
                let e: Vec<_> = entries.iter().map(|e| serde_json::json!({ "name": e.name, "path": e.path })).collect();
                print_json(
                    &serde_json::json!({ "name": info.name, "query": info.query, "created": info.created, "dir": dir_of(name), "entries": e }),
                )?;
            } else {
                println!("view {name}: {}", info.query);
                println!("{} {}", entries.len(), if entries.len() == 1 { "file" } else { "files" });
                let w = entries.iter().map(|e| e.name.chars().count()).max().unwrap_or(0);
                for e in &entries {
                    println!("  {:w$} -> {}", e.name, e.path);
                }
            }
        }
        ViewCmd::Delete { name, .. } => {
            if !views::delete(&t.lake, &t.volume, name)? {
                bail!("volume '{}' has no view '{name}' (see `lakectl view list`)", t.volume);
            }
            if json {
                print_json(&serde_json::json!({ "deleted": name, "volume": t.volume }))?;
            } else {
                println!("view '{name}' deleted");
            }
        }
        ViewCmd::Reindex { full, .. } => {
            let head = t.lake.get_ref(&format!("{}/main", t.volume))?;
            let Some(head) = head else { bail!("volume '{}' has no commits yet: nothing to index", t.volume) };
            let tree = t.lake.read_commit(&head)?.tree;
            // Zones decide what the catalog covers; they are mapped onto the mount point
            // (/home when the volume was named rather than found through its mount).
            let mountpoint = t.mount.clone().unwrap_or_else(|| PathBuf::from("/home"));
            let vol = Volume::open(t.lake.root(), &t.volume, &mountpoint)
                .with_context(|| format!("opening volume '{}' for its zones", t.volume))?;
            let zones = vol.zones();
            let start = std::time::Instant::now();
            let indexed = |p: &str| zones.zone(p) == lakefs::zones::Zone::Lake;
            let s = if *full {
                catalog::index::reindex(&t.lake, &t.volume, &tree, &indexed)
            } else {
                catalog::index_commit(&t.lake, &t.volume, &tree, &indexed)
            }
            .with_context(|| format!("indexing volume '{}'", t.volume))?;
            let secs = start.elapsed().as_secs_f64();
            if json {
                print_json(&serde_json::json!({ "volume": t.volume, "commit": head.to_string(), "stats": s, "seconds": secs }))?;
            } else {
                println!(
                    "indexed volume '{}' at {}: {} files written ({} with words), {} removed in {secs:.2}s",
                    t.volume,
                    head.short(),
                    s.files,
                    s.text_files,
                    s.removed
                );
            }
        }
    }
    Ok(())
}

pub fn search(a: &SearchArgs, lake_dir: &Path, json: bool) -> Result<()> {
    let t = target(lake_dir, a.path.as_deref(), a.volume.as_deref())?;
    let words = a.text.join(" ");
    // Results under the given directory only: ask for more, then keep those.
    let prefix = if t.rel.is_empty() { String::new() } else { format!("{}/", t.rel) };
    let ask = if prefix.is_empty() { a.limit } else { usize::MAX >> 1 };
    let hits: Vec<fts::Hit> = fts::search(&t.lake, &t.volume, &words, ask)
        .with_context(|| format!("searching volume '{}'", t.volume))?
        .into_iter()
        .filter(|h| prefix.is_empty() || h.path.starts_with(&prefix) || h.path == t.rel)
        .take(a.limit)
        .collect();
    if json {
        return print_json(&hits);
    }
    if hits.is_empty() {
        eprintln!("no text file in volume '{}' contains: {words}", t.volume);
        return Ok(());
    }
    for h in &hits {
        let shown = match &t.mount {
            Some(m) => m.join(&h.path).display().to_string(),
            None => h.path.clone(),
        };
        println!("{shown}  (rank {:.2})", h.rank);
        println!("    {}", h.snippet.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    Ok(())
}
