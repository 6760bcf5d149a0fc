//! The FUSE driver on a real mount: each POSIX operation it serves behaves as on
//! the backing ext4, with FUSE passthrough (where the kernel has it) and without;
//! hook calls are recorded; the virtual `.lake/` and `views/` paths answer.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::fuse_common::{require_fuse, Fixture};
use lake_fuse::MountOptions;

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Runs `f` on a mount with passthrough and on one without.
fn both(f: impl Fn(&Fixture)) {
    if !require_fuse() {
        return;
    }
    for passthrough in [true, false] {
        let fx = Fixture::new(passthrough);
        eprintln!("mount with passthrough={passthrough}: kernel passthrough {}", fx.passthrough());
        f(&fx);
    }
}

#[test]
fn passthrough_follows_the_option_and_the_kernel() {
    if !require_fuse() {
        return;
    }
    let off = Fixture::new(false);
    assert!(!off.passthrough(), "passthrough=off must serve data in the daemon");
    let on = Fixture::new(true);
    // FUSE passthrough came with Linux 6.9.
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut v = rel.trim().split(['.', '-']).map(|x| x.parse::<u32>().unwrap_or(0));
    let (major, minor) = (v.next().unwrap_or(0), v.next().unwrap_or(0));
    if (major, minor) >= (6, 9) {
        assert!(on.passthrough(), "kernel {rel} has FUSE passthrough but the mount does not use it");
    }
}

#[test]
fn files_dirs_symlinks_and_hard_links() {
    both(|fx| {
        fs::write(fx.p("a.txt"), b"hello").unwrap();
        assert_eq!(fs::read(fx.p("a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(fx.w("a.txt")).unwrap(), b"hello", "data lands in the working tree");
        fs::create_dir(fx.p("d")).unwrap();
        fs::create_dir(fx.p("d/e")).unwrap();
        assert!(fx.w("d/e").is_dir());
        std::os::unix::fs::symlink("../a.txt", fx.p("d/link")).unwrap();
        assert_eq!(fs::read_link(fx.p("d/link")).unwrap(), Path::new("../a.txt"));
        assert_eq!(fs::read(fx.p("d/link")).unwrap(), b"hello");
        fs::hard_link(fx.p("a.txt"), fx.p("d/hard")).unwrap();
        let (m1, m2) = (fs::metadata(fx.p("a.txt")).unwrap(), fs::metadata(fx.p("d/hard")).unwrap());
        assert_eq!(m1.ino(), m2.ino(), "hard links share one inode");
        assert_eq!(m2.nlink(), 2);
        fs::write(fx.p("d/hard"), b"changed").unwrap();
        assert_eq!(fs::read(fx.p("a.txt")).unwrap(), b"changed");
        fs::remove_file(fx.p("a.txt")).unwrap();
        assert_eq!(fs::metadata(fx.p("d/hard")).unwrap().nlink(), 1);
        assert!(fs::read(fx.p("d/link")).is_err(), "dangling symlink");
        assert_eq!(fs::remove_dir(fx.p("d")).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
        fs::remove_dir(fx.p("d/e")).unwrap();
        let mut names: Vec<String> = fs::read_dir(fx.p("d")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["hard", "link"]);
        // mknod of a fifo
        let fifo = cstr(&fx.p("fifo"));
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o640) }, 0);
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fs::symlink_metadata(fx.w("fifo")).unwrap().file_type()));
    });
}

