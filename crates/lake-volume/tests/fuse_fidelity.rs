//! What a standard Linux file-system suite (xfstests' generic tests) checks and
//! the LAKE zone once got wrong, on a real mount, with FUSE passthrough and
//! without: setuid/setgid dropped by the kernel's rules, POSIX ACLs (default ACLs
//! over the umask, the kernel enforcing them), times (mmap writes, before 1970,
//! the atime options), the xattr limit, one inode number per entry, file handles
//! across a remount, and history out of tree walks. Each test names the suite's
//! case it follows.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
    both_with("", f)
}

fn both_with(options: &str, f: impl Fn(&Fixture)) {
    if !require_fuse() {
        return;
    }
    for passthrough in [true, false] {
        let fx = Fixture::with_options(passthrough, options);
        eprintln!("mount -o '{options}' with passthrough={passthrough}: kernel passthrough {}", fx.passthrough());
        f(&fx);
    }
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
}

/// Runs `script` with sh as `uid`:`gid` with supplementary `groups`, without capabilities.
fn as_user(uid: u32, gid: u32, groups: &[u32], script: &str) -> std::process::Output {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={uid}")).arg(format!("--regid={gid}"));
    if groups.is_empty() {
        c.arg("--clear-groups");
    } else {
        c.arg(format!("--groups={}", groups.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")));
    }
    c.args(["sh", "-c", script]).output().unwrap()
}

fn ok(o: std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A POSIX ACL in its xattr form: (tag, perm, id) entries, sorted as the kernel wants.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut e = entries.to_vec();
    e.sort();
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in e {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    b
}

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const NOID: u32 = u32::MAX;

fn hex(b: &[u8]) -> String {
    let mut s = "0x".to_string();
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

const OUTSIDER: u32 = 1000;

#[test]
fn writes_truncates_and_fallocates_drop_setuid_and_setgid() {
    // generic/683-687: by a caller without CAP_FSETID outside the file's group,
    // both bits go, including the setgid bit of a file that is not group-executable.
    both(|fx| {
        let f = fx.p("f");
        let ops = [
            ("write", "dd if=/dev/zero of={} bs=1 count=1 conv=notrunc status=none"),
            ("truncate", "truncate -s 1000 {}"),
            ("fallocate", "fallocate -o 65536 -l 65536 {}"),
        ];
        for (what, cmd) in ops {
            for start in [0o6666, 0o2666, 0o6676] {
                let _ = fs::remove_file(&f);
                fs::write(&f, vec![0u8; 196608]).unwrap();
                chmod(&f, start);
                ok(as_user(OUTSIDER, OUTSIDER, &[], &cmd.replace("{}", &f.display().to_string())));
                assert_eq!(mode(&f), start & 0o777, "{what} by an outsider of a {start:o} file");
                assert_eq!(mode(&fx.w("f")), start & 0o777, "{what}: the backing file too");
            }
        }
        // A member of the file's group (a supplementary one) keeps a non-executable setgid bit.
        fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, None, Some(4242)).unwrap();
        chmod(&f, 0o2666);
        ok(as_user(OUTSIDER, OUTSIDER, &[4242], &format!("echo y >> {}", f.display())));
        assert_eq!(mode(&f), 0o2666, "a member's write keeps setgid");
        // Root (CAP_FSETID) keeps both.
        chmod(&f, 0o6666);
        OpenOptions::new().append(true).open(&f).unwrap().write_all(b"z").unwrap();
        assert_eq!(mode(&f), 0o6666);
    });
}

#[test]
fn chmod_and_setfacl_drop_setgid_outside_the_group() {
    // generic/375: the owner outside the file's group cannot keep setgid by chmod
    // nor by setting an access ACL; inside the group it stays.
    both(|fx| {
        for dir in [false, true] {
            let t = fx.p("t");
            let _ = fs::remove_dir(&t).or_else(|_| fs::remove_file(&t));
            if dir {
                fs::create_dir(&t).unwrap();
            } else {
                File::create(&t).unwrap();
            }
            std::os::unix::fs::chown(&t, Some(100), Some(100)).unwrap();
            let full = hex(&acl(&[(USER_OBJ, 7, NOID), (GROUP_OBJ, 7, NOID), (OTHER, 7, NOID)]));
            let setfacl = format!("setfattr -n system.posix_acl_access -v {full} {}", t.display());
            let chmod_cmd = format!("chmod 2777 {}", t.display());
            for (gid, kept) in [(100, 0o2777), (101, 0o777)] {
                chmod(&t, 0o2755);
                ok(as_user(100, gid, &[], &chmod_cmd));
                assert_eq!(mode(&t), kept, "chmod 2777 by 100:{gid} (dir {dir})");
                chmod(&t, 0o2755);
                ok(as_user(100, gid, &[], &setfacl));
                assert_eq!(mode(&t), kept, "setfacl u::rwx,g::rwx,o::rwx by 100:{gid} (dir {dir})");
            }
            let o = as_user(101, 101, &[], &chmod_cmd);
            assert!(!o.status.success(), "chmod by someone else than the owner");
        }
    });
}

#[test]
fn default_acls_win_over_the_umask() {
    both(|fx| {
        // generic/099: a default ACL u::r-x,g::r--,o::--- gives -r--r----- whatever the umask.
        let d = fx.p("acldir");
        fs::create_dir(&d).unwrap();
        chmod(&d, 0o777);
        xattr::set(&d, "system.posix_acl_default", &acl(&[(USER_OBJ, 5, NOID), (GROUP_OBJ, 4, NOID), (OTHER, 0, NOID)])).unwrap();
        for (umask, name) in [("0", "file2"), ("722", "file3")] {
            ok(as_user(0, 0, &[], &format!("umask {umask}; : > {}/{name}", d.display())));
            assert_eq!(mode(&d.join(name)), 0o440, "umask {umask} under a default ACL");
        }
        // Without a default ACL the umask applies.
        ok(as_user(0, 0, &[], &format!("umask 027; : > {0}/plain; mkdir {0}/plaindir", fx.mnt.display())));
        assert_eq!(mode(&fx.p("plain")), 0o640);
        assert_eq!(mode(&fx.p("plaindir")), 0o750);

        // generic/319: inherited entries keep their bits (group rwx, not r-x from the umask).
        let td = fx.p("td");
        fs::create_dir(&td).unwrap();
        xattr::set(&td, "system.posix_acl_default", &acl(&[(USER_OBJ, 7, NOID), (GROUP_OBJ, 7, NOID), (OTHER, 0, NOID)])).unwrap();
        ok(as_user(0, 0, &[], &format!("umask 022; mkdir {}/sub", td.display())));
        assert_eq!(mode(&td.join("sub")), 0o770);
        assert!(xattr::get(td.join("sub"), "system.posix_acl_default").unwrap().is_some(), "subdirectories inherit the default ACL");

        // generic/444: a setgid directory with a default ACL: new subdirectories are
        // drwxrwsr-x whoever (in the group or not) makes them.
        let sg = fx.p("sg");
        fs::create_dir(&sg).unwrap();
        xattr::set(
            &sg,
            "system.posix_acl_default",
            &acl(&[(USER_OBJ, 7, NOID), (USER, 7, 101), (GROUP_OBJ, 5, NOID), (MASK, 7, NOID), (OTHER, 5, NOID)]),
        )
        .unwrap();
        std::os::unix::fs::chown(&sg, Some(100), Some(100)).unwrap();
        chmod(&sg, 0o2755);
        ok(as_user(100, 100, &[], &format!("umask 022; mkdir {}/s1", sg.display())));
        ok(as_user(100, 101, &[], &format!("umask 022; mkdir {}/s2", sg.display())));
        assert_eq!(mode(&sg.join("s1")), 0o2775);
        assert_eq!(mode(&sg.join("s2")), 0o2775);
    });
}

#[test]
fn the_kernel_enforces_acls() {
    // generic/099's access checks: a named entry denies or grants what the mode bits would not.
    both(|fx| {
        let denied = fx.p("denied");
        fs::write(&denied, b"secret").unwrap();
        chmod(&denied, 0o644);
        xattr::set(
            &denied,
            "system.posix_acl_access",
            &acl(&[(USER_OBJ, 6, NOID), (USER, 0, OUTSIDER), (GROUP_OBJ, 4, NOID), (MASK, 4, NOID), (OTHER, 4, NOID)]),
        )
        .unwrap();
        assert!(!as_user(OUTSIDER, OUTSIDER, &[], &format!("cat {}", denied.display())).status.success());
        assert!(as_user(OUTSIDER + 1, OUTSIDER + 1, &[], &format!("cat {}", denied.display())).status.success());
        let granted = fx.p("granted");
        fs::write(&granted, b"shared").unwrap();
        chmod(&granted, 0o600);
        xattr::set(
            &granted,
            "system.posix_acl_access",
            &acl(&[(USER_OBJ, 6, NOID), (USER, 4, OUTSIDER), (GROUP_OBJ, 0, NOID), (MASK, 4, NOID), (OTHER, 0, NOID)]),
        )
        .unwrap();
        let o = as_user(OUTSIDER, OUTSIDER, &[], &format!("cat {}", granted.display()));
        assert_eq!(o.stdout, b"shared", "{}", String::from_utf8_lossy(&o.stderr));
        // The mask is the group class bits of the mode.
        assert_eq!(mode(&granted), 0o640);
    });
}

fn set_times(p: &Path, sec: i64, nsec: i64) -> i32 {
    let t = [libc::timespec { tv_sec: sec, tv_nsec: nsec }, libc::timespec { tv_sec: sec, tv_nsec: nsec }];
    let c = cstr(p);
    if unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), 0) } == 0 {
        0
    } else {
        errno()
    }
}

