//! Deploying generations onto a real FAT file system: an image made with
//! mkfs.vfat, attached with losetup and mounted, against a real lake.
#![allow(unsafe_code)] // the tests call the syscalls they check (utimensat, fallocate, flock, ...) directly

use std::path::{Path, PathBuf};
use std::process::Command;

use lake_boot::counting::State;
use lake_boot::deploy::{deploy_generation, DeployOptions};
use lake_boot::esp::Esp;
use lake_boot::{retention, Error};
use lake_posix::generation;
use lakefs::progress::Silent;

/// A FAT image made with mkfs.vfat and mounted: by the kernel through a loop
/// device where it has vfat, else through FUSE (fusefat, read-write); the
/// on-disk format is the same. Undone on drop.
struct Vfat {
    img: PathBuf,
    mnt: PathBuf,
    /// The loop device, when the kernel mounted it.
    dev: Option<String>,
    mounted: bool,
}

fn kernel_has_vfat() -> bool {
    let known =
        |t: &str| std::fs::read_to_string("/proc/filesystems").is_ok_and(|f| f.lines().any(|l| l.split_whitespace().last() == Some(t)));
    known("vfat") || (Command::new("modprobe").arg("vfat").output().is_ok_and(|o| o.status.success()) && known("vfat"))
}

impl Vfat {
    /// `None` (with the reason printed) when this machine cannot mount one.
    fn new(dir: &Path, mib: u64) -> Option<Vfat> {
        let img = dir.join(format!("esp-{mib}.img"));
        let f = std::fs::File::create(&img).expect("create image");
        f.set_len(mib << 20).expect("size image");
        // No volume label: fusefat would list its directory entry as a file.
        run("mkfs.vfat", &[img.to_str().expect("utf-8")]);
        let mnt = dir.join(format!("esp-{mib}"));
        std::fs::create_dir_all(&mnt).expect("mkdir");
        let mut v = Vfat { img, mnt, dev: None, mounted: false };
        if kernel_has_vfat() {
            if !Path::new("/dev/loop-control").exists() {
                eprintln!("skipped: /dev/loop-control is missing (no loop devices here), so no vfat image can be mounted");
                return None;
            }
            let out = Command::new("losetup").args(["-f", "--show"]).arg(&v.img).output().expect("losetup");
            assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
            let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            v.dev = Some(dev.clone());
            run("mount", &["-t", "vfat", &dev, v.mnt.to_str().expect("utf-8")]);
        } else {
            // This kernel has no vfat (e.g. a VM kernel without modules).
            let fuse = Command::new("fusefat").args(["-o", "rw+"]).arg(&v.img).arg(&v.mnt).output();
            match fuse {
                Ok(o) if o.status.success() => {}
                Ok(o) => panic!("fusefat -o rw+ {}: {}", v.img.display(), String::from_utf8_lossy(&o.stderr)),
                Err(e) => panic!("the kernel has no vfat and fusefat cannot run ({e}): apt-get install fusefat"),
            }
        }
        v.mounted = true;
        Some(v)
    }

    fn umount(&mut self) {
        if self.mounted {
            // umount (as root) also ends a FUSE mount; fusefat's is fuseblk,
            // so it returns after the driver has written the FAT back.
            let st = Command::new("umount").arg(&self.mnt).status();
            assert!(st.is_ok_and(|s| s.success()), "unmounting {}", self.mnt.display());
            self.mounted = false;
        }
    }

