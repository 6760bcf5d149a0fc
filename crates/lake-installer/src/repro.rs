//! Reproducible builds. With `SOURCE_DATE_EPOCH` set, whatever a build writes
//! that would otherwise carry the time of the build or a random id gets that
//! time, or an id derived from a seed (a BLAKE3 of the build's inputs):
//! commit and generation times, the lake's UUID, the pack layout and the
//! SQLite file ([`canonicalize_lake`]), ext4 UUID, hash seed and inode times
//! (`lake_image`), FAT volume id and file dates, and the ISO's dates and GPT
//! GUIDs (`iso`). Two builds from the same inputs then give the same bytes.

use std::path::Path;

use lakefs::id::ObjectId;
use lakefs::pack::{Location, PackWriter, Prepared};
use rusqlite::params;

use crate::error::{Error, IoContext, Result};

pub const ENV: &str = "SOURCE_DATE_EPOCH";

/// `SOURCE_DATE_EPOCH` (seconds since 1970), or None when unset or empty.
pub fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var(ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::Invalid(format!("{ENV}={v:?} is not a number of seconds since 1970"))),
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => match v.trim().parse::<i64>() {
            Ok(n) if (0..=i64::from(u32::MAX)).contains(&n) => Ok(Some(n)),
            _ => Err(Error::Invalid(format!("{ENV}={v} is not a number of seconds since 1970 (e.g. `git log -1 --format=%ct`)"))),
        },
    }
}

/// The fixed time and the seed of a reproducible build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repro {
    pub epoch: i64,
    seed: [u8; 32],
}

impl Repro {
    /// The seed is a BLAKE3 over the epoch and `inputs` (each length-prefixed,
    /// so ("ab","c") and ("a","bc") differ).
    pub fn new(epoch: i64, inputs: &[&[u8]]) -> Repro {
        let mut h = blake3::Hasher::new_derive_key("lake-installer 2025 reproducible build seed v1");
        h.update(&epoch.to_le_bytes());
        for i in inputs {
            h.update(&(i.len() as u64).to_le_bytes());
            h.update(i);
        }
        Repro { epoch, seed: *h.finalize().as_bytes() }
    }

    /// `N` bytes for one purpose (distinct purposes give unrelated bytes).
    pub fn bytes<const N: usize>(&self, purpose: &str) -> [u8; N] {
        let mut out = [0u8; N];
        blake3::Hasher::new_keyed(&self.seed).update(purpose.as_bytes()).finalize_xof().fill(&mut out);
        out
    }

    /// A version-4-shaped UUID for one purpose.
    pub fn uuid(&self, purpose: &str) -> uuid::Uuid {
        uuid::Builder::from_random_bytes(self.bytes::<16>(purpose)).into_uuid()
    }

    pub fn u32(&self, purpose: &str) -> u32 {
        u32::from_le_bytes(self.bytes::<4>(purpose))
    }