#[test]
fn times_before_1970_and_far_ahead() {
    // generic/258 and the full signed range: what ext4 stores comes back, unwrapped.
    both(|fx| {
        fs::write(fx.p("t"), b"").unwrap();
        fs::write(fx.w("ref"), b"").unwrap();
        for (sec, nsec) in [(-1, 500_000_000), (-315_615_540, 0), (-2, 1), (8_589_934_592, 7), (i64::MIN, 0), (i64::MAX, 999_999_999)] {
            assert_eq!(set_times(&fx.p("t"), sec, nsec), 0, "utimensat {sec}.{nsec}");
            // The same call on the backing ext4 directly: what it keeps (it clamps to 1901-2446).
            assert_eq!(set_times(&fx.w("ref"), sec, nsec), 0);
            let (m, r) = (fs::metadata(fx.p("t")).unwrap(), fs::metadata(fx.w("ref")).unwrap());
            assert_eq!(
                (m.mtime(), m.mtime_nsec(), m.atime(), m.atime_nsec()),
                (r.mtime(), r.mtime_nsec(), r.atime(), r.atime_nsec()),
                "{sec}.{nsec}"
            );
        }
        assert_eq!(set_times(&fx.p("t"), -1, 500_000_000), 0);
        let m = fs::metadata(fx.p("t")).unwrap();
        assert_eq!((m.mtime(), m.mtime_nsec()), (-1, 500_000_000), "-0.5 s is 1969-12-31T23:59:59.5");
    });
}