#[test]
fn many_entries_list_completely() {
    both(|fx| {
        fs::create_dir(fx.p("many")).unwrap();
        for i in 0..1500 {
            File::create(fx.p(&format!("many/file-with-a-longish-name-{i:05}"))).unwrap();
        }
        assert_eq!(fs::read_dir(fx.p("many")).unwrap().count(), 1500);
        // Cached listings follow changes.
        fs::write(fx.p("many/late"), b"").unwrap();
        assert_eq!(fs::read_dir(fx.p("many")).unwrap().count(), 1501);
        fs::rename(fx.p("many/late"), fx.p("late")).unwrap();
        assert_eq!(fs::read_dir(fx.p("many")).unwrap().count(), 1500);
        fs::hard_link(fx.p("late"), fx.p("many/late2")).unwrap();
        assert!(fs::read_dir(fx.p("many")).unwrap().any(|e| e.unwrap().file_name() == "late2"));
        fs::remove_file(fx.p("many/late2")).unwrap();
        assert_eq!(fs::read_dir(fx.p("many")).unwrap().count(), 1500);
        for i in 0..1500 {
            fs::remove_file(fx.p(&format!("many/file-with-a-longish-name-{i:05}"))).unwrap();
        }
        fs::remove_dir(fx.p("many")).unwrap();
    });
}

fn rename2(from: &Path, to: &Path, flags: u32) -> i32 {
    let (a, b) = (cstr(from), cstr(to));
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

#[test]
fn rename_plain_noreplace_and_exchange() {
    both(|fx| {
        fs::write(fx.p("x"), b"x").unwrap();
        fs::write(fx.p("y"), b"y").unwrap();
        fs::create_dir(fx.p("sub")).unwrap();
        assert_eq!(rename2(&fx.p("x"), &fx.p("y"), libc::RENAME_NOREPLACE), libc::EEXIST);
        assert_eq!(fs::read(fx.p("y")).unwrap(), b"y");
        assert_eq!(rename2(&fx.p("x"), &fx.p("y"), libc::RENAME_EXCHANGE), 0);
        assert_eq!(fs::read(fx.p("x")).unwrap(), b"y");
        assert_eq!(fs::read(fx.p("y")).unwrap(), b"x");
        assert_eq!(fs::read(fx.w("x")).unwrap(), b"y");
        assert_eq!(rename2(&fx.p("x"), &fx.p("sub/z"), libc::RENAME_NOREPLACE), 0);
        assert!(!fx.p("x").exists());
        assert_eq!(fs::read(fx.p("sub/z")).unwrap(), b"y");
        fs::rename(fx.p("sub/z"), fx.p("y")).unwrap();
        assert_eq!(fs::read(fx.p("y")).unwrap(), b"y");
        assert!(!fx.p("sub/z").exists());
        fs::rename(fx.p("sub"), fx.p("sub2")).unwrap();
        assert!(fx.w("sub2").is_dir());
        assert_eq!(rename2(&fx.p("nope"), &fx.p("y"), libc::RENAME_EXCHANGE), libc::ENOENT);
    });
}

#[test]
fn xattrs_set_get_list_remove() {
    both(|fx| {
        fs::write(fx.p("f"), b"").unwrap();
        xattr::set(fx.p("f"), "user.color", b"blue").unwrap();
        assert_eq!(xattr::get(fx.p("f"), "user.color").unwrap().as_deref(), Some(&b"blue"[..]));
        assert_eq!(xattr::get(fx.w("f"), "user.color").unwrap().as_deref(), Some(&b"blue"[..]));
        let names: Vec<_> = xattr::list(fx.p("f")).unwrap().collect();
        assert!(names.iter().any(|n| n == "user.color"), "{names:?}");
        xattr::remove(fx.p("f"), "user.color").unwrap();
        assert_eq!(xattr::get(fx.p("f"), "user.color").unwrap(), None);
        assert!(xattr::remove(fx.p("f"), "user.color").is_err());
        // On a symlink itself (trusted.* is allowed there, user.* is not on ext4).
        std::os::unix::fs::symlink("f", fx.p("l")).unwrap();
        let l = cstr(&fx.p("l"));
        let (n, v) = (c"trusted.t", b"1");
        assert_eq!(unsafe { libc::lsetxattr(l.as_ptr(), n.as_ptr(), v.as_ptr().cast(), 1, 0) }, 0, "errno {}", errno());
        assert_eq!(xattr::get(fx.p("f"), "trusted.t").unwrap(), None, "the target is untouched");
    });
}

#[test]
fn append_truncate_fallocate() {
    both(|fx| {
        let mut a = OpenOptions::new().create(true).append(true).open(fx.p("log")).unwrap();
        let mut b = OpenOptions::new().append(true).open(fx.p("log")).unwrap();
        a.write_all(b"one\n").unwrap();
        b.write_all(b"two\n").unwrap();
        a.write_all(b"three\n").unwrap();
        drop((a, b));
        assert_eq!(fs::read(fx.p("log")).unwrap(), b"one\ntwo\nthree\n");

        let f = OpenOptions::new().read(true).write(true).open(fx.p("log")).unwrap();
        f.set_len(3).unwrap();
        assert_eq!(fs::read(fx.p("log")).unwrap(), b"one");
        f.set_len(10).unwrap();
        assert_eq!(fs::read(fx.p("log")).unwrap(), b"one\0\0\0\0\0\0\0");
        // truncate(2) by path, without an open handle of ours
        let c = cstr(&fx.p("log"));
        assert_eq!(unsafe { libc::truncate(c.as_ptr(), 2) }, 0);
        assert_eq!(fs::metadata(fx.p("log")).unwrap().len(), 2);
        // O_RDONLY|O_TRUNC truncates too (through a handle we opened read-only)
        let c = cstr(&fx.p("log"));
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_TRUNC) };
        assert!(fd >= 0, "errno {}", errno());
        unsafe { libc::close(fd) };
        assert_eq!(fs::metadata(fx.p("log")).unwrap().len(), 0);

        let g = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(fx.p("alloc")).unwrap();
        assert_eq!(unsafe { libc::fallocate(g.as_raw_fd(), 0, 0, 1 << 20) }, 0, "errno {}", errno());
        let m = fs::metadata(fx.p("alloc")).unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert!(m.blocks() * 512 >= 1 << 20, "blocks allocated");
        // punch a hole: size stays, blocks go
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        assert_eq!(unsafe { libc::fallocate(g.as_raw_fd(), mode, 0, 1 << 20) }, 0, "errno {}", errno());
        let m = fs::metadata(fx.p("alloc")).unwrap();
        assert_eq!(m.len(), 1 << 20);
        assert!(m.blocks() * 512 < 1 << 20);
        // SEEK_DATA on an all-hole file finds no data
        assert_eq!(unsafe { libc::lseek(g.as_raw_fd(), 0, libc::SEEK_DATA) }, -1);
        assert_eq!(errno(), libc::ENXIO);
    });
}

