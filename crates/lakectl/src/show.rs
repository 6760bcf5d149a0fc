//! Printing: text for people, JSON for scripts.

use std::io::Write;

use anyhow::Result;
use lakefs::tree::{Content, Node};
use lakefs::{Lake, ObjectId};

pub fn bytes(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

pub fn time(t: i64) -> String {
    match jiff::Timestamp::from_second(t) {
        Ok(ts) => ts.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %z").to_string(),
        Err(_) => t.to_string(),
    }
}

fn commit_json(id: ObjectId, c: &lakefs::commit::Commit) -> serde_json::Value {
    serde_json::json!({
        "id": id, "tree": c.tree, "parents": c.parents, "scope": c.scope, "time": c.time,
        "time_iso": jiff::Timestamp::from_second(c.time).map(|t| t.to_string()).unwrap_or_default(),
        "trigger": c.trigger, "message": c.message,
        "extra": c.extra.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
    })
}

/// History from `start`, newest first. With `packages` (the POSIX zone), each
/// commit also shows the package changes it made and the package manager's
/// command line.
pub fn log(lake: &Lake, start: ObjectId, max: usize, json: bool, packages: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut cur = Some(start);
    let mut n = 0;
    let mut all = Vec::new();
    while let (Some(id), true) = (cur, n < max) {
        let c = lake.read_commit(&id)?;
        let pkgs = match (packages, c.parents.first()) {
            (true, Some(p)) => Some(lake_posix::dpkg::diff_trees(lake, &lake.read_commit(p)?.tree, &c.tree)?),
            _ => None,
        };
        if json {
            let mut v = commit_json(id, &c);
            if let Some(p) = &pkgs {
                v["packages"] = serde_json::to_value(p)?;
            }
            all.push(v);
        } else {
            writeln!(out, "commit {id}")?;
            writeln!(out, "Date:    {}", time(c.time))?;
            let phase = lake_posix::posix::extra(&c, "phase").map(|p| format!(" ({p})")).unwrap_or_default();
            writeln!(out, "Scope:   {}   Trigger: {}{phase}", c.scope, c.trigger)?;
            if let Some(cmd) = lake_posix::posix::extra(&c, "cmdline") {
                writeln!(out, "Command: {cmd}")?;
            }
            if let Some(p) = pkgs.as_deref().filter(|p| !p.is_empty()) {
                writeln!(out, "Packages: {}", lake_posix::dpkg::summary(p))?;
            }
            writeln!(out, "\n    {}\n", if c.message.is_empty() { "(no message)" } else { &c.message })?;
        }
        cur = c.parents.first().copied();
        n += 1;
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}

pub fn commit(lake: &Lake, id: ObjectId, json: bool) -> Result<()> {
    let c = lake.read_commit(&id)?;
    let changes = match c.parents.first() {
        Some(p) => lakefs::diff::diff_bytes(lake, &lake.read_commit(p)?.tree, &c.tree)?,
        None => {
            let mut v = Vec::new();
            lakefs::diff::trees_bytes(lake, None, Some(&c.tree), b"", &mut v)?;
            v
        }
    };
    if json {
        let mut v = commit_json(id, &c);
        v["changes"] = serde_json::to_value(&changes)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("commit  {id}\ntree    {}", c.tree);
    for p in &c.parents {
        println!("parent  {p}");
    }
    println!("date    {}\nscope   {}\ntrigger {}", time(c.time), c.scope, c.trigger);
    for (k, v) in &c.extra {
        println!("{k:<7} {v}");
    }
    println!("\n    {}\n", c.message);
    let count = |k| changes.iter().filter(|c| c.kind == k).count();
    use lakefs::diff::ChangeKind::*;
    println!("{} added, {} deleted, {} modified, {} metadata only", count(Added), count(Removed), count(Modified), count(Metadata));
    for ch in changes.iter().take(200) {
        println!("{} {}", ch.kind.letter(), lakefs::names::escape(&ch.path));
    }
    if changes.len() > 200 {
        println!("... and {} more (lakectl diff shows all)", changes.len() - 200);
    }
    Ok(())
}

fn mode_string(node: &Node) -> String {
    let t = match node {
        Node::Dir { .. } => 'd',
        Node::Symlink { .. } => 'l',
        Node::CharDev { .. } => 'c',
        Node::BlockDev { .. } => 'b',
        Node::Fifo { .. } => 'p',
        Node::Socket { .. } => 's',
        Node::Hardlink { .. } => 'h',
        Node::File { .. } => '-',
    };
    let m = node.meta().map_or(0, |m| m.mode);
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if m & (0o400 >> i) != 0 { c } else { '-' });
    }
    s
}

fn ls_entry(name: &[u8], node: &Node, long: bool) -> (String, serde_json::Value) {
    use lakefs::names::{escape, to_json};
    let meta = node.meta();
    let (size, id, extra) = match node {
        Node::File { size, content, .. } => (
            *size,
            Some(content.id()),
            match content {
                Content::Whole(_) => "",
                Content::Chunked(_) => " (chunked)",
            },
        ),
        Node::Dir { tree, .. } => (0, Some(*tree), ""),
        _ => (0, None, ""),
    };
    let target = match node {
        Node::Symlink { target, .. } | Node::Hardlink { target } => Some(target),
        _ => None,
    };
    let json = serde_json::json!({
        "name": to_json(name), "kind": node.kind_name(), "mode": meta.map(|m| format!("{:04o}", m.mode)),
        "uid": meta.map(|m| m.uid), "gid": meta.map(|m| m.gid), "mtime": meta.map(|m| m.mtime),
        "size": size, "id": id, "target": target.map(|t| to_json(t)),
        "rdev": match node { Node::CharDev { rdev, .. } | Node::BlockDev { rdev, .. } => Some(*rdev), _ => None },
        "xattrs": meta.map(|m| m.xattrs.iter().map(|(k, _)| String::from_utf8_lossy(k).into_owned()).collect::<Vec<_>>()),
    });
    let text = if long {
        format!(
            "{} {:>5} {:>5} {:>10} {} {}{}{}",
            mode_string(node),
            meta.map_or(0, |m| m.uid),
            meta.map_or(0, |m| m.gid),
            size,
            meta.map_or_else(|| "-".to_string(), |m| time(m.mtime)),
            escape(name),
            target.map(|t| format!(" -> {}", escape(t))).unwrap_or_default(),
            extra
        )
    } else {
        escape(name)
    };
    (text, json)
}

/// Lists `path` (bytes: names need not be UTF-8; printed escaped).
pub fn ls(lake: &Lake, path: &[u8], node: &Node, long: bool, recursive: bool, json: bool) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut all = Vec::new();
    let mut top = path;
    while let [rest @ .., b'/'] = top {
        top = rest;
    }
    let mut stack = vec![(top.to_vec(), node.clone())];
    let single = !matches!(node, Node::Dir { .. });
    while let Some((dir, node)) = stack.pop() {
        let Node::Dir { tree, .. } = node else {
            let (text, j) = ls_entry(&dir, &node, long);
            if json {
                all.push(j)
            } else {
                writeln!(out, "{text}")?
            }
            continue;
        };
        let t = lake.read_tree(&tree)?;
        if recursive && !json {
            writeln!(out, "{}:", if dir.is_empty() { "/".to_owned() } else { lakefs::names::escape(&dir) })?;
        }
        for e in &t.entries {
            let mut full = dir.clone();
            full.push(b'/');
            full.extend_from_slice(&e.name);
            let (text, mut j) = ls_entry(if recursive || json { &full } else { &e.name }, &e.node, long);
            if json {
                j["path"] = lakefs::names::to_json(&full);
                all.push(j);
            } else {
                writeln!(out, "{text}")?;
            }
        }
        if recursive {
            for e in t.entries.iter().rev() {
                if let Node::Dir { .. } = e.node {
                    let mut sub = dir.clone();
                    sub.push(b'/');
                    sub.extend_from_slice(&e.name);
                    stack.push((sub, e.node.clone()));
                }
            }
        }
        if single {
            break;
        }
    }
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
    }
    Ok(())
}