/// mtime and ctime as `stat -c %Y %Z` asks for them (statx with just those fields).
fn statx_mc(p: &Path) -> (i64, i64) {
    let mut x: libc::statx = unsafe { std::mem::zeroed() };
    let c = cstr(p);
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), 0, libc::STATX_MTIME | libc::STATX_CTIME, &mut x) };
    assert_eq!(r, 0, "statx errno {}", errno());
    (x.stx_mtime.tv_sec, x.stx_ctime.tv_sec)
}

#[test]
fn writes_through_a_shared_mmap_update_mtime_and_ctime() {
    // generic/080: stat, then mmap, read and write a page, then stat again.
    both(|fx| {
        let p = fx.p("m");
        fs::write(&p, vec![b'x'; 4096]).unwrap();
        // An old mtime instead of a sleep; the kernel caches what it is told here.
        assert_eq!(set_times(&p, 1_000_000_000, 0), 0);
        let (m1, c1) = statx_mc(&p);
        assert_eq!(m1, 1_000_000_000);
        std::thread::sleep(Duration::from_millis(1100));
        let f = OpenOptions::new().read(true).write(true).open(&p).unwrap();
        unsafe {
            let m = libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0);
            assert_ne!(m, libc::MAP_FAILED, "mmap errno {}", errno());
            let b = m as *mut u8;
            assert_eq!(*b, b'x');
            *b = b'y';
            libc::munmap(m, 4096);
        }
        drop(f);
        let (m2, c2) = statx_mc(&p);
        assert!(m2 > m1, "mtime not updated after a mapped write ({m1} -> {m2})");
        assert!(c2 > c1, "ctime not updated after a mapped write ({c1} -> {c2})");
    });
}