#[test]
fn shared_mmap_writes_are_seen_by_read() {
    both(|fx| {
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(fx.p("m")).unwrap();
        f.set_len(8192).unwrap();
        let p = unsafe { libc::mmap(std::ptr::null_mut(), 8192, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0) };
        assert_ne!(p, libc::MAP_FAILED, "mmap errno {}", errno());
        unsafe {
            std::ptr::copy_nonoverlapping(b"mapped!".as_ptr(), (p as *mut u8).add(4096), 7);
            assert_eq!(libc::msync(p, 8192, libc::MS_SYNC), 0);
            libc::munmap(p, 8192);
        }
        drop(f);
        let mut r = File::open(fx.p("m")).unwrap();
        r.seek(SeekFrom::Start(4096)).unwrap();
        let mut buf = [0u8; 7];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"mapped!");
        let back = fs::read(fx.w("m")).unwrap();
        assert_eq!(&back[4096..4103], b"mapped!", "the working tree has the mapped write");
    });
}

#[test]
fn chmod_chown_utimens() {
    both(|fx| {
        fs::write(fx.p("f"), b"x").unwrap();
        fs::set_permissions(fx.p("f"), fs::Permissions::from_mode(0o4751)).unwrap();
        assert_eq!(fs::metadata(fx.w("f")).unwrap().mode() & 0o7777, 0o4751);
        assert_eq!(fs::metadata(fx.p("f")).unwrap().mode() & 0o7777, 0o4751);
        std::os::unix::fs::chown(fx.p("f"), Some(1234), Some(4321)).unwrap();
        let m = fs::metadata(fx.w("f")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 4321));
        let c = cstr(&fx.p("f"));
        let times = [libc::timespec { tv_sec: 1_000_000_000, tv_nsec: 123 }, libc::timespec { tv_sec: 1_500_000_000, tv_nsec: 456_789 }];
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }, 0);
        let m = fs::metadata(fx.p("f")).unwrap();
        assert_eq!((m.atime(), m.atime_nsec(), m.mtime(), m.mtime_nsec()), (1_000_000_000, 123, 1_500_000_000, 456_789));
        let now = [libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }, libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW }];
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), now.as_ptr(), 0) }, 0);
        let m = fs::metadata(fx.w("f")).unwrap();
        assert_eq!(m.atime(), 1_000_000_000, "UTIME_OMIT keeps atime");
        assert!(m.mtime() > 1_500_000_000, "UTIME_NOW sets mtime to now");
        // lutimes on a symlink changes the link, not its target
        std::os::unix::fs::symlink("f", fx.p("l")).unwrap();
        let l = cstr(&fx.p("l"));
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, l.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }, 0);
        assert_eq!(fs::symlink_metadata(fx.w("l")).unwrap().mtime(), 1_500_000_000);
        assert_ne!(fs::metadata(fx.w("f")).unwrap().mtime(), 1_500_000_000);
    });
}