    pub fn seed_hex(&self) -> String {
        self.seed.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What [`canonicalize_lake`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Canonical {
    pub uuid: String,
    pub packed_objects: usize,
    pub packs: Vec<String>,
}

fn lake_err(dir: &Path, what: &str) -> impl FnOnce(lakefs::Error) -> Error {
    Error::lake(format!("{what} in {}", dir.display()))
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("{}: {e}", path.display()))
}

/// Rewrites a freshly staged lake (no other writer) so that its bytes depend
/// only on its content and `r`: packed objects rewritten in id order into
/// packs named by their BLAKE3, every recorded time set to the epoch, the
/// SQLite file rebuilt by `VACUUM INTO` (page layout independent of the
/// insertion order of a parallel import), and the superblock given a UUID
/// from the seed. Loose objects and checkouts are content-named already.
pub fn canonicalize_lake(dir: &Path, r: &Repro) -> Result<Canonical> {
    let packs_dir = dir.join(lakefs::lake::PACK_DIR);
    let lake = lakefs::Lake::open(dir).map_err(lake_err(dir, "opening the staged lake"))?;
    let (mut locations, old_packs) = {
        let db = lake.db();
        (
            db.all_locations().map_err(lake_err(dir, "reading the object index"))?,
            db.pack_names().map_err(lake_err(dir, "reading the pack list"))?,
        )
    };
    locations.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut pw = PackWriter::new(&packs_dir);
    let mut moved: Vec<(ObjectId, Location)> = Vec::with_capacity(locations.len());
    let copied = (|| -> Result<()> {
        for (id, loc) in &locations {
            let path = lake.pack_path(&loc.pack);
            let f = std::fs::File::open(&path).at(&path)?;
            let mut b = vec![0u8; loc.stored_len as usize];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, loc.offset + lakefs::pack::RECORD_HEADER as u64).at(&path)?;
            let rec = Prepared { id: *id, kind: loc.kind, raw_len: loc.raw_len, compressed: loc.compressed, bytes: b.into() };
            moved.push((*id, pw.append(&rec).map_err(lake_err(dir, "repacking"))?));
        }
        Ok(())
    })();
    if let Err(e) = copied {
        pw.abandon();
        return Err(e);
    }
    let written = pw.finish().map_err(lake_err(dir, "repacking"))?;
    // Name each new pack by its content.
    let mut renamed = Vec::new();
    for (name, size) in &written {
        let from = packs_dir.join(name);
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(&from).at(&from)?).at(&from)?;
        let new = format!("pack-{}.pack", &h.finalize().to_hex()[..16]);
        std::fs::rename(&from, packs_dir.join(&new)).at(&from)?;
        renamed.push(((name.clone(), new), *size));
    }
    for (_, loc) in moved.iter_mut() {
        if let Some(((_, new), _)) = renamed.iter().find(|((old, _), _)| *old == loc.pack) {
            loc.pack = new.clone();
        }
    }
    let new_packs: Vec<(String, u64)> = renamed.iter().map(|((_, n), s)| (n.clone(), *s)).collect();
    {
        let mut db = lake.db();
        let path = db.path().to_owned();
        let e = db_err(&path);
        let tx = db.conn.transaction().map_err(&e)?;
        tx.execute("DELETE FROM objects", []).map_err(&e)?;
        tx.execute("DELETE FROM packs", []).map_err(&e)?;
        lakefs::meta::Db::insert_packs_and_objects(&tx, &new_packs, &moved, r.epoch).map_err(&e)?;
        // (The commit itself was made with the epoch as its time: `lake_partition::stage`.)
        for sql in ["UPDATE refs SET updated=?1", "UPDATE reflog SET time=?1", "UPDATE generations SET created=?1"] {
            tx.execute(sql, params![r.epoch]).map_err(&e)?;
        }
        tx.commit().map_err(&e)?;
    }
    drop(lake);
    for (name, _) in &old_packs {
        if !new_packs.iter().any(|(n, _)| n == name) {
            let p = packs_dir.join(name);
            std::fs::remove_file(&p).at(&p)?;
        }
    }
    // A fresh file in rollback-journal mode, pages in key order.
    let db_path = dir.join(lakefs::meta::FILE_NAME);
    let tmp = dir.join("meta.db.vacuum");
    let _ = std::fs::remove_file(&tmp);
    {
        let conn = rusqlite::Connection::open(&db_path).map_err(db_err(&db_path))?;
        conn.execute("VACUUM INTO ?1", params![tmp.to_string_lossy()]).map_err(db_err(&db_path))?;
        let conn2 = rusqlite::Connection::open(&tmp).map_err(db_err(&tmp))?;
        conn2.execute_batch("PRAGMA journal_mode=DELETE;").map_err(db_err(&tmp))?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{}{suffix}", lakefs::meta::FILE_NAME)));
    }
    std::fs::rename(&tmp, &db_path).at(&db_path)?;
    let sb_path = dir.join(lakefs::superblock::FILE_NAME);
    let old = std::fs::read(&sb_path).at(&sb_path)?;
    let sb = lakefs::superblock::Superblock::decode(&old, &sb_path).map_err(lake_err(dir, "reading the superblock"))?;
    let mut new = lakefs::superblock::Superblock::new(*r.uuid("lake uuid").as_bytes(), sb.chunker, r.epoch);
    new.compat = sb.compat;
    new.ro_compat = sb.ro_compat;
    new.incompat = sb.incompat;
    std::fs::write(&sb_path, new.encode()).at(&sb_path)?;
    // VACUUM INTO made its file with the umask's mode: the lake's files are root's only.
    lakefs::privacy::tighten(dir).map_err(lake_err(dir, "making the lake's files private"))?;
    Ok(Canonical { uuid: new.uuid_string(), packed_objects: moved.len(), packs: new_packs.into_iter().map(|p| p.0).collect() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_depends_on_every_input() {
        let a = Repro::new(1_700_000_000, &[b"ab", b"c"]);
        assert_eq!(a, Repro::new(1_700_000_000, &[b"ab", b"c"]));
        assert_ne!(a.seed_hex(), Repro::new(1_700_000_000, &[b"a", b"bc"]).seed_hex());
        assert_ne!(a.seed_hex(), Repro::new(1_700_000_001, &[b"ab", b"c"]).seed_hex());
        assert_ne!(a.uuid("x"), a.uuid("y"));
        assert_eq!(a.uuid("x").get_version_num(), 4);
    }
}
