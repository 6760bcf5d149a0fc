//! Saved-query views and full-text search over a lakefs mount's catalog
//! (`lakectl view`, `lakectl search`). The volume is found from a path in its
//! mount (walking up to `.lake/info`), or named with --volume in the --lake lake.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use lake_catalog as catalog;
use lake_catalog::{fts, views};
use lake_volume::{control, locate, Located, Volume};
use lakefs::names;
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

/// The catalog is asked through the mount's control file (the daemon answers as the
/// caller, with what it may read), or, with --volume, read from the lake directly
/// (whoever may read the lake's files may read everything in it).
enum Target {
    Mount { loc: Located },
    Lake { lake: Lake, volume: String },
}

impl Target {
    fn volume(&self) -> &str {
        match self {
            Target::Mount { loc } => &loc.info.volume,
            Target::Lake { volume, .. } => volume,
        }
    }

    /// A request to the mount's daemon (answered as this process's user).
    fn ask(loc: &Located, req: serde_json::Value) -> Result<serde_json::Value> {
        control::request(&loc.root, &req).with_context(|| format!("asking the daemon of {}", loc.root.display()))
    }
}

fn open_lake(lake_dir: &Path) -> Result<Lake> {
    Lake::open(lake_dir).map_err(|e| {
        let denied = matches!(&e, lakefs::Error::PermissionDenied { .. })
            || matches!(&e, lakefs::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied);
        let e = anyhow::Error::new(e).context(format!("opening the lake at {}", lake_dir.display()));
        if denied {
            e.context("the lake is readable by root only: run the command inside the mount (for example `cd /home; lakectl search WORDS`), where the daemon answers with what you may read")
        } else {
            e
        }
    })
}

