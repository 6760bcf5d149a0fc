//! A real volume (the daemon and the driver) under what once stalled it or
//! leaked into tree walks: data near the 16 TiB end of a sparse file and
//! pathological fallocates must finish (or fail) in bounded time while other
//! users keep working (a watchdog bounds every call); a thousand commits of
//! history stay out of `find`; commits leave atime alone.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lake_fuse as fuse;
use lake_fuse::hooks::VolumeHooks;
use lake_fuse::{MountOptions, Mounted};
use lake_volume::Daemon;
use lakefs::lake::{CreateOptions, Lake};

/// Longer than any of these calls may take: hitting it means a request spun.
const BOUND: Duration = Duration::from_secs(120);
/// ext4's largest file with 4 KiB blocks.
const EXT4_MAX: u64 = (16 << 40) - 4096;

/// A volume served on a mount point, unmounted (and its daemon shut down) when dropped.
struct Volume {
    lake: PathBuf,
    mnt: PathBuf,
    daemon: Option<Arc<Daemon>>,
    mounted: Option<Mounted>,
}

impl Volume {
    fn start(lake: &Path, mnt: &Path) -> Volume {
        let daemon = Daemon::start(lake, "home", mnt).unwrap();
        let hooks: Arc<dyn VolumeHooks> = daemon.clone();
        let mounted = fuse::spawn(daemon.work_dir(), mnt, hooks, &MountOptions::default()).unwrap();
        Volume { lake: lake.to_owned(), mnt: mnt.to_owned(), daemon: Some(daemon), mounted: Some(mounted) }
    }

    fn create(lake: &Path, mnt: &Path) -> Volume {
        drop(Lake::create(lake, &CreateOptions::default()).unwrap());
        fs::create_dir_all(mnt).unwrap();
        Volume::start(lake, mnt)
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().unwrap()
    }

    fn flush(&self) -> String {
        let r = lake_volume::control::request(&self.mnt, &serde_json::json!({"op": "flush"})).unwrap();
        r["commit"].as_str().unwrap_or_else(|| panic!("flush: {r}")).to_owned()
    }

    fn stop(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().unwrap();
        }
        if let Some(d) = self.daemon.take() {
            d.shutdown().unwrap();
        }
    }

    fn restart(&mut self) {
        self.stop();
        *self = Volume::start(&self.lake.clone(), &self.mnt.clone());
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // Still mounted: a test failed on the way (else `stop` unmounted).
        if let Some(m) = self.mounted.take() {
            let _ = m.unmount();
            if crate::fuse_common::is_mounted(&self.mnt) {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(d) = self.daemon.take() {
            let _ = d.shutdown();
        }
    }
}

/// Ends every request of the FUSE mount at `mnt` with an error (the fusectl
/// `abort`), so that threads stuck in one can end.
fn abort_connection(mnt: &Path) {
    let Ok(md) = fs::metadata(mnt) else { return };
    let conn = Path::new("/sys/fs/fuse/connections");
    if fs::read_dir(conn).map(|mut d| d.next().is_none()).unwrap_or(true) {
        let _ = Command::new("mount").args(["-t", "fusectl", "none"]).arg(conn).status();
    }
    let _ = fs::write(conn.join(libc::minor(md.dev()).to_string()).join("abort"), b"1");
}

/// The watchdog: runs `f` on a thread of its own and fails the test if it does
/// not return within [`BOUND`]. Prints how long it took (the figures in docs/lake-zone.md).
fn bounded<T: Send + 'static>(mnt: &Path, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(BOUND) {
        Ok(v) => {
            eprintln!("{what}: {:.3} s", start.elapsed().as_secs_f64());
            v
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("{what}: the thread ended without an answer"),
        },
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            abort_connection(mnt);
            panic!("{what} did not return within {BOUND:?}: a request that cannot finish must fail or finish in time");
        }
    }
}

fn fallocate(p: &Path, mode: i32, offset: u64, len: u64) -> std::io::Result<()> {
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(p)?;
    if unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, len as i64) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A small ext4 of its own (a loop device): fallocates may fill it without
/// filling the disk the tests run on.
struct LoopFs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
}