#[test]
fn entries_are_created_as_the_caller() {
    both(|fx| {
        // A world-writable setgid directory owned by group 4242.
        fs::create_dir(fx.p("shared")).unwrap();
        std::os::unix::fs::chown(fx.p("shared"), None, Some(4242)).unwrap();
        fs::set_permissions(fx.p("shared"), fs::Permissions::from_mode(0o2777)).unwrap();
        let st = std::process::Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c"])
            .arg(format!("echo hi > {0}/f && mkdir {0}/d", fx.p("shared").display()))
            .status()
            .unwrap();
        assert!(st.success());
        let f = fs::metadata(fx.w("shared/f")).unwrap();
        assert_eq!((f.uid(), f.gid()), (1000, 4242), "owner = caller, group from the setgid dir");
        let d = fs::metadata(fx.w("shared/d")).unwrap();
        assert_eq!((d.uid(), d.gid()), (1000, 4242));
        assert_ne!(d.mode() & 0o2000, 0, "subdirectories inherit setgid");
        // Permission checks are the kernel's (default_permissions): uid 1000 cannot write a root 0644 file.
        fs::write(fx.p("rootfile"), b"x").unwrap();
        let st = std::process::Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "sh", "-c"])
            .arg(format!("exec 2>/dev/null; echo no > {}/rootfile", fx.mnt.display()))
            .status()
            .unwrap();
        assert!(!st.success());
        assert_eq!(fs::read(fx.p("rootfile")).unwrap(), b"x");
    });
}

#[test]
fn statfs_is_the_backing_file_systems() {
    both(|fx| {
        let mut a: libc::statvfs = unsafe { std::mem::zeroed() };
        let mut b: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(cstr(&fx.mnt).as_ptr(), &mut a) }, 0);
        assert_eq!(unsafe { libc::statvfs(cstr(&fx.work).as_ptr(), &mut b) }, 0);
        assert_eq!((a.f_blocks, a.f_bsize, a.f_files), (b.f_blocks, b.f_bsize, b.f_files));
        assert!(a.f_namemax >= 255);
    });
}