fn target(lake_dir: &Path, path: Option<&Path>, volume: Option<&str>) -> Result<Target> {
    if let Some(v) = volume {
        if !lake_volume::valid_name(v) {
            bail!("invalid volume name '{v}': use letters, digits, - and _");
        }
        let lake = open_lake(lake_dir)?;
        if lake.get_ref(&format!("{v}/main"))?.is_none() {
            bail!("the lake at {} has no volume '{v}' (no ref {v}/main)", lake_dir.display());
        }
        return Ok(Target::Lake { lake, volume: v.to_owned() });
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
    Ok(Target::Mount { loc })
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// A path in a daemon's reply (JSON form, `lakefs::names::to_json`) in the catalog's
/// text form (escaped), as `--volume` answers have it.
fn daemon_path(v: &serde_json::Value) -> Result<String> {
    Ok(names::escape(&names::from_json(v).context("a path in the daemon's reply")?))
}

fn no_view(volume: &str, name: &str) -> anyhow::Error {
    anyhow::anyhow!("volume '{volume}' has no view '{name}' (see `lakectl view list`)")
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
    let volume = t.volume().to_owned();
    let dir_of = |name: &str| match &t {
        Target::Mount { loc } => Some(loc.root.join("views").join(name).display().to_string()),
        Target::Lake { .. } => None,
    };
    match c {
        ViewCmd::Create { name, query, replace, .. } => {
            let n = match &t {
                Target::Mount { loc } => {
                    Target::ask(loc, serde_json::json!({"op": "view-create", "name": name, "query": query, "replace": replace}))?["matches"]
                        .as_u64()
                        .unwrap_or(0) as usize
                }
                // Who may write the lake directly is root (or owns the lake): the view is root's.
                Target::Lake { lake, volume } => views::create(lake, volume, name, query, *replace, 0)?,
            };
            let n = Ok::<_, anyhow::Error>(n).with_context(|| format!("saving view '{name}' of volume '{volume}'"))?;
            if json {
                print_json(&serde_json::json!({ "name": name, "volume": volume, "query": query, "matches": n, "dir": dir_of(name) }))?;
            } else {
                let files = if n == 1 { "file matches" } else { "files match" };
                match dir_of(name) {
                    Some(d) => println!("view '{name}' saved: {n} {files} now; see {d}/"),
                    None => println!("view '{name}' saved in volume '{volume}': {n} {files} now"),
                }
            }
        }
        ViewCmd::List { .. } => {
            let list: Vec<views::ViewInfo> = match &t {
                Target::Mount { loc } => serde_json::from_value(Target::ask(loc, serde_json::json!({"op": "view-list"}))?["views"].take())
                    .context("the daemon's list of views")?,
                Target::Lake { lake, volume } => views::list(lake, volume)?,
            };
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("volume '{volume}' has no views; make one with `lakectl view create NAME --query '...'`");
            } else {
                let w = list.iter().map(|v| v.name.chars().count()).max().unwrap_or(0);
                for v in &list {
                    println!("{:w$}  {}", v.name, v.query);
                }
            }
        }
        ViewCmd::Show { name, .. } => {
            let (info, entries): (views::ViewInfo, Vec<views::Entry>) = match &t {
                Target::Mount { loc } => {
                    let mut r = Target::ask(loc, serde_json::json!({"op": "view-show", "name": name}))?;
                    if r["view"].is_null() {
                        return Err(no_view(&volume, name));
                    }
                    let info = serde_json::from_value(r["view"].take()).context("the daemon's view")?;
                    let entries = r["entries"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|e| {
                            Ok(views::Entry { name: e["name"].as_str().unwrap_or_default().to_owned(), path: daemon_path(&e["path"])? })
                        })
                        .collect::<Result<_>>()?;
                    (info, entries)
                }
                Target::Lake { lake, volume } => {
                    let info = views::get(lake, volume, name)?.ok_or_else(|| no_view(volume, name))?;
                    (info, catalog::view_entries(lake, volume, name)?.unwrap_or_default())
                }
            };
            if json {
                let e: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({ "name": e.name, "path": names::to_json(&names::from_escaped(&e.path)) }))
                    .collect();
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
            let deleted = match &t {
                Target::Mount { loc } => {
                    Target::ask(loc, serde_json::json!({"op": "view-delete", "name": name}))?["deleted"].as_bool().unwrap_or(false)
                }
                Target::Lake { lake, volume } => views::delete(lake, volume, name)?,
            };
            if !deleted {
                return Err(no_view(&volume, name));
            }
            if json {
                print_json(&serde_json::json!({ "deleted": name, "volume": volume }))?;
            } else {
                println!("view '{name}' deleted");
            }
        }
        ViewCmd::Reindex { full, .. } => {
            // Indexing writes the lake: done directly, by who may write it (root).
            let opened;
            let (lake, mountpoint) = match &t {
                Target::Mount { loc } => {
                    opened = open_lake(&loc.info.lake)?;
                    (&opened, loc.root.clone())
                }
                // Zones are mapped onto the mount point: /home when the volume was named.
                Target::Lake { lake, .. } => (lake, PathBuf::from("/home")),
            };
            let head = lake.get_ref(&format!("{volume}/main"))?;
            let Some(head) = head else { bail!("volume '{volume}' has no commits yet: nothing to index") };
            let tree = lake.read_commit(&head)?.tree;
            let vol =
                Volume::open(lake.root(), &volume, &mountpoint).with_context(|| format!("opening volume '{volume}' for its zones"))?;
            let zones = vol.zones();
            let start = std::time::Instant::now();
            let indexed = |p: &[u8]| zones.zone(p) == lake_volume::zones::Zone::Lake;
            let s = if *full {
                catalog::reindex(lake, &volume, &tree, &indexed)
            } else {
                catalog::index_commit(lake, &volume, &tree, &indexed)
            }
            .with_context(|| format!("indexing volume '{volume}'"))?;
            let secs = start.elapsed().as_secs_f64();
            if json {
                print_json(&serde_json::json!({ "volume": volume, "commit": head.to_string(), "stats": s, "seconds": secs }))?;
            } else {
                println!(
                    "indexed volume '{volume}' at {}: {} files written ({} with words), {} removed in {secs:.2}s",
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
    let volume = t.volume().to_owned();
    let hits: Vec<fts::Hit> = match &t {
        // The daemon keeps to the directory given, and to what the caller may read.
        Target::Mount { loc } => {
            let r =
                Target::ask(loc, serde_json::json!({"op": "search", "words": words, "limit": a.limit, "under": names::to_json(&loc.rel)}))
                    .with_context(|| format!("searching volume '{volume}'"))?;
            r["hits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    Ok(fts::Hit {
                        path: daemon_path(&h["path"])?,
                        snippet: h["snippet"].as_str().unwrap_or_default().to_owned(),
                        rank: h["rank"].as_f64().unwrap_or(0.0),
                    })
                })
                .collect::<Result<_>>()?
        }
        Target::Lake { lake, volume } => {
            fts::search(lake, volume, &words, a.limit).with_context(|| format!("searching volume '{volume}'"))?
        }
    };
    if json {
        // Paths as lakectl writes them in JSON everywhere (`lakefs::names::to_json`).
        let v: Vec<_> = hits
            .iter()
            .map(|h| serde_json::json!({ "path": names::to_json(&names::from_escaped(&h.path)), "snippet": h.snippet, "rank": h.rank }))
            .collect();
        return print_json(&v);
    }
    if hits.is_empty() {
        eprintln!("no text file in volume '{volume}' contains: {words}");
        return Ok(());
    }
    for h in &hits {
        // Catalog paths are escaped already (`lakefs::names`).
        let shown = match &t {
            Target::Mount { loc } => format!("{}/{}", names::escape(loc.root.as_os_str().as_bytes()), h.path),
            Target::Lake { .. } => h.path.clone(),
        };
        println!("{shown}  (rank {:.2})", h.rank);
        println!("    {}", h.snippet.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    Ok(())
}