fn atime(p: &Path) -> i64 {
    fs::metadata(p).unwrap().atime()
}

/// A script that is executed, a file that is read and a directory that is listed,
/// all with an atime before their mtime (which relatime would move).
fn access_all(fx: &Fixture) -> (i64, i64, i64) {
    fs::create_dir(fx.p("d")).unwrap();
    fs::write(fx.p("d/s.sh"), b"#!/bin/sh\necho ran\n").unwrap();
    chmod(&fx.p("d/s.sh"), 0o755);
    fs::write(fx.p("d/r"), b"data").unwrap();
    let old = 1_000_000_000;
    for p in ["d/s.sh", "d/r", "d"] {
        let t = [libc::timespec { tv_sec: old, tv_nsec: 0 }, libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }];
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, cstr(&fx.p(p)).as_ptr(), t.as_ptr(), 0) }, 0);
    }
    let out = Command::new(fx.p("d/s.sh")).output().unwrap();
    assert_eq!(out.stdout, b"ran\n");
    assert_eq!(fs::read(fx.p("d/r")).unwrap(), b"data");
    assert_eq!(fs::read_dir(fx.p("d")).unwrap().count(), 2);
    (atime(&fx.p("d/s.sh")), atime(&fx.p("d/r")), atime(&fx.p("d")))
}

#[test]
fn atime_follows_the_mount_options() {
    let old = 1_000_000_000;
    // By default (the backing relatime): reads and exec move an atime older than mtime.
    both(|fx| {
        let (x, r, d) = access_all(fx);
        assert!(d > old, "relatime moves an old directory atime: {d}");
        // Without passthrough, data the kernel has cached (just written) is read
        // without a request: the backing file is not read, its atime stays.
        if fx.passthrough() {
            assert!(x > old && r > old, "relatime moves old atimes: {x} {r}");
        }
    });
    // noatime: exec, read and listing move nothing.
    both_with("noatime", |fx| assert_eq!(access_all(fx), (old, old, old), "noatime"));
    // nodiratime: directories stay, files move.
    both_with("nodiratime", |fx| {
        let (x, r, d) = access_all(fx);
        if fx.passthrough() {
            assert!(x > old && r > old, "files under nodiratime: {x} {r}");
        }
        assert_eq!(d, old, "a directory under nodiratime");
    });
    // strictatime: an atime newer than mtime moves too (relatime would keep it).
    both_with("strictatime,lazytime", |fx| {
        fs::write(fx.p("f"), b"x").unwrap();
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 5;
        let ts = [libc::timespec { tv_sec: t, tv_nsec: 0 }, libc::timespec { tv_sec: t - 100, tv_nsec: 0 }];
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, cstr(&fx.p("f")).as_ptr(), ts.as_ptr(), 0) }, 0);
        fs::read(fx.p("f")).unwrap();
        if fx.passthrough() {
            assert!(atime(&fx.p("f")) > t, "strictatime: every read moves atime");
        }
    });
}

#[test]
fn xattrs_as_many_as_on_the_backing_ext4() {
    // generic/020: the limit is the backing ext4's (one block of attributes per
    // inode); the mount takes exactly as many, and says ENOSPC past them.
    both(|fx| {
        fs::write(fx.p("x"), b"").unwrap();
        fs::write(fx.w("y"), b"").unwrap();
        let fill = |p: &Path| -> usize {
            for i in 0..10_000 {
                if let Err(e) = xattr::set(p, format!("user.attribute_{i}"), format!("value_{i}").as_bytes()) {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    return i;
                }
            }
            10_000
        };
        let (mounted, backing) = (fill(&fx.p("x")), fill(&fx.w("y")));
        eprintln!("xattrs per file: {mounted} through the mount, {backing} on the backing ext4");
        assert_eq!(mounted, backing);
        assert!(mounted >= 100);
        assert_eq!(xattr::list(fx.p("x")).unwrap().count(), mounted);
        // A value as large as ext4's block holds goes through whole.
        fs::write(fx.p("b"), b"").unwrap();
        let big = vec![b'v'; 3000];
        xattr::set(fx.p("b"), "user.big", &big).unwrap();
        assert_eq!(xattr::get(fx.p("b"), "user.big").unwrap(), Some(big));
    });
}