    /// Unmounts and checks the file system with fsck.vfat (read-only).
    fn unmount_and_check(&mut self) {
        self.umount();
        let out = Command::new("fsck.vfat").arg("-n").arg(&self.img).output().expect("fsck.vfat");
        assert!(
            out.status.success(),
            "fsck.vfat -n {}: {}{}",
            self.img.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Vfat {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
        }
        if let Some(dev) = &self.dev {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}

fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(out.status.success(), "{prog} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

use lake_testkit::bytes;

fn file(dir: &Path, name: &str, seed: u64, n: usize) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes(seed, n)).expect("write");
    p
}

/// Commits version `v` of a small root tree to posix/main (loose, as the POSIX zone is).
fn commit(lake: &lakefs::Lake, src: &Path, v: u32) -> lakefs::ObjectId {
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::create_dir_all(src.join("usr/bin")).expect("mkdir");
    std::fs::write(src.join("etc/version"), format!("{v}\n")).expect("write");
    std::fs::write(src.join("usr/bin/tool"), bytes(99, 100_000)).expect("write");
    lake_testkit::posix::commit(lake, src, &format!("v{v}"), true).commit
}

fn entry_names(esp: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(esp.join("loader/entries"))
        .expect("entries dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn numbers(lake: &lakefs::Lake) -> Vec<u32> {
    generation::list(lake).expect("list").iter().map(|g| g.number).collect()
}

fn deploy_dirs(lake: &lakefs::Lake) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(lake.root().join("deploy"))
        .expect("deploy dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn five_generations_keep_three_share_kernels_and_count_boots() {
    let t = tempfile::tempdir().expect("tempdir");
    let Some(mut vfat) = Vfat::new(t.path(), 64) else { return };
    let esp_dir = vfat.mnt.clone();
    let (src, root) = (t.path().join("src"), t.path().join("lake"));
    let lake = lakefs::Lake::create(&root, &Default::default()).expect("lake");
    generation::set_keep(&lake, 3).expect("keep");
    let k1 = file(t.path(), "vmlinuz-1", 1, 1_500_000);
    let k2 = file(t.path(), "vmlinuz-2", 2, 1_600_000);
    let initrd = file(t.path(), "initrd", 3, 3_000_000);
    let opts = DeployOptions { esp: Some(esp_dir.clone()), ..DeployOptions::default() };

    // Generation 1 as the installer makes it: uncounted, kernel given.
    let d1 = deploy_generation(
        &lake,
        commit(&lake, &src, 1),
        &DeployOptions {
            tries: None,
            kernel: Some(k1.clone()),
            initrd: Some(initrd.clone()),
            cmdline: Some("console=ttyS0 quiet".into()),
            ..opts.clone()
        },
        &Silent,
    )
    .expect("deploy 1");
    assert_eq!((d1.generation, d1.entry.as_str()), (1, "/loader/entries/lake-1.conf"));
    // Generation 2, pinned, copies kernel, initrd and command line from entry 1.
    let d2 = deploy_generation(&lake, commit(&lake, &src, 2), &DeployOptions { pinned: true, ..opts.clone() }, &Silent).expect("deploy 2");
    assert_eq!(d2.entry, "/loader/entries/lake-2+3.conf");
    assert_eq!((d2.kernel.as_str(), d2.initrd.as_str()), (d1.kernel.as_str(), d1.initrd.as_str()));
    let e2 = std::fs::read_to_string(esp_dir.join("loader/entries/lake-2+3.conf")).expect("entry 2");
    assert!(e2.contains("\noptions lake.gen=2 rw console=ttyS0 quiet\n"), "{e2}");
    // Every try of generation 2 failed (what systemd-boot leaves behind).
    std::fs::rename(esp_dir.join("loader/entries/lake-2+3.conf"), esp_dir.join("loader/entries/lake-2+0-3.conf")).expect("rename");

    let d3 = deploy_generation(&lake, commit(&lake, &src, 3), &opts, &Silent).expect("deploy 3");
    assert!(d3.pruned.is_empty());
    // Generation 3 booted fine: systemd-bless-boot drops its counter.
    std::fs::rename(esp_dir.join("loader/entries/lake-3+3.conf"), esp_dir.join("loader/entries/lake-3.conf")).expect("rename");

    // Generation 4 brings a new kernel; 1 is now beyond the newest three.
    let d4 = deploy_generation(&lake, commit(&lake, &src, 4), &DeployOptions { kernel: Some(k2.clone()), ..opts.clone() }, &Silent)
        .expect("deploy 4");
    assert_eq!(d4.pruned, [1]);
    assert_ne!(d4.kernel, d1.kernel);
    // Generation 5 copies the newest *good* entry (3), not the unproven 4.
    let d5 = deploy_generation(&lake, commit(&lake, &src, 5), &opts, &Silent).expect("deploy 5");
    assert_eq!(d5.kernel, d1.kernel);
    assert!(d5.pruned.is_empty(), "2 is beyond the newest three but pinned: {:?}", d5.pruned);

    assert_eq!(numbers(&lake), [2, 3, 4, 5]);
    assert_eq!(deploy_dirs(&lake), ["2", "3", "4", "5"]);
    assert_eq!(generation::default(&lake).expect("default"), Some(5));
    assert_eq!(entry_names(&esp_dir), ["lake-2+0-3.conf", "lake-3.conf", "lake-4+3.conf", "lake-5+3.conf"]);
    let esp = Esp::find(Some(&esp_dir)).expect("esp");
    let states: Vec<(u32, State)> = esp.entries().expect("entries").iter().map(|e| (e.generation, e.state)).collect();
    assert_eq!(states, [(2, State::Bad), (3, State::Good), (4, State::Counting { left: 3 }), (5, State::Counting { left: 3 })]);
    // Shared by hash: two kernels and one initrd on the ESP for four entries.
    let mut stored = files_under(&esp_dir.join("lake"));
    stored.sort_by_key(|p| p.rsplit('/').next().map(str::to_owned));
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored.iter().filter(|p| p.ends_with("/vmlinuz")).count(), 2);
    assert_eq!(std::fs::read(esp.host_path(&d4.kernel)).expect("k2"), std::fs::read(&k2).expect("k2 src"));

    // Unpinned, 2 goes at the next prune, whatever its counter says.
    generation::unpin(&lake, 2).expect("unpin");
    let r = retention::prune(&lake, &esp, 3, &[], &[]).expect("prune");
    assert_eq!(r.generations(), [2]);
    assert_eq!(r.removed[0].entries, ["/loader/entries/lake-2+0-3.conf"]);
    assert!(r.boot_files_dropped.is_empty(), "kernel 1 is still used by 3 and 5");
    // Removing 4 drops the only entry that boots kernel 2, and kernel 2 with it.
    let r = retention::remove(&lake, &esp, 4, &[]).expect("remove 4");
    assert_eq!(r.boot_files_dropped.len(), 1);
    assert!(!esp.host_path(&d4.kernel).exists() && esp.host_path(&d5.kernel).exists());
    // The default is refused, and nothing is touched.
    let e = retention::remove(&lake, &esp, 5, &[]).expect_err("default");
    assert!(e.to_string().contains("generation 5 is the default"), "{e}");
    assert_eq!(entry_names(&esp_dir), ["lake-3.conf", "lake-5+3.conf"]);
    assert_eq!(numbers(&lake), [3, 5]);
    assert!(lakefs::verify::verify(&lake, &Silent).expect("verify").clean());
    vfat.unmount_and_check();
}

#[test]
fn a_full_esp_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let Some(mut vfat) = Vfat::new(t.path(), 8) else { return };
    let (src, root) = (t.path().join("src"), t.path().join("lake"));
    let lake = lakefs::Lake::create(&root, &Default::default()).expect("lake");
    let kernel = file(t.path(), "vmlinuz", 1, 5 << 20);
    let initrd = file(t.path(), "initrd", 2, 4 << 20);
    let c = commit(&lake, &src, 1);
    let opts = DeployOptions { esp: Some(vfat.mnt.clone()), kernel: Some(kernel), initrd: Some(initrd), ..DeployOptions::default() };
    let e = deploy_generation(&lake, c, &opts, &Silent).expect_err("does not fit");
    let msg = e.to_string();
    assert!(matches!(e, Error::NoSpace { what: "ESP", .. }), "{msg}");
    assert!(msg.contains("free") && msg.contains("needed"), "{msg}");
    // What to prune is lakectl's hint, not the library's message.
    assert!(!msg.contains("lakectl"), "{msg}");
    assert!(msg.contains("/vmlinuz (5.0 MiB"), "names what does not fit: {msg}");
    // Nothing written: no generation in the lake, no file on the ESP.
    assert!(numbers(&lake).is_empty());
    assert!(!root.join("deploy").exists() || deploy_dirs(&lake).is_empty());
    assert!(files_under(&vfat.mnt).is_empty(), "{:?}", files_under(&vfat.mnt));
    vfat.unmount_and_check();
}

#[test]
fn a_short_esp_prunes_beyond_retention_first() {
    let t = tempfile::tempdir().expect("tempdir");
    let Some(mut vfat) = Vfat::new(t.path(), 16) else { return };
    let esp_dir = vfat.mnt.clone();
    let (src, root) = (t.path().join("src"), t.path().join("lake"));
    let lake = lakefs::Lake::create(&root, &Default::default()).expect("lake");
    let k: Vec<PathBuf> = (1..=3).map(|i| file(t.path(), &format!("vmlinuz-{i}"), i, 5 << 20)).collect();
    let initrd = file(t.path(), "initrd", 9, 2 << 20);
    let opts = DeployOptions { esp: Some(esp_dir.clone()), initrd: Some(initrd), ..DeployOptions::default() };
    for (i, kernel) in k.iter().take(2).enumerate() {
        let c = commit(&lake, &src, i as u32 + 1);
        deploy_generation(&lake, c, &DeployOptions { kernel: Some(kernel.clone()), ..opts.clone() }, &Silent).expect("deploy");
    }
    // Two 5 MiB kernels and the initrd on a 16 MiB ESP: a third kernel does
    // not fit until generation 1 (beyond a retention of 1) and its kernel go.
    generation::set_keep(&lake, 1).expect("keep");
    let c = commit(&lake, &src, 3);
    let d = deploy_generation(&lake, c, &DeployOptions { kernel: Some(k[2].clone()), ..opts.clone() }, &Silent).expect("deploy 3");
    assert_eq!(d.pruned, [1, 2], "1 before the deploy to make room, 2 after it");
    assert_eq!(numbers(&lake), [3]);
    assert_eq!(entry_names(&esp_dir), ["lake-3+3.conf"]);
    assert_eq!(files_under(&esp_dir.join("lake")).len(), 2, "only generation 3's kernel and initrd are left");
    vfat.unmount_and_check();
}

#[test]
fn a_full_lake_is_refused_before_anything_is_written() {
    let t = tempfile::tempdir().expect("tempdir");
    let mnt = t.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    run("mount", &["-t", "tmpfs", "-o", "size=16m", "lake-test", mnt.to_str().expect("utf-8")]);
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let (src, root, esp_dir) = (t.path().join("src"), mnt.join("lake"), t.path().join("esp"));
    std::fs::create_dir(&esp_dir).expect("mkdir");
    let lake = lakefs::Lake::create(&root, &Default::default()).expect("lake");
    // 200 directories: the checkout needs about 800 KiB of directory blocks.
    for i in 0..200 {
        std::fs::create_dir_all(src.join(format!("d{i}"))).expect("mkdir");
    }
    let c = commit(&lake, &src, 1);
    // Leave about 1 MiB free.
    let free = lake_boot::esp::free_space(&mnt).expect("statvfs");
    let filler = std::fs::File::create(mnt.join("filler")).expect("filler");
    // SAFETY: valid descriptor; allocates blocks without writing them.
    let r = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&filler), 0, 0, (free - (1 << 20)) as libc::off_t) };
    assert_eq!(r, 0, "fallocate: {}", std::io::Error::last_os_error());
    let kernel = file(t.path(), "vmlinuz", 1, 1000);
    let initrd = file(t.path(), "initrd", 2, 1000);
    let opts = DeployOptions { esp: Some(esp_dir.clone()), kernel: Some(kernel), initrd: Some(initrd), ..DeployOptions::default() };
    let e = deploy_generation(&lake, c, &opts, &Silent).expect_err("lake too full");
    let msg = e.to_string();
    assert!(matches!(e, Error::NoSpace { what: "lake file system", .. }), "{msg}");
    assert!(msg.contains("203 directories"), "200 + etc, usr, usr/bin: {msg}");
    // What to run about it is lakectl's hint, not the library's message.
    assert!(!msg.contains("lakectl"), "{msg}");
    assert!(numbers(&lake).is_empty());
    assert!(!root.join("deploy").exists() || deploy_dirs(&lake).is_empty());
    assert!(files_under(&esp_dir).is_empty());
    // With room again the same deploy goes through.
    drop(filler);
    std::fs::remove_file(mnt.join("filler")).expect("rm filler");
    let d = deploy_generation(&lake, c, &opts, &Silent).expect("deploy");
    assert_eq!(d.generation, 1);
    assert_eq!(entry_names(&esp_dir), ["lake-1+3.conf"]);
}