#[test]
fn locks_conflict_between_open_files() {
    both(|fx| {
        fs::write(fx.p("lk"), b"data").unwrap();
        let a = OpenOptions::new().read(true).write(true).open(fx.p("lk")).unwrap();
        let b = OpenOptions::new().read(true).write(true).open(fx.p("lk")).unwrap();
        // Open-file-description locks conflict between two opens in one process.
        let mut l: libc::flock = unsafe { std::mem::zeroed() };
        l.l_type = libc::F_WRLCK as i16;
        l.l_whence = libc::SEEK_SET as i16;
        assert_eq!(unsafe { libc::fcntl(a.as_raw_fd(), libc::F_OFD_SETLK, &l) }, 0, "errno {}", errno());
        assert_eq!(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &l) }, -1);
        assert!(matches!(errno(), libc::EAGAIN | libc::EACCES));
        let mut q = l;
        assert_eq!(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_GETLK, &mut q) }, 0);
        assert_eq!(q.l_type, libc::F_WRLCK as i16, "GETLK reports the conflicting lock");
        l.l_type = libc::F_UNLCK as i16;
        assert_eq!(unsafe { libc::fcntl(a.as_raw_fd(), libc::F_OFD_SETLK, &l) }, 0);
        l.l_type = libc::F_WRLCK as i16;
        assert_eq!(unsafe { libc::fcntl(b.as_raw_fd(), libc::F_OFD_SETLK, &l) }, 0);
        // flock(2)
        assert_eq!(unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
        assert_eq!(unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, -1);
        assert_eq!(errno(), libc::EWOULDBLOCK);
        assert_eq!(unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_UN) }, 0);
        assert_eq!(unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    });
}