/// `d_ino` of every entry of `dir`, "." and ".." included.
fn dirents(dir: &Path) -> Vec<(String, u64)> {
    let c = cstr(dir);
    let d = unsafe { libc::opendir(c.as_ptr()) };
    assert!(!d.is_null(), "opendir {}: errno {}", dir.display(), errno());
    let mut out = Vec::new();
    loop {
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) }.to_string_lossy().into_owned();
        out.push((name, unsafe { (*e).d_ino }));
    }
    unsafe { libc::closedir(d) };
    out
}

#[test]
fn readdir_inode_numbers_are_stat_inode_numbers() {
    // overlay/017-style: d_ino equals st_ino for every entry, "." and ".." too.
    both(|fx| {
        fs::create_dir_all(fx.p("a/b")).unwrap();
        fs::write(fx.p("a/f"), b"1").unwrap();
        fs::hard_link(fx.p("a/f"), fx.p("a/b/hard")).unwrap();
        std::os::unix::fs::symlink("f", fx.p("a/l")).unwrap();
        let fifo = cstr(&fx.p("a/fifo"));
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        for dir in ["", "a", "a/b", ".lake"] {
            let d = fx.p(dir);
            for (name, d_ino) in dirents(&d) {
                if dir.is_empty() && name == ".." {
                    // Above the mount's root is another file system (as for any mount point).
                    continue;
                }
                let st = fs::symlink_metadata(d.join(&name)).unwrap();
                assert_eq!(d_ino, st.ino(), "d_ino of {dir}/{name}");
            }
        }
        assert_eq!(fs::metadata(&fx.mnt).unwrap().ino(), 1, "the root is node 1");
        assert_eq!(
            fs::metadata(fx.p("a/f")).unwrap().ino(),
            fs::metadata(fx.w("a/f")).unwrap().ino(),
            "node ids are backing inode numbers"
        );
    });
}

/// name_to_handle_at of `p`.
fn handle_of(p: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; 8 + 128];
    buf[..4].copy_from_slice(&128u32.to_ne_bytes());
    let mut mount_id = 0;
    let c = cstr(p);
    let r = unsafe { libc::name_to_handle_at(libc::AT_FDCWD, c.as_ptr(), buf.as_mut_ptr().cast(), &mut mount_id, 0) };
    assert_eq!(r, 0, "name_to_handle_at {}: errno {}", p.display(), errno());
    buf
}

