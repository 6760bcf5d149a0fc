//! Generations: numbered, bootable commits of the POSIX zone. Each one has a
//! checkout under `deploy/<N>/root` (a hard-link farm into the loose objects, so
//! the content is stored once), the overlay's `upper/` and `work/` beside it, and
//! a hot-cache view `deploy/<N>/hotcache` of its tree. The initramfs mounts
//! overlay(lower = root, upper) on the new root. The default generation (what
//! boots without `lake.gen=`) and the list live in the metadata database.
//!
//! Retention: pruning keeps the newest `keep_generations` (info key, default 3)
//! plus pinned ones, the default and the booted one. Boot loader entries are not
//! this crate's business (lake-boot writes them and calls [`remove`]).

use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use lakefs::error::{Error, IoContext, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::progress::Progress;

pub use lakefs::lake::DEPLOY_DIR;
/// Where the early-boot program records the generation it assembled the root
/// from (`/run` is carried into the booted system).
pub const BOOTED_FILE: &str = "/run/lakefs/booted-generation";
/// The ref that holds the POSIX zone's history.
pub const POSIX_REF: &str = "posix/main";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Generation {
    pub number: u32,
    pub commit: ObjectId,
    pub created: i64,
    pub pinned: bool,
}

pub fn dir(lake_root: &Path, n: u32) -> PathBuf {
    lake_root.join(DEPLOY_DIR).join(n.to_string())
}
pub fn root_dir(lake_root: &Path, n: u32) -> PathBuf {
    dir(lake_root, n).join("root")
}
pub fn upper_dir(lake_root: &Path, n: u32) -> PathBuf {
    dir(lake_root, n).join("upper")
}
pub fn work_dir(lake_root: &Path, n: u32) -> PathBuf {
    dir(lake_root, n).join("work")
}
pub fn hotcache_path(lake_root: &Path, n: u32) -> PathBuf {
    dir(lake_root, n).join("hotcache")
}

fn row(r: &rusqlite::Row) -> rusqlite::Result<Generation> {
    let c: Vec<u8> = r.get(1)?;
    Ok(Generation {
        number: r.get(0)?,
        commit: ObjectId::from_slice(&c).ok_or(rusqlite::Error::InvalidQuery)?,
        created: r.get(2)?,
        pinned: r.get(3)?,
    })
}

pub fn list(lake: &Lake) -> Result<Vec<Generation>> {
    let db = lake.db();
    let mut s = db.conn.prepare("SELECT number, commit_id, created, pinned FROM generations ORDER BY number").map_err(|e| db.err(e))?;
    let rows = s.query_map([], row).map_err(|e| db.err(e))?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| db.err(e))
}

pub fn get(lake: &Lake, n: u32) -> Result<Option<Generation>> {
    let db = lake.db();
    db.conn
        .query_row("SELECT number, commit_id, created, pinned FROM generations WHERE number=?1", params![n], row)
        .optional()
        .map_err(|e| db.err(e))
}

/// The generation that boots when the kernel command line names none.
pub fn default(lake: &Lake) -> Result<Option<u32>> {
    let db = lake.db();
    let v: Option<String> =
        db.conn.query_row("SELECT value FROM info WHERE key='default_generation'", [], |r| r.get(0)).optional().map_err(|e| db.err(e))?;
    Ok(v.and_then(|v| v.parse().ok()))
}

pub fn set_default(lake: &Lake, n: u32) -> Result<()> {
    let _lock = lake.lock_for_cleanup()?;
    if get(lake, n)?.is_none() {
        return Err(no_such(n));
    }
    let db = lake.db();
    db.conn
        .execute("INSERT OR REPLACE INTO info(key, value) VALUES('default_generation', ?1)", params![n.to_string()])
        .map_err(|e| db.err(e))?;
    Ok(())
}

