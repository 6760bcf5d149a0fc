//! A lake on disk: opening and creating one, and reading its objects.
//!
//! Layout of a lake directory (the root of the ext4 substrate):
//! `superblock`, `meta.db` (SQLite, WAL), `packs/` (pack files), `objects/`
//! (loose objects), `tmp/` (scratch, emptied by writers), `lock` (writer lock).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::chunklist::{ChunkList, Piece};
use crate::commit::Commit;
use crate::error::{Error, IoContext, Result};
use crate::id::ObjectId;
use crate::meta::Db;
use crate::pack::{self, Kind, Location};
use crate::superblock::{ChunkerParams, Superblock};
use crate::tree::{Content, Tree};

pub const PACK_DIR: &str = "packs";
pub const TMP_DIR: &str = "tmp";
/// The POSIX zone's deployed generations (`deploy/N/`, see lake-posix): named
/// here because the store's privacy rules treat it apart.
pub const DEPLOY_DIR: &str = "deploy";
const LOCK_FILE: &str = "lock";
/// A file of allocated space kept in every lake. When the disk fills up, SQLite
/// cannot even create its WAL index to open the database, so opening a full lake
/// releases this reserve first (and says so); writers put it back when there is room.
pub const RESERVE_FILE: &str = "reserve";
const RESERVE_SIZE: usize = 1 << 20;

pub struct Lake {
    root: PathBuf,
    sb: Superblock,
    db: Mutex<Db>,
    pack_files: Mutex<HashMap<String, Arc<File>>>,
    read_only: bool,
    /// Incompatible features turned on since open (see [`Lake::enable_incompat`]).
    enabled: Mutex<u64>,
}

/// Held while a command writes; one writer at a time per lake.
pub struct WriteLock {
    _file: File,
}

#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub chunker: ChunkerParams,
}

impl Lake {
    /// Creates a lake in `root` (created if missing; must be empty apart from
    /// `lost+found`). The superblock is written last, so an interrupted create
    /// never looks like a lake.
    pub fn create(root: &Path, opts: &CreateOptions) -> Result<Lake> {
        if root.join(crate::superblock::FILE_NAME).exists() {
            return Err(Error::AlreadyALake { path: root.to_owned() });
        }
        if !root.exists() {
            crate::privacy::create_dir(root)?;
        }
        crate::privacy::set_mode(root, crate::privacy::DIR_MODE)?;
        for e in std::fs::read_dir(root).at(root)? {
            let e = e.at(root)?;
            if e.file_name() != "lost+found" {
                return Err(Error::Invalid(format!(
                    "{} is not empty (found {:?}); a lake is created in an empty directory",
                    root.display(),
                    e.file_name()
                )));
            }
        }
        for d in [PACK_DIR, TMP_DIR, crate::loose::DIR] {
            crate::privacy::create_dir(&root.join(d))?;
        }
        drop(Db::open(root, true)?);
        ensure_reserve(root)?;
        let (now, _) = crate::util::now();
        let mut sb = Superblock::new(crate::util::random_bytes(), opts.chunker, now);
        sb.compat |= crate::superblock::COMPAT_PRIVATE;
        crate::util::write_atomic(&root.join(crate::superblock::FILE_NAME), &sb.encode())?;
        Lake::open(root)
    }