#[test]
fn hooks_hear_of_every_change() {
    both(|fx| {
        let h = &fx.hooks;
        fs::create_dir(fx.p("dir")).unwrap();
        let mut f = File::create(fx.p("dir/new.txt")).unwrap();
        f.write_all(b"abc").unwrap();
        f.sync_all().unwrap();
        drop(f);
        // The kernel sends RELEASE after close(2) returns.
        assert!(eventually(|| h.calls().iter().any(|c| c == "released:dir/new.txt")), "{:?}", h.calls());
        let calls = h.calls();
        for want in ["changed:dir", "changed:dir/new.txt", "open:dir/new.txt", "fsync:dir/new.txt", "released:dir/new.txt"] {
            assert!(calls.iter().any(|c| c == want), "missing {want} in {calls:?}");
        }
        let open_at = calls.iter().position(|c| c == "open:dir/new.txt").unwrap();
        let released_at = calls.iter().position(|c| c == "released:dir/new.txt").unwrap();
        assert!(open_at < released_at);

        // Two writers: released only when the last one closes.
        h.clear();
        let a = OpenOptions::new().write(true).open(fx.p("dir/new.txt")).unwrap();
        let b = OpenOptions::new().write(true).open(fx.p("dir/new.txt")).unwrap();
        drop(a);
        drop(b);
        assert!(eventually(|| h.calls().iter().any(|c| c == "released:dir/new.txt")), "{:?}", h.calls());
        assert_eq!(h.calls().iter().filter(|c| *c == "released:dir/new.txt").count(), 1);
        assert_eq!(h.calls().iter().filter(|c| *c == "open:dir/new.txt").count(), 1);

        // A read-only open is no write.
        h.clear();
        fs::read(fx.p("dir/new.txt")).unwrap();
        assert!(h.calls().is_empty(), "{:?}", h.calls());

        h.clear();
        fs::rename(fx.p("dir/new.txt"), fx.p("moved.txt")).unwrap();
        assert_eq!(h.calls(), ["changed:dir/new.txt", "changed:moved.txt"]);
        h.clear();
        fs::set_permissions(fx.p("moved.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        xattr::set(fx.p("moved.txt"), "user.k", b"v").unwrap();
        fs::remove_file(fx.p("moved.txt")).unwrap();
        fs::remove_dir(fx.p("dir")).unwrap();
        assert_eq!(h.calls(), ["changed:moved.txt", "changed:moved.txt", "changed:moved.txt", "changed:dir"]);

        // Paths follow renames of directories above a file the kernel already knows.
        fs::create_dir_all(fx.p("p/q")).unwrap();
        fs::write(fx.p("p/q/f"), b"1").unwrap();
        fs::rename(fx.p("p"), fx.p("r")).unwrap();
        h.clear();
        fs::write(fx.p("r/q/f"), b"2").unwrap();
        assert!(eventually(|| h.calls().iter().any(|c| c == "released:r/q/f")), "{:?}", h.calls());
    });
}

#[test]
fn waiting_fsyncs_do_not_stall_the_mount() {
    both(|fx| {
        // More fsyncs waiting for their commit than the mount has request threads.
        let n = MountOptions::default().threads + 2;
        let mut waiting = Vec::new();
        for i in 0..n {
            let p = fx.p(&format!("slow{i}"));
            fs::write(&p, b"x").unwrap();
            waiting.push(std::thread::spawn(move || File::open(&p).unwrap().sync_all()));
        }
        assert!(eventually(|| fx.hooks.calls().iter().filter(|c| c.starts_with("fsync:slow")).count() == n));
        // Meanwhile the mount still serves.
        let (tx, rx) = std::sync::mpsc::channel();
        let (a, b) = (fx.p("other"), fx.w("other"));
        std::thread::spawn(move || {
            fs::write(&a, b"y").unwrap();
            tx.send(fs::read(&b).unwrap()).unwrap();
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60));
        fx.hooks.open_gate();
        assert_eq!(got.expect("the mount stalled while fsyncs waited"), b"y");
        for w in waiting {
            w.join().unwrap().unwrap();
        }
    });
}

#[test]
fn lake_info_control_and_views() {
    both(|fx| {
        assert_eq!(fs::read(fx.p(".lake/info")).unwrap(), b"{\"volume\":\"test\"}");
        assert!(OpenOptions::new().write(true).open(fx.p(".lake/info")).is_err());
        let mut c = OpenOptions::new().read(true).write(true).open(fx.p(".lake/control")).unwrap();
        c.write_all(b"{\"op\":\"flush\"}").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(reply, "{\"ok\":true,\"len\":14}");
        assert!(fx.hooks.calls().iter().any(|x| x == "control:{\"op\":\"flush\"}"));
        // Reserved names at the root.
        assert_eq!(fs::create_dir(fx.p(".lake")).unwrap_err().raw_os_error(), Some(libc::EEXIST));
        assert_eq!(fs::create_dir(fx.p("views")).unwrap_err().raw_os_error(), Some(libc::EEXIST));
        assert!(!fx.w(".lake").exists());
        // Reachable by name, but not listed: tree walks stay out of history and views.
        let root: Vec<String> = fs::read_dir(&fx.mnt).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert!(root.is_empty(), "{root:?}");
        let views: Vec<String> = fs::read_dir(fx.p("views")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(views, ["pics"]);
        assert_eq!(fs::read_link(fx.p("views/pics/a.jpg")).unwrap(), Path::new("../../alice/a.jpg"));
        fs::create_dir(fx.p("alice")).unwrap();
        fs::write(fx.p("alice/a.jpg"), b"JPEG").unwrap();
        assert_eq!(fs::read(fx.p("views/pics/a.jpg")).unwrap(), b"JPEG");
        assert!(fs::read_link(fx.p("views/other")).is_err());
    });
}

#[test]
fn lake_at_shows_a_past_tree_read_only() {
    both(|fx| {
        // A past tree: import a small directory into the lake.
        let src = fx.dir.path().join("src");
        fs::create_dir_all(src.join("docs")).unwrap();
        fs::write(src.join("docs/old.txt"), b"as it was").unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(src.join("big.bin"), &big).unwrap();
        std::os::unix::fs::symlink("docs/old.txt", src.join("ln")).unwrap();
        let lake = &fx.hooks.lake;
        let w = lakefs::writer::WriteSession::begin(lake).unwrap();
        let (tree, meta, _) = lakefs::import::import_full(&w, &src, &Default::default(), &lakefs::progress::Silent).unwrap();
        w.finish(&[], &[]).unwrap();
        *fx.hooks.then.lock().unwrap() = Some((tree, meta));

        let at: Vec<String> = fs::read_dir(fx.p(".lake/at")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(at, ["then"]);
        assert_eq!(fs::read(fx.p(".lake/at/then/docs/old.txt")).unwrap(), b"as it was");
        assert_eq!(fs::read(fx.p(".lake/at/then/big.bin")).unwrap(), big);
        // Random access into a chunked file, across chunk boundaries.
        let mut f = File::open(fx.p(".lake/at/then/big.bin")).unwrap();
        f.seek(SeekFrom::Start(1_234_567)).unwrap();
        let mut part = vec![0u8; 700_000];
        f.read_exact(&mut part).unwrap();
        assert_eq!(part, big[1_234_567..1_934_567]);
        assert_eq!(fs::read_link(fx.p(".lake/at/then/ln")).unwrap(), Path::new("docs/old.txt"));
        assert_eq!(fs::read(fx.p(".lake/at/then/ln")).unwrap(), b"as it was");
        let mut names: Vec<String> =
            fs::read_dir(fx.p(".lake/at/then")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["big.bin", "docs", "ln"]);
        assert!(fs::metadata(fx.p(".lake/at/nothing-matches")).is_err());
        let e = OpenOptions::new().write(true).open(fx.p(".lake/at/then/docs/old.txt")).unwrap_err();
        assert!(matches!(e.raw_os_error(), Some(libc::EROFS) | Some(libc::EACCES)), "{e}");
        let e = fs::write(fx.p(".lake/at/then/new"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        let e = fs::remove_file(fx.p(".lake/at/then/docs/old.txt")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    });
}

#[test]
fn open_unlinked_file_keeps_working() {
    both(|fx| {
        let mut f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(fx.p("tmp")).unwrap();
        fs::remove_file(fx.p("tmp")).unwrap();
        f.write_all(b"still here").unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "still here");
        assert_eq!(f.metadata().unwrap().len(), 10);
    });
}

#[test]
fn o_nofollow_opens_regular_files() {
    // git opens every .gitignore with O_NOFOLLOW; only a symlink may give ELOOP.
    both(|fx| {
        fs::write(fx.p("plain"), b"x").unwrap();
        std::os::unix::fs::symlink("plain", fx.p("link")).unwrap();
        let mut s = String::new();
        OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(fx.p("plain")).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "x");
        let e = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(fx.p("link")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    });
}

#[test]
fn o_excl_and_o_trunc() {
    both(|fx| {
        fs::write(fx.p("e"), b"12345").unwrap();
        let e = OpenOptions::new().write(true).create_new(true).open(fx.p("e")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        fx.hooks.clear();
        OpenOptions::new().write(true).truncate(true).open(fx.p("e")).unwrap();
        assert_eq!(fs::metadata(fx.p("e")).unwrap().len(), 0);
        assert!(fx.hooks.calls().iter().any(|c| c == "changed:e"), "{:?}", fx.hooks.calls());
        let f = OpenOptions::new().write(true).create(true).truncate(false).mode(0o600).open(fx.p("m600")).unwrap();
        drop(f);
        assert_eq!(fs::metadata(fx.w("m600")).unwrap().mode() & 0o777, 0o600 & !current_umask());
    });
}

/// Waits (up to a minute) for `f` to hold: for effects the kernel delivers after
/// the syscall returned (RELEASE follows close(2)).
fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..6000 {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    f()
}

fn current_umask() -> u32 {
    let m = unsafe { libc::umask(0o022) };
    unsafe { libc::umask(m) };
    m
}