/// Deploys `commit` as the next generation: hard-link checkout (materialising
/// loose objects as needed), overlay dirs, hot-cache view, then one transaction
/// that records it (and makes it the default when it is the first). The checkout
/// is built in `deploy/.staging-*` and renamed into place, so a crash never
/// leaves a half-deployed generation that a bootloader entry could point at.
/// (Not under `tmp/`: the checkout's own write session empties that.)
pub fn deploy(lake: &Lake, commit: ObjectId, pinned: bool, progress: &dyn Progress) -> Result<Generation> {
    let c = lake.read_commit(&commit)?;
    let n = list(lake)?.last().map_or(1, |g| g.number + 1);
    let deploy_dir = lake.root().join(DEPLOY_DIR);
    lakefs::privacy::create_dir_all(&deploy_dir)?;
    for e in std::fs::read_dir(&deploy_dir).at(&deploy_dir)? {
        let p = e.at(&deploy_dir)?.path();
        if p.file_name().is_some_and(|f| f.to_string_lossy().starts_with(".staging-")) {
            std::fs::remove_dir_all(&p).at(&p)?;
        }
    }
    let staging = deploy_dir.join(format!(".staging-{n}-{}", lakefs::util::random_hex(4)));
    lakefs::privacy::create_dir(&staging)?;
    let root = staging.join("root");
    lakefs::checkout::checkout(lake, &c.tree, &c.root, &root, lakefs::checkout::CheckoutOptions { hardlink: true }, progress)?;
    for d in ["upper", "work"] {
        std::fs::create_dir(staging.join(d)).at(staging.join(d))?;
    }
    crate::hotcache::write(lake, &c.tree, &staging.join("hotcache"))?;
    let _lock = lake.lock_for_write()?;
    let final_dir = dir(lake.root(), n);
    if final_dir.exists() {
        // Left by an interrupted deploy that never recorded it: not a generation.
        std::fs::remove_dir_all(&final_dir).at(&final_dir)?;
    }
    std::fs::rename(&staging, &final_dir).at(&final_dir)?;
    lake.syncfs()?;
    let (now, _) = lakefs::util::now();
    let mut db = lake.db();
    let dbpath = db.path().to_owned();
    let err = |e| lakefs::meta::db_error(&dbpath, e);
    let tx = db.conn.transaction().map_err(err)?;
    tx.execute(
        "INSERT INTO generations(number, commit_id, created, pinned) VALUES(?1, ?2, ?3, ?4)",
        params![n, commit.as_bytes(), now, pinned],
    )
    .map_err(err)?;
    if pinned {
        tx.execute("INSERT OR REPLACE INTO pins(id, reason) VALUES(?1, ?2)", params![commit.as_bytes(), format!("generation {n}")])
            .map_err(err)?;
    }
    tx.execute("INSERT OR IGNORE INTO info(key, value) VALUES('default_generation', ?1)", params![n.to_string()]).map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(Generation { number: n, commit, created: now, pinned })
}

/// Info key holding how many generations pruning keeps (the newest ones).
pub const KEEP_KEY: &str = "keep_generations";
pub const DEFAULT_KEEP: u32 = 3;

/// How many of the newest generations pruning keeps.
pub fn keep(lake: &Lake) -> Result<u32> {
    let db = lake.db();
    let v: Option<String> =
        db.conn.query_row("SELECT value FROM info WHERE key=?1", params![KEEP_KEY], |r| r.get(0)).optional().map_err(|e| db.err(e))?;
    Ok(v.and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(DEFAULT_KEEP))
}

pub fn set_keep(lake: &Lake, n: u32) -> Result<()> {
    if n == 0 {
        return Err(Error::Invalid("keep at least 1 generation (the one that boots)".into()));
    }
    let _lock = lake.lock_for_cleanup()?;
    let db = lake.db();
    db.conn.execute("INSERT OR REPLACE INTO info(key, value) VALUES(?1, ?2)", params![KEEP_KEY, n.to_string()]).map_err(|e| db.err(e))?;
    Ok(())
}

fn must_get(lake: &Lake, n: u32) -> Result<Generation> {
    get(lake, n)?.ok_or_else(|| no_such(n))
}

/// `generation N does not exist`, typed so the CLI can say where to list them.
pub fn no_such(n: u32) -> Error {
    Error::NotFound { what: "generation", name: n.to_string() }
}

/// Drops the gc pin of `commit` that generations hold, unless another pinned
/// generation still uses the commit. Pins set for other reasons are left alone.
fn release_pin(tx: &rusqlite::Transaction, commit: &ObjectId) -> rusqlite::Result<usize> {
    tx.execute(
        "DELETE FROM pins WHERE id=?1 AND reason LIKE 'generation %' \
         AND NOT EXISTS (SELECT 1 FROM generations WHERE commit_id=?1 AND pinned=1)",
        params![commit.as_bytes()],
    )
}

/// Pins generation `n`: pruning never removes it and gc keeps its commit.
pub fn pin(lake: &Lake, n: u32) -> Result<Generation> {
    set_pinned(lake, n, true)
}