    pub fn open(root: &Path) -> Result<Lake> {
        use nix::unistd::{access, AccessFlags};
        if access(root, AccessFlags::R_OK | AccessFlags::X_OK) == Err(nix::errno::Errno::EACCES) {
            return Err(Error::PermissionDenied { path: root.to_owned(), why: who_may(root, "read") });
        }
        let sb = Superblock::read(root)?;
        for d in [PACK_DIR, TMP_DIR, crate::loose::DIR] {
            if !root.join(d).is_dir() {
                return Err(Error::Invalid(format!("{}: lake directory {d}/ is missing; the lake is damaged", root.display())));
            }
        }
        // A reader who may not write (another user of a group-readable lake) opens
        // the index read-only instead of failing on SQLite's first write.
        let may_write = access(root, AccessFlags::W_OK).is_ok() && access(&root.join(crate::meta::FILE_NAME), AccessFlags::W_OK).is_ok();
        let read_only = ro_fs(root) || !may_write;
        let db = if read_only {
            Db::open_read_only(root)?
        } else {
            match Db::open(root, false) {
                Err(e) if is_space_error(&e) && root.join(RESERVE_FILE).exists() => {
                    std::fs::remove_file(root.join(RESERVE_FILE)).at(root.join(RESERVE_FILE))?;
                    eprintln!(
                        "lakefs: {} is full; released its 1 MiB reserve so it can open. Free space or run `lakectl gc`.",
                        root.display()
                    );
                    Db::open(root, false)?
                }
                other => other?,
            }
        };
        let enabled = Mutex::new(sb.incompat);
        Ok(Lake { root: root.to_owned(), sb, db: Mutex::new(db), pack_files: Mutex::new(HashMap::new()), read_only, enabled })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Turns on incompatible feature `bit` in the superblock (durably) before the
    /// first object that needs it is written, so that builds that do not know it
    /// refuse the lake. Cheap once on.
    pub fn enable_incompat(&self, bit: u64) -> Result<()> {
        let mut on = self.enabled.lock().unwrap_or_else(|p| p.into_inner());
        if *on & bit == bit {
            return Ok(());
        }
        let mut sb = Superblock::read(&self.root)?;
        if sb.incompat & bit != bit {
            sb.incompat |= bit;
            crate::util::write_atomic(&self.root.join(crate::superblock::FILE_NAME), &sb.encode())?;
        }
        *on = sb.incompat;
        Ok(())
    }

    pub fn db(&self) -> MutexGuard<'_, Db> {
        // A panic while holding the lock leaves the connection usable; take it back.
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the writer lock (waiting for another writer to finish), then removes
    /// what an interrupted writer may have left: packs no index refers to, scratch files.
    /// Writers that add data need the space reserve in place (so the lake can
    /// still be opened once they fill the disk); gc and ref deletion, which free
    /// space, do not.
    pub fn lock_for_write(&self) -> Result<WriteLock> {
        self.lock_inner(true)
    }

    pub fn lock_for_cleanup(&self) -> Result<WriteLock> {
        self.lock_inner(false)
    }

    fn lock_inner(&self, need_reserve: bool) -> Result<WriteLock> {
        self.sb.writable(&self.root)?;
        if self.read_only {
            if ro_fs(&self.root) {
                return Err(Error::Invalid(format!(
                    "{} is on a read-only file system; remount it read-write to change the lake",
                    self.root.display()
                )));
            }
            return Err(Error::PermissionDenied { path: self.root.clone(), why: who_may(&self.root, "change") });
        }
        let path = self.root.join(LOCK_FILE);
        let f = crate::privacy::new_file().create(true).truncate(false).write(true).open(&path).at(&path)?;
        if crate::sys::lock_exclusive(&f, false).is_err() {
            eprintln!("lakefs: waiting for another writer to finish with {}", self.root.display());
            crate::sys::lock_exclusive(&f, true).at(&path)?;
        }
        self.clean_orphans()?;
        self.make_private_once()?;
        match ensure_reserve(&self.root) {
            Err(Error::DiskFull { path, .. }) if need_reserve => {
                return Err(Error::DiskFull { path, during: "restoring the lake's 1 MiB space reserve".into() })
            }
            Err(e) if need_reserve => return Err(e),
            _ => {}
        }
        Ok(WriteLock { _file: f })
    }

    /// The upgrade step of lakes made before their files were private (see
    /// [`crate::privacy`]): tightens them once and records it in the superblock.
    fn make_private_once(&self) -> Result<()> {
        use crate::superblock::COMPAT_PRIVATE;
        if self.sb.compat & COMPAT_PRIVATE != 0 {
            return Ok(());
        }
        let mut sb = Superblock::read(&self.root)?;
        if sb.compat & COMPAT_PRIVATE == 0 {
            let changed = crate::privacy::tighten(&self.root)?;
            if !changed.is_empty() {
                eprintln!(
                    "lakefs: {}: the lake's own files were readable by other users; made {} of them private (0700/0600)",
                    self.root.display(),
                    changed.len()
                );
            }
            sb.compat |= COMPAT_PRIVATE;
            crate::util::write_atomic(&self.root.join(crate::superblock::FILE_NAME), &sb.encode())?;
        }
        Ok(())
    }

    /// Deletes packs that no index entry names and scratch files. Only with the
    /// writer lock held: a running writer's packs are unindexed until it finishes.
    pub(crate) fn clean_orphans(&self) -> Result<()> {
        let known: std::collections::HashSet<String> = self.db().pack_names()?.into_iter().map(|p| p.0).collect();
        let dir = self.root.join(PACK_DIR);
        for e in std::fs::read_dir(&dir).at(&dir)? {
            let e = e.at(&dir)?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                std::fs::remove_file(e.path()).at(e.path())?;
            }
        }
        let tmp = self.root.join(TMP_DIR);
        for e in std::fs::read_dir(&tmp).at(&tmp)? {
            let p = e.at(&tmp)?.path();
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
        Ok(())
    }

    /// Makes everything written to the lake's file system durable (one call for
    /// all loose objects of an import instead of an fsync per file).
    pub fn syncfs(&self) -> Result<()> {
        let f = File::open(&self.root).at(&self.root)?;
        crate::sys::syncfs(&f).at(&self.root)
    }

    pub fn pack_path(&self, name: &str) -> PathBuf {
        self.root.join(PACK_DIR).join(name)
    }

    fn pack_file(&self, name: &str) -> Result<Arc<File>> {
        let mut files = self.pack_files.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = files.get(name) {
            return Ok(f.clone());
        }
        let path = self.pack_path(name);
        let f = Arc::new(File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::CorruptPack { path: path.clone(), why: "the index refers to it but the file is missing".into() }
            } else {
                Error::io(&path, e)
            }
        })?);
        files.insert(name.to_owned(), f.clone());
        Ok(f)
    }

    /// Forgets cached pack handles (after gc replaced packs).
    pub fn drop_pack_handles(&self) {
        self.pack_files.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn read_at(&self, id: &ObjectId, loc: &Location) -> Result<Vec<u8>> {
        let f = self.pack_file(&loc.pack)?;
        pack::read_record(&f, &self.pack_path(&loc.pack), id, loc)
    }

    /// Reads and verifies a packed object.
    pub fn read_object(&self, id: &ObjectId) -> Result<(Kind, Vec<u8>)> {
        let loc = self.db().location(id)?.ok_or(Error::MissingObject(*id))?;
        Ok((loc.kind, self.read_at(id, &loc)?))
    }

    pub fn read_tree(&self, id: &ObjectId) -> Result<Tree> {
        let (_, b) = self.read_object(id)?;
        crate::tree::decode_checked(id, &b)
    }

    pub fn read_commit(&self, id: &ObjectId) -> Result<Commit> {
        let (_, b) = self.read_object(id)?;
        Commit::decode(&b).map_err(|e| Error::CorruptObject { id: *id, why: e.to_string() })
    }

    pub fn read_chunklist(&self, id: &ObjectId) -> Result<ChunkList> {
        let (_, b) = self.read_object(id)?;
        ChunkList::decode(&b).map_err(|e| Error::CorruptObject { id: *id, why: e.to_string() })
    }

    /// A verified loose copy of whole content `id`, if the lake has one.
    pub fn loose_path_of(&self, id: &ObjectId) -> Result<Option<PathBuf>> {
        for key in self.db().loose_keys_of(id)? {
            let p = crate::loose::path(&self.root, &key);
            if p.exists() {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// Streams a file's content into `out`, verifying every piece against its id.
    pub fn write_content(&self, content: &Content, out: &mut dyn Write) -> Result<u64> {
        match content {
            Content::Whole(id) => {
                if let Some(loc) = self.db().location(id)? {
                    let b = self.read_at(id, &loc)?;
                    out.write_all(&b).map_err(|e| Error::io("<output>", e))?;
                    return Ok(b.len() as u64);
                }
                let p = self.loose_path_of(id)?.ok_or(Error::MissingObject(*id))?;
                let mut f = File::open(&p).at(&p)?;
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut n = 0u64;
                loop {
                    let k = std::io::Read::read(&mut f, &mut buf).at(&p)?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                    out.write_all(&buf[..k]).map_err(|e| Error::io("<output>", e))?;
                    n += k as u64;
                }
                if h.finalize().as_bytes() != id.as_bytes() {
                    return Err(Error::CorruptObject { id: *id, why: format!("loose object {} does not match its id", p.display()) });
                }
                Ok(n)
            }
            Content::Chunked(list) => {
                let out_err = |e| Error::io("<output>", e);
                let zeros = vec![0u8; 1 << 20];
                self.for_each_piece(list, |span| match span {
                    Span::Data(b) => out.write_all(b).map_err(out_err),
                    Span::Hole(mut hole) => {
                        while hole > 0 {
                            let k = hole.min(zeros.len() as u64) as usize;
                            out.write_all(&zeros[..k]).map_err(out_err)?;
                            hole -= k as u64;
                        }
                        Ok(())
                    }
                })
            }
        }
    }

    /// Writes a file's content into `f` (empty, positioned at 0) as
    /// [`Lake::write_content`] does, but leaves the holes of a sparse chunk list
    /// unallocated, so a sparse file comes back sparse. `path` names `f` in errors.
    pub fn write_content_to_file(&self, content: &Content, f: &mut File, path: &Path) -> Result<u64> {
        use std::io::{Seek, SeekFrom};
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, &mut *f);
        let n = match content {
            Content::Whole(_) => self.write_content(content, &mut bw)?,
            Content::Chunked(list) => self.for_each_piece(list, |span| match span {
                Span::Data(b) => bw.write_all(b).at(path),
                Span::Hole(hole) => {
                    let by = i64::try_from(hole).map_err(|_| Error::CorruptObject { id: *list, why: "hole too large".into() })?;
                    // Seeking flushes the buffer; the hole is left unwritten.
                    bw.seek(SeekFrom::Current(by)).at(path).map(|_| ())
                }
            })?,
        };
        bw.flush().at(path)?;
        drop(bw);
        // A trailing hole: the size comes from the length, not from a write.
        f.set_len(n).at(path)?;
        Ok(n)
    }

    /// Calls `visit` with each chunk of chunk list `list` (read and verified) and
    /// each hole, in order; returns the total size.
    fn for_each_piece(&self, list: &ObjectId, mut visit: impl FnMut(Span<'_>) -> Result<()>) -> Result<u64> {
        let pieces = self.read_chunklist(list)?.pieces;
        let mut n = 0;
        for piece in &pieces {
            match piece {
                Piece::Chunk(cid, len) => {
                    let b = self.read_object(cid)?.1;
                    if b.len() != *len as usize {
                        return Err(Error::CorruptObject { id: *cid, why: "chunk length differs from its list".into() });
                    }
                    visit(Span::Data(&b))?;
                }
                Piece::Hole(len) => visit(Span::Hole(*len))?,
            }
            n += piece.len();
        }
        Ok(n)
    }

    pub fn get_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        self.db().get_ref(name)
    }

    pub fn refs(&self) -> Result<Vec<(String, ObjectId)>> {
        self.db().refs()
    }

    /// Deletes a ref (its commits stay until `gc` finds nothing else reaches them).
    pub fn delete_ref(&self, name: &str) -> Result<ObjectId> {
        let _lock = self.lock_for_cleanup()?;
        let mut db = self.db();
        let old = db.get_ref(name)?.ok_or_else(|| Error::UnknownRevision(name.to_owned()))?;
        let dbpath = db.path().to_owned();
        let err = |e| crate::meta::db_error(&dbpath, e);
        let tx = db.conn.transaction().map_err(err)?;
        let (now, _) = crate::util::now();
        tx.execute("DELETE FROM refs WHERE name=?1", rusqlite::params![name]).map_err(err)?;
        tx.execute(
            "INSERT INTO reflog(name, old, new, time, reason) VALUES(?1, ?2, x'', ?3, 'deleted')",
            rusqlite::params![name, old.as_bytes(), now],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(old)
    }

    /// Follows `path` (components separated by '/') from a root tree.
    pub fn lookup(&self, root: &ObjectId, path: impl AsRef<[u8]>) -> Result<Option<crate::tree::Node>> {
        let mut tree = *root;
        let comps: Vec<&[u8]> = crate::names::components(path.as_ref()).collect();
        if comps.is_empty() {
            return Ok(Some(crate::tree::Node::Dir { meta: Default::default(), tree: *root }));
        }
        for (i, c) in comps.iter().enumerate() {
            let t = self.read_tree(&tree)?;
            let Some(e) = t.get(c) else { return Ok(None) };
            if i + 1 == comps.len() {
                return Ok(Some(e.node.clone()));
            }
            match &e.node {
                crate::tree::Node::Dir { tree: sub, .. } => tree = *sub,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// What [`Lake::for_each_piece`] hands out: a chunk's bytes or a hole's length.
enum Span<'a> {
    Data(&'a [u8]),
    Hole(u64),
}

pub fn is_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with(['-', '/'])
        && !name.ends_with('/')
        && !name.contains("..")
        && !name.contains("//")
        && !name.starts_with("b3:")
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
}

fn ro_fs(root: &Path) -> bool {
    nix::sys::statvfs::statvfs(root).map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY)).unwrap_or(false)
}

/// "only root may read this lake (mode 0700): ..." for permission errors.
fn who_may(root: &Path, what: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(root) else { return format!("you may not {what} this lake") };
    let owner = match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(md.uid())) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {}", md.uid()),
    };
    format!(
        "only {owner} may {what} this lake (mode {:04o}); run the command as {owner} (e.g. with sudo), or ask {owner} for access",
        md.mode() & 0o7777
    )
}

/// True for the errors a full disk produces, including SQLite failing to map its WAL index.
fn is_space_error(e: &Error) -> bool {
    match e {
        Error::DiskFull { .. } => true,
        Error::Db { source: rusqlite::Error::SqliteFailure(f, _), .. } => {
            matches!(f.code, rusqlite::ErrorCode::DiskFull | rusqlite::ErrorCode::SystemIoFailure)
        }
        _ => false,
    }
}

fn ensure_reserve(root: &Path) -> Result<()> {
    let path = root.join(RESERVE_FILE);
    if path.exists() {
        return Ok(());
    }
    let tmp = root.join(TMP_DIR).join("reserve");
    let r = crate::privacy::new_file()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; RESERVE_SIZE])?;
            f.sync_all()
        })
        .and_then(|_| std::fs::rename(&tmp, &path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.at(&path)
}