impl LoopFs {
    fn new(mib: u64) -> LoopFs {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        File::create(&img).unwrap().set_len(mib << 20).unwrap();
        let o = Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img).output().unwrap();
        assert!(o.status.success(), "mkfs.ext4: {}", String::from_utf8_lossy(&o.stderr));
        let mnt = dir.path().join("fs");
        fs::create_dir(&mnt).unwrap();
        let o = Command::new("mount").args(["-o", "loop"]).arg(&img).arg(&mnt).output().unwrap();
        assert!(o.status.success(), "mount -o loop: {}", String::from_utf8_lossy(&o.stderr));
        LoopFs { _dir: dir, mnt }
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

#[test]
fn huge_offsets_and_fallocates_finish_in_bounded_time() {
    // xfstests' maximum-file-size test once had its fsync spin for hours (the
    // commit read 16 TiB of zeros) and stall the mount for everybody.
    if !crate::fuse_common::require_fuse() {
        return;
    }
    let disk = LoopFs::new(512);
    let vol = Volume::create(&disk.mnt.join("lake"), &disk.mnt.join("mnt"));
    let mnt = vol.mnt.clone();

    // Another user keeps writing and fsyncing small files all along: each
    // round must finish in bounded time too.
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let (stop, mnt) = (stop.clone(), mnt.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let p = mnt.join(format!("other-{}", n % 4));
                bounded(&mnt, "another user's write and fsync", move || {
                    // While the fallocate below fills the disk, the commit an fsync
                    // waits for cannot be written: ENOSPC, promptly.
                    let r = File::create(&p).and_then(|f| f.write_all_at(b"small", 0).and_then(|_| f.sync_all()));
                    if let Err(e) = r {
                        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    }
                });
                n += 1;
            }
            n
        })
    };

    let huge = vol.p("huge");
    bounded(&mnt, "write 1 byte at 16 TiB - 4 KiB - 1 and fsync", move || {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&huge).unwrap();
        f.write_all_at(b"x", EXT4_MAX - 1).unwrap();
        f.sync_all().unwrap();
    });
    let sized = vol.p("sized");
    bounded(&mnt, "truncate to 16 TiB - 4 KiB and fsync", move || {
        let f = File::create(&sized).unwrap();
        f.set_len(EXT4_MAX).unwrap();
        f.sync_all().unwrap();
    });
    let past = vol.p("huge");
    let e = bounded(&mnt, "write past ext4's largest file", move || {
        OpenOptions::new().write(true).open(&past).unwrap().write_all_at(b"y", EXT4_MAX).unwrap_err()
    });
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");

    // The commit holds both, at their full size, with the byte where it was.
    let head = vol.flush();
    let v = vol.daemon().volume();
    let tree = v.lake().read_commit(&head.parse().unwrap()).unwrap().tree;
    for name in ["huge", "sized"] {
        match v.lake().lookup(&tree, name).unwrap() {
            Some(lakefs::tree::Node::File { size, .. }) => assert_eq!(size, EXT4_MAX, "{name}"),
            other => panic!("{name} is not committed as a file: {other:?}"),
        }
    }
    let at = vol.p(&format!(".lake/at/{head}/huge"));
    let (last, zero) = bounded(&mnt, "read the end and the middle of the past version", move || {
        let f = File::open(&at).unwrap();
        let (mut a, mut b) = ([0u8; 1], [9u8; 4096]);
        f.read_exact_at(&mut a, EXT4_MAX - 1).unwrap();
        f.read_exact_at(&mut b, 8 << 40).unwrap();
        (a[0], b.iter().all(|x| *x == 0))
    });
    assert_eq!((last, zero), (b'x', true));

    // Pathological fallocates: far more than the disk has, and whole-range holes.
    let p = vol.p("falloc");
    let e = bounded(&mnt, "fallocate 8 TiB on a 512 MiB file system", move || fallocate(&p, 0, 0, 8 << 40).unwrap_err());
    assert!(matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EFBIG)), "{e}");
    let p = vol.p("falloc");
    let e = bounded(&mnt, "fsync of what that fallocate left (the disk is full)", move || File::open(&p).unwrap().sync_all().unwrap_err());
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    fs::remove_file(vol.p("falloc")).unwrap();
    let p = vol.p("huge");
    bounded(&mnt, "punch a hole over all 16 TiB", move || {
        fallocate(&p, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, 0, EXT4_MAX).unwrap()
    });
    let p = vol.p("sized");
    let r = bounded(&mnt, "zero 16 TiB of a sparse file (it allocates: fills the disk)", move || {
        fallocate(&p, libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE, 0, EXT4_MAX)
    });
    assert!(r.is_ok() || r.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::ENOSPC)), "{r:?}");
    let p = vol.p("sized");
    let r = bounded(&mnt, "fsync after the zeroing", move || File::open(&p).unwrap().sync_all());
    assert!(r.is_ok() || r.as_ref().is_err_and(|e| e.raw_os_error() == Some(libc::ENOSPC)), "{r:?}");
    fs::remove_file(vol.p("sized")).unwrap();

    // With room again (once the kernel forgot the removed files), commits go on.
    let p = vol.p("after-full");
    let mut tries = 0;
    while let Err(e) = bounded(&mnt, "write and fsync with room again", {
        let p = p.clone();
        move || File::create(&p).and_then(|f| f.write_all_at(b"room", 0).and_then(|_| f.sync_all()))
    }) {
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        tries += 1;
        assert!(tries < 30, "still no room after the files that filled the disk were removed");
        std::thread::sleep(Duration::from_secs(1));
    }
    let head = bounded(&mnt, "a commit of it all", {
        let m = mnt.clone();
        move || lake_volume::control::request(&m, &serde_json::json!({"op": "flush"})).unwrap()
    });
    let tree = v.lake().read_commit(&head["commit"].as_str().unwrap().parse().unwrap()).unwrap().tree;
    assert!(v.lake().lookup(&tree, "after-full").unwrap().is_some());

    stop.store(true, Ordering::Relaxed);
    let rounds = other.join().unwrap();
    eprintln!("the other user's write+fsync rounds meanwhile: {rounds}");
    assert!(rounds > 0);
}