/// Unpins generation `n`; it becomes subject to pruning again.
pub fn unpin(lake: &Lake, n: u32) -> Result<Generation> {
    set_pinned(lake, n, false)
}

/// The flag and the gc pin change in one transaction. Unpinning releases the gc
/// pin only when no other pinned generation shares the commit.
fn set_pinned(lake: &Lake, n: u32, pinned: bool) -> Result<Generation> {
    let _lock = lake.lock_for_cleanup()?;
    let g = must_get(lake, n)?;
    let mut db = lake.db();
    let dbpath = db.path().to_owned();
    let err = |e| lakefs::meta::db_error(&dbpath, e);
    let tx = db.conn.transaction().map_err(err)?;
    tx.execute("UPDATE generations SET pinned=?2 WHERE number=?1", params![n, pinned]).map_err(err)?;
    if pinned {
        tx.execute("INSERT OR IGNORE INTO pins(id, reason) VALUES(?1, ?2)", params![g.commit.as_bytes(), format!("generation {n}")])
            .map_err(err)?;
    } else {
        release_pin(&tx, &g.commit).map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(Generation { pinned, ..g })
}

/// The generation the running system was booted from, as the early-boot
/// program recorded it; `None` when this system did not boot from a lake.
pub fn booted() -> Option<u32> {
    booted_from(Path::new(BOOTED_FILE))
}

pub fn booted_from(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse().ok())
}

/// Generation `n` if it may be removed: it exists, and it is neither the
/// default (what boots without `lake.gen=`) nor `booted` (its checkout is the
/// running root's lower layer).
pub fn check_removable(lake: &Lake, n: u32, booted: Option<u32>) -> Result<Generation> {
    let g = must_get(lake, n)?;
    if booted == Some(n) {
        return Err(Error::Invalid(format!(
            "generation {n} is the running system's root (booted from it); boot another generation before removing it"
        )));
    }
    if default(lake)? == Some(n) {
        return Err(Error::Invalid(format!(
            "generation {n} is the default generation (it boots when no lake.gen= is given); deploy another generation first"
        )));
    }
    Ok(g)
}

/// Removes generation `n`: its record and pin, then its directory (checkout,
/// overlay upper and work dirs, hot-cache view). Refuses the default and the
/// booted generation. Boot loader entries are the caller's business and
/// should go first, so nothing points at a missing checkout.
///
/// The record goes before the directory: a crash in between leaves an unused
/// directory, never a listed generation without its checkout.
pub fn remove(lake: &Lake, n: u32) -> Result<Generation> {
    let _lock = lake.lock_for_cleanup()?;
    let g = check_removable(lake, n, booted())?;
    {
        let mut db = lake.db();
        let dbpath = db.path().to_owned();
        let err = |e| lakefs::meta::db_error(&dbpath, e);
        let tx = db.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM generations WHERE number=?1", params![n]).map_err(err)?;
        release_pin(&tx, &g.commit).map_err(err)?;
        tx.commit().map_err(err)?;
    }
    let d = dir(lake.root(), n);
    if d.exists() {
        // Renamed first so a half-deleted tree is never at deploy/<N>; an
        // interrupted removal is finished by the next deploy's staging cleanup.
        let doomed = lake.root().join(DEPLOY_DIR).join(format!(".staging-removed-{n}-{}", lakefs::util::random_hex(4)));
        std::fs::rename(&d, &doomed).at(&d)?;
        std::fs::remove_dir_all(&doomed).at(&doomed)?;
    }
    Ok(g)
}

/// Generations that pruning to `keep` would remove, oldest first: all but the
/// newest `keep`, except pinned ones, the default, the booted one and `protect`.
pub fn prune_candidates(lake: &Lake, keep: u32, protect: &[u32]) -> Result<Vec<u32>> {
    prune_candidates_with(lake, keep, protect, booted())
}

pub fn prune_candidates_with(lake: &Lake, keep: u32, protect: &[u32], booted: Option<u32>) -> Result<Vec<u32>> {
    let gens = list(lake)?;
    let default = default(lake)?;
    let beyond = gens.len().saturating_sub(keep as usize);
    Ok(gens[..beyond]
        .iter()
        .filter(|g| !g.pinned && Some(g.number) != default && Some(g.number) != booted && !protect.contains(&g.number))
        .map(|g| g.number)
        .collect())
}