fn open_handle(mnt: &Path, h: &[u8], flags: i32) -> Result<OwnedFd, i32> {
    let m = File::open(mnt).unwrap();
    let mut h = h.to_vec();
    let fd = unsafe { libc::open_by_handle_at(m.as_raw_fd(), h.as_mut_ptr().cast(), flags) };
    if fd < 0 {
        Err(errno())
    } else {
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

#[test]
fn file_handles_survive_a_remount() {
    // generic/426 and 477: open_by_handle_at after a remount (a new daemon),
    // after a rename of the parent, and ESTALE for a deleted file.
    if !require_fuse() {
        return;
    }
    for passthrough in [true, false] {
        let mut fx = Fixture::new(passthrough);
        fs::create_dir_all(fx.p("dir/sub")).unwrap();
        fs::write(fx.p("dir/sub/f"), b"by handle").unwrap();
        fs::write(fx.p("gone"), b"x").unwrap();
        let (hf, hd, hg) = (handle_of(&fx.p("dir/sub/f")), handle_of(&fx.p("dir/sub")), handle_of(&fx.p("gone")));
        let dir_ino = fs::metadata(fx.p("dir/sub")).unwrap().ino();
        fs::remove_file(fx.p("gone")).unwrap();
        fs::rename(fx.p("dir"), fx.p("moved")).unwrap();
        fx.remount();
        let mut s = String::new();
        File::from(open_handle(&fx.mnt, &hf, libc::O_RDONLY).expect("file handle after a remount")).read_to_string(&mut s).unwrap();
        assert_eq!(s, "by handle");
        let d = File::from(open_handle(&fx.mnt, &hd, libc::O_RDONLY | libc::O_DIRECTORY).expect("directory handle"));
        assert_eq!(d.metadata().unwrap().ino(), dir_ino);
        assert_eq!(open_handle(&fx.mnt, &hg, libc::O_RDONLY).unwrap_err(), libc::ESTALE, "a deleted file's handle");
        // A file reached only by its handle is reported under its real path.
        fx.hooks.clear();
        let mut w = File::from(open_handle(&fx.mnt, &hf, libc::O_WRONLY).unwrap());
        w.write_all(b"changed").unwrap();
        drop(w);
        assert!(eventually(|| fx.hooks.calls().iter().any(|c| c == "released:moved/sub/f")), "{:?}", fx.hooks.calls());
        assert_eq!(fs::read(fx.w("moved/sub/f")).unwrap(), b"changedle");
    }
}

#[test]
fn history_and_views_stay_out_of_tree_walks() {
    // find, du, rsync -a and rm -rf of everything listed see the working tree only.
    both(|fx| {
        fs::create_dir_all(fx.p("docs/old")).unwrap();
        fs::write(fx.p("docs/a.txt"), b"a").unwrap();
        fs::write(fx.p(".profile"), b"p").unwrap();
        let count = |root: &Path| {
            let o = Command::new("find").arg(root).output().unwrap();
            assert!(o.status.success());
            o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count()
        };
        assert_eq!(count(&fx.mnt), count(&fx.work));
        let names: Vec<_> = fs::read_dir(&fx.mnt).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(!names.iter().any(|n| n == ".lake" || n == "views"), "{names:?}");
        // Still there by name.
        assert!(fx.p(".lake/info").is_file());
        assert_eq!(fs::read_dir(fx.p(".lake/at")).unwrap().count(), 1);
        assert!(fx.p("views/pics").is_dir());
        let o = Command::new("sh").arg("-c").arg(format!("rm -rf {0}/* {0}/.[!.]*", fx.mnt.display())).output().unwrap();
        assert!(o.status.success(), "rm -rf of everything listed: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(fs::read_dir(&fx.work).unwrap().count(), 0);
        assert!(fx.p(".lake/info").is_file());
    });
}

#[test]
fn a_waiting_control_request_does_not_hold_up_others() {
    // A flush or commit waits for the committer; meanwhile another program's
    // request (a status) and the mount itself answer.
    both(|fx| {
        let request = |p: std::path::PathBuf, body: &'static [u8]| {
            std::thread::spawn(move || {
                let mut c = OpenOptions::new().read(true).write(true).open(p).unwrap();
                c.write_all(body).unwrap();
                let mut r = String::new();
                c.read_to_string(&mut r).unwrap();
                r
            })
        };
        // However the test ends, the waiting requests are let go (else the test hangs).
        struct Release<'a>(&'a crate::fuse_common::Recorder);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.open_gate()
            }
        }
        let release = Release(&fx.hooks);
        let n = MountOptions::default().threads + 2;
        let waiting: Vec<_> = (0..n).map(|_| request(fx.p(".lake/control"), b"slow")).collect();
        assert!(eventually(|| fx.hooks.calls().iter().filter(|c| *c == "control:slow").count() == n), "{:?}", fx.hooks.calls());
        let (tx, rx) = std::sync::mpsc::channel();
        let (c, a, b) = (fx.p(".lake/control"), fx.p("other"), fx.w("other"));
        std::thread::spawn(move || {
            let answer = request(c, b"{\"op\":\"status\"}").join().unwrap();
            fs::write(&a, b"y").unwrap();
            tx.send((answer, fs::read(&b).unwrap())).unwrap();
        });
        let got = rx.recv_timeout(Duration::from_secs(60));
        drop(release);
        let (answer, data) = got.expect("requests waited behind the waiting control requests");
        assert_eq!((answer.as_str(), data.as_slice()), ("{\"ok\":true,\"len\":15}", &b"y"[..]));
        for w in waiting {
            assert_eq!(w.join().unwrap(), "{\"ok\":true,\"len\":4}");
        }
    });
}

/// Waits (up to a minute) for `f` to hold: for effects the kernel delivers after
/// the syscall returned (RELEASE follows close(2)).
fn eventually(f: impl Fn() -> bool) -> bool {
    for _ in 0..6000 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