fn count_entries(root: &Path) -> usize {
    let o = Command::new("find").arg(root).output().unwrap();
    assert!(o.status.success(), "find {}: {}", root.display(), String::from_utf8_lossy(&o.stderr));
    o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count()
}

#[test]
fn a_thousand_commits_stay_out_of_find() {
    if !crate::fuse_common::require_fuse() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let vol = Volume::create(&dir.path().join("lake"), &dir.path().join("mnt"));
    let v = vol.daemon().volume();
    fs::create_dir(vol.p("notes")).unwrap();
    let mut first = None;
    for i in 0..1000 {
        let rel = format!("notes/n{}.txt", i % 100);
        fs::write(vol.p(&rel), format!("version {i}\n")).unwrap();
        let c = v.commit_paths(&[rel.into_bytes()], "manual", &format!("edit {i}")).unwrap();
        first.get_or_insert(c.commit);
    }
    let work = vol.daemon().work_dir().to_owned();
    assert_eq!(count_entries(&vol.mnt), count_entries(&work), "find sees the working tree and nothing else");
    assert_eq!(count_entries(&vol.mnt), 102);
    let du = Command::new("du").arg("-s").arg(&vol.mnt).output().unwrap();
    assert!(du.status.success());
    // History is there by name.
    let first = first.unwrap();
    let mut old = String::new();
    File::open(vol.p(&format!(".lake/at/{first}/notes/n0.txt"))).unwrap().read_to_string(&mut old).unwrap();
    assert_eq!(old, "version 0\n");
    assert!(fs::read_dir(vol.p(".lake/at")).unwrap().count() >= 1);
    let o = Command::new("sh").arg("-c").arg(format!("rm -rf {0}/* {0}/.[!.]*", vol.mnt.display())).output().unwrap();
    assert!(o.status.success(), "rm -rf of everything listed: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(count_entries(&vol.mnt), 1);
}

#[test]
fn commits_leave_atime_alone() {
    // generic/258: a timestamp before 1970 survives (the commit reads the file,
    // and a read would move an atime that old), a remount too.
    if !crate::fuse_common::require_fuse() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut vol = Volume::create(&dir.path().join("lake"), &dir.path().join("mnt"));
    let p = vol.p("old.txt");
    fs::write(&p, b"1960\n").unwrap();
    let o = Command::new("touch").args(["-t", "196001010101"]).arg(&p).output().unwrap();
    assert!(o.status.success());
    let before = fs::metadata(&p).unwrap().atime();
    assert!(before < 0, "{before}");
    vol.flush();
    assert_eq!(fs::metadata(&p).unwrap().atime(), before, "the commit moved atime");
    vol.restart();
    assert_eq!(fs::metadata(vol.p("old.txt")).unwrap().atime(), before, "after a remount");
}
