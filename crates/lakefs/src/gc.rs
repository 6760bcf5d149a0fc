//! Garbage collection: drop what no ref or pin reaches, and repack.
//!
//! Live records are copied (as stored, without recompressing) into new packs in
//! the order they were found; the index switches to the new packs in one
//! transaction; only then are the old packs deleted. A crash at any point leaves
//! either the old or the new packs indexed, and the others as orphans that the
//! next writer removes.

use std::collections::HashSet;

use rusqlite::params;

use crate::error::Result;
use crate::id::ObjectId;
use crate::lake::Lake;
use crate::pack::{PackWriter, Prepared};
use crate::progress::Progress;

#[derive(Debug, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub objects_kept: usize,
    pub objects_dropped: usize,
    pub loose_dropped: usize,
    pub commits_dropped: usize,
    pub packs_before: usize,
    pub packs_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub fn gc(lake: &Lake, dry_run: bool, progress: &dyn Progress) -> Result<GcReport> {
    let _lock = lake.lock_for_cleanup()?;
    progress.phase("marking", 0, 0);
    let roots = crate::reach::roots(lake, false)?;
    let mut unreadable = std::collections::HashMap::new();
    let reach = crate::reach::mark(lake, &roots, &mut unreadable)?;
    if let Some((id, why)) = unreadable.into_iter().next() {
        // A corrupt object: the binaries point at `lakectl verify`.
        return Err(crate::error::Error::CorruptObject { id, why: format!("{why}; gc stopped, nothing was deleted") });
    }
    let (locations, loose, commits, packs) = {
        let db = lake.db();
        (db.all_locations()?, db.all_loose()?, db.all_commit_ids()?, db.pack_names()?)
    };
    let mut report = GcReport { dry_run, packs_before: packs.len(), bytes_before: packs.iter().map(|p| p.1).sum(), ..Default::default() };
    let (live, dead): (Vec<_>, Vec<_>) = locations.into_iter().partition(|(id, _)| reach.objects.contains(id));
    let dead_loose: Vec<_> = loose.into_iter().filter(|(k, _, _)| !reach.loose_keys.contains(k)).collect();
    let dead_commits: Vec<ObjectId> = commits.into_iter().filter(|c| !reach.commits.contains(c)).collect();
    report.objects_kept = live.len();
    report.objects_dropped = dead.len();
    report.loose_dropped = dead_loose.len();
    report.commits_dropped = dead_commits.len();
    // Repack when something dies or the store is fragmented into many packs.
    let repack = !dead.is_empty() || packs.len() > 8;
    if dry_run {
        report.packs_after = if repack { 1 } else { packs.len() };
        report.bytes_after = report.bytes_before;
        return Ok(report);
    }
    let mut new_packs = Vec::new();
    let mut moved = Vec::new();
    if repack {
        progress.phase("repacking", live.len() as u64, live.iter().map(|l| u64::from(l.1.stored_len)).sum());
        let mut pw = PackWriter::new(&lake.root().join(crate::lake::PACK_DIR));
        let copy = (|| -> Result<()> {
            for (id, loc) in &live {
                let stored = read_stored(lake, loc)?;
                // Verify while copying: gc must never propagate damage silently.
                lake.read_at(id, loc)?;
                let rec = Prepared { id: *id, kind: loc.kind, raw_len: loc.raw_len, compressed: loc.compressed, bytes: stored.into() };
                moved.push((*id, pw.append(&rec)?));
                progress.advance(1, u64::from(loc.stored_len));
            }
            new_packs = pw.finish()?;
            Ok(())
        })();
        if let Err(e) = copy {
            pw.abandon();
            return Err(e);
        }
    }
    {
        let mut db = lake.db();
        let dbpath = db.path().to_owned();
        let dberr = |e| crate::meta::db_error(&dbpath, e);
        let tx = db.conn.transaction().map_err(dberr)?;
        (|| -> rusqlite::Result<()> {
            for (k, _, _) in &dead_loose {
                tx.execute("DELETE FROM loose WHERE key=?1", params![k.as_bytes()])?;
            }
            for c in &dead_commits {
                tx.execute("DELETE FROM commits WHERE id=?1", params![c.as_bytes()])?;
            }
            if repack {
                tx.execute("DELETE FROM objects", [])?;
                tx.execute("DELETE FROM packs", [])?;
                let (now, _) = crate::util::now();
                crate::meta::Db::insert_packs_and_objects(&tx, &new_packs, &moved, now)?;
            }
            Ok(())
        })()
        .map_err(dberr)?;
        tx.commit().map_err(dberr)?;
    }
    lake.drop_pack_handles();
    if repack {
        let keep: HashSet<&String> = new_packs.iter().map(|p| &p.0).collect();
        for (name, _) in &packs {
            if !keep.contains(name) {
                let _ = std::fs::remove_file(lake.pack_path(name));
            }
        }
        report.packs_after = new_packs.len();
        report.bytes_after = new_packs.iter().map(|p| p.1).sum();
    } else {
        report.packs_after = packs.len();
        report.bytes_after = report.bytes_before;
    }
    for (k, _, _) in &dead_loose {
        let _ = std::fs::remove_file(crate::loose::path(lake.root(), k));
    }
    progress.finish();
    Ok(report)
}

fn read_stored(lake: &Lake, loc: &crate::pack::Location) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let path = lake.pack_path(&loc.pack);
    let f = std::fs::File::open(&path).map_err(|e| crate::error::Error::io(&path, e))?;
    let mut b = vec![0u8; loc.stored_len as usize];
    f.read_exact_at(&mut b, loc.offset + crate::pack::RECORD_HEADER as u64).map_err(|e| crate::error::Error::io(&path, e))?;
    Ok(b)
}