pub fn verify(r: &lakefs::verify::Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "checked {} packs, {} packed objects ({}), {} loose objects, {} commits",
        r.packs,
        r.objects,
        bytes(r.bytes),
        r.loose,
        r.commits
    );
    if r.clean() {
        println!("lake is clean");
        return Ok(());
    }
    for p in &r.problems {
        println!("{p}");
    }
    println!("{} problem(s) found", r.problems.len());
    Ok(())
}

pub fn stats(lake: &Lake, json: bool) -> Result<()> {
    let db = lake.db();
    let n = |sql: &str| db.count(sql);
    let packs = db.pack_names()?;
    let pack_bytes: u64 = packs.iter().map(|p| p.1).sum();
    let v = serde_json::json!({
        "lake": lake.root(),
        "uuid": lake.superblock().uuid_string(),
        "format_version": lake.superblock().version,
        "chunker": lake.superblock().chunker,
        "packs": packs.len(),
        "pack_bytes": pack_bytes,
        "objects": n("SELECT count(*) FROM objects")?,
        "data_objects": n("SELECT count(*) FROM objects WHERE kind=1")?,
        "raw_bytes": n("SELECT coalesce(sum(raw_len),0) FROM objects")?,
        "stored_bytes": n("SELECT coalesce(sum(stored_len),0) FROM objects")?,
        "loose_objects": n("SELECT count(*) FROM loose")?,
        "loose_bytes": n("SELECT coalesce(sum(size),0) FROM loose")?,
        "commits": n("SELECT count(*) FROM commits")?,
        "refs": n("SELECT count(*) FROM refs")?,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let raw = v["raw_bytes"].as_i64().unwrap_or(0) as u64;
    let stored = v["stored_bytes"].as_i64().unwrap_or(0) as u64;
    println!("lake        {} ({})", lake.root().display(), v["uuid"].as_str().unwrap_or(""));
    println!("format      v{}, chunker FastCDC {:?}", lake.superblock().version, lake.superblock().chunker);
    println!("packs       {} files, {}", packs.len(), bytes(pack_bytes));
    println!(
        "objects     {} ({} data), {} raw -> {} stored ({:.2}x)",
        v["objects"],
        v["data_objects"],
        bytes(raw),
        bytes(stored),
        raw as f64 / stored.max(1) as f64
    );
    println!("loose       {} objects, {}", v["loose_objects"], bytes(v["loose_bytes"].as_i64().unwrap_or(0) as u64));
    println!("history     {} commits, {} refs", v["commits"], v["refs"]);
    Ok(())
}

pub fn status(lake: &Lake, json: bool) -> Result<()> {
    let gens = lake_posix::generation::list(lake)?;
    let default = lake_posix::generation::default(lake)?;
    let booted: Option<u32> = std::fs::read_to_string(lake_posix::generation::BOOTED_FILE).ok().and_then(|s| s.trim().parse().ok());
    if json {
        let v = serde_json::json!({
            "lake": lake.root(),
            "uuid": lake.superblock().uuid_string(),
            "generation": booted.or(default),
            "booted_generation": booted,
            "default_generation": default,
            "generations": gens,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("lake {} ({})", lake.root().display(), lake.superblock().uuid_string());
    match booted {
        Some(b) => println!("booted generation {b}"),
        None => println!("not booted from this lake"),
    }
    if gens.is_empty() {
        println!("no generations (install one with lake-installer)");
    }
    for g in &gens {
        println!(
            "{} generation {:>3}  {}  {}{}",
            if Some(g.number) == booted { "*" } else { " " },
            g.number,
            time(g.created),
            g.commit.short(),
            match (Some(g.number) == default, g.pinned) {
                (true, true) => "  (default, pinned)",
                (true, false) => "  (default)",
                (false, true) => "  (pinned)",
                _ => "",
            }
        );
    }
    Ok(())
}
