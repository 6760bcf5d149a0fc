//! lake-installer end to end on image files: GPT (read back by sgdisk/sfdisk),
//! ESP (read back by mtools and fsck.fat), lake partition (fsck-lakefs, debugfs),
//! and the refusals. Needs root (device nodes, loop mounts for fsck-lakefs).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The signed loaders the installer takes from the rootfs (lake_boot::chain), and
/// where each goes on the ESP.
const LOADERS: [(&str, &str); 3] = [
    ("usr/lib/shim/shimx64.efi.signed", "/EFI/BOOT/BOOTX64.EFI"),
    ("usr/lib/shim/mmx64.efi.signed", "/EFI/BOOT/mmx64.efi"),
    ("usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed", "/EFI/BOOT/grubx64.efi"),
];

fn installer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lake-installer"))
}

/// `fsck-lakefs` belongs to the lakefs crate: `cargo build --workspace` puts it
/// beside lake-installer; `cargo test -p lake-installer` alone does not build it.
fn fsck_lakefs() -> PathBuf {
    let p = installer().with_file_name("fsck-lakefs");
    assert!(p.exists(), "{} is missing: build the workspace first (`cargo build --release --workspace`, as ci/test.sh does)", p.display());
    p
}

fn text(o: &Output) -> String {
    format!("--- stdout:\n{}\n--- stderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn install(args: &[&str]) -> Output {
    run(Command::new(installer()).arg("install").args(args))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
    root: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

/// A small rootfs with one of the interesting things each: nested dirs, a hard
/// link pair, a symlink, a char device, an xattr, a setuid file, odd owners,
/// a nanosecond mtime; plus dummy kernel and initrd files.
fn fixture() -> Fixture {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().to_owned();
    let root = dir.join("rootfs");
    for d in ["etc", "usr/bin", "usr/lib", "dev", "var/empty", "home"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/hostname"), b"lake\n").expect("write");
    std::fs::write(root.join("etc/os-release"), b"NAME=\"Lake OS\"\n").expect("write");
    std::fs::write(root.join("usr/bin/tool"), lake_testkit::bytes(1, 700_000)).expect("write");
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-alias")).expect("link");
    std::fs::write(root.join("usr/bin/su"), b"#!/bin/sh\n").expect("write");
    std::fs::set_permissions(root.join("usr/bin/su"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    std::os::unix::fs::symlink("../usr/lib", root.join("etc/lib-link")).expect("symlink");
    std::fs::write(root.join("usr/lib/owned"), b"x").expect("write");
    std::os::unix::fs::lchown(root.join("usr/lib/owned"), Some(1234), Some(5678)).expect("chown");
    xattr::set(root.join("etc/hostname"), "user.lake", b"test").expect("xattr");
    // Distinct contents, so a loader in the wrong place shows (nothing boots them here).
    for (i, (src, _)) in LOADERS.iter().enumerate() {
        std::fs::create_dir_all(root.join(src).parent().expect("parent")).expect("mkdir");
        std::fs::write(root.join(src), lake_testkit::bytes(20 + i as u64, 40_000 + i)).expect("write");
    }
    let st = run(Command::new("mknod").arg(root.join("dev/null")).args(["c", "1", "3"]));
    assert!(st.status.success(), "mknod (tests need root): {}", text(&st));
    let st = run(Command::new("touch").args(["-d", "2024-05-06 07:08:09.123456789"]).arg(root.join("etc/os-release")));
    assert!(st.status.success());
    let kernel = dir.join("vmlinuz");
    let initrd = dir.join("initrd.img");
    std::fs::write(&kernel, lake_testkit::bytes(2, 3 << 20)).expect("write");
    std::fs::write(&initrd, lake_testkit::bytes(3, 1 << 20)).expect("write");
    Fixture { _t: t, dir, root, kernel, initrd }
}

fn short_hash(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).expect("read")).to_hex()[..16].to_string()
}

/// A file from the FAT volume at `offset` of `img`, through mtools.
fn mtools_read(img: &Path, offset: u64, path: &str, out: &Path) -> Vec<u8> {
    let o = run(Command::new("mcopy").arg("-n").arg("-o").arg("-i").arg(format!("{}@@{offset}", s(img))).arg(format!("::{path}")).arg(out));
    assert!(o.status.success(), "mcopy {path}: {}", text(&o));
    std::fs::read(out).expect("read")
}

fn debugfs(img: &Path, offset: u64, cmd: &str) -> String {
    let o = run(Command::new("debugfs").arg("-R").arg(cmd).arg(format!("{}?offset={offset}", s(img))));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn field(text: &str, name: &str) -> u64 {
    text.split(name)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `fsck.fat -n` on a copy of the FAT partition (fsck.fat has no offset option).
fn fsck_fat(img: &Path, offset: u64, size: u64, scratch: &Path) {
    let part = scratch.join(format!("fat-{offset}.img"));
    let o = run(Command::new("dd")
        .arg(format!("if={}", s(img)))
        .arg(format!("of={}", s(&part)))
        .args(["bs=1M", "conv=sparse", "status=none"])
        .arg(format!("skip={}", offset >> 20))
        .arg(format!("count={}", size >> 20)));
    assert!(o.status.success(), "dd: {}", text(&o));
    let o = run(Command::new("fsck.fat").arg("-n").arg(&part));
    assert!(o.status.success(), "fsck.fat -n: {}", text(&o));
    let out = text(&o);
    assert!(!out.contains("Expected") && !out.contains("Bad short") && !out.contains("uninitialized"), "fsck.fat complains: {out}");
    let _ = std::fs::remove_file(part);
}

/// Size, mtime and the bytes where partition tables live (first and last MiB).
fn fingerprint(img: &Path) -> (u64, i64, i64, Vec<u8>) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(img).expect("open");
    let md = f.metadata().expect("stat");
    let mut b = vec![0u8; 2 << 20];
    f.read_exact_at(&mut b[..1 << 20], 0).expect("read");
    f.read_exact_at(&mut b[1 << 20..], md.len() - (1 << 20)).expect("read");
    (md.len(), md.mtime(), md.mtime_nsec(), b)
}

fn partition<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["partitions"].as_array().expect("partitions").iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no {name} partition"))
}

#[test]
fn installs_a_synthetic_rootfs_into_a_new_image() {
    let f = fixture();
    let img = f.dir.join("disk.raw");
    let o = install(&[
        "--target",
        s(&img),
        "--size",
        "1G",
        "--rootfs",
        s(&f.root),
        "--kernel",
        s(&f.kernel),
        "--initrd",
        s(&f.initrd),
        "--timeout",
        "0",
        "--cmdline",
        "console=ttyS0 lake.test=1",
        "--json",
        "--quiet",
        "--staging",
        s(&f.dir),
    ]);
    assert!(o.status.success(), "install: {}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(std::fs::metadata(&img).expect("image").len(), 1 << 30);
    assert!(r["elapsed_seconds"].as_f64().is_some());
    assert_eq!(r["lake"]["generation"], 1);
    assert!(r["lake"]["commit"].as_str().expect("commit").starts_with("b3:"));
    // The staging directory is gone.
    let left: Vec<_> = std::fs::read_dir(&f.dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("lake-installer-"))
        .collect();
    assert!(left.is_empty(), "staging left behind: {:?}", left.iter().map(|e| e.path()).collect::<Vec<_>>());

    // GPT, as sfdisk and sgdisk see it.
    let o = run(Command::new("sfdisk").arg("--json").arg(&img));
    assert!(o.status.success(), "sfdisk: {}", text(&o));
    let pt: Value = serde_json::from_slice(&o.stdout).expect("sfdisk JSON");
    let parts = pt["partitiontable"]["partitions"].as_array().expect("partitions");
    assert_eq!(pt["partitiontable"]["label"], "gpt");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(parts[0]["name"], "ESP");
    assert_eq!(parts[0]["start"], 2048);
    assert_eq!(parts[0]["size"], 512 * 2048);
    assert_eq!(parts[1]["type"], "F1F21DE9-2996-4512-BF8A-B087ED8680FB");
    assert_eq!(parts[1]["name"], "lake");
    let esp = partition(&r, "ESP");
    let lake = partition(&r, "lake");
    let esp_off = esp["offset"].as_u64().expect("offset");
    let lake_off = lake["offset"].as_u64().expect("offset");
    assert_eq!(parts[1]["start"].as_u64(), Some(lake_off / 512));
    assert_eq!(parts[1]["size"].as_u64(), lake["size"].as_u64().map(|b| b / 512));
    assert_eq!(lake_off % (1 << 20), 0);
    let o = run(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("No problems found"), "sgdisk -v: {}", text(&o));
    let o = run(Command::new("sgdisk").arg("-p").arg(&img));
    let p = String::from_utf8_lossy(&o.stdout);
    assert!(p.contains("EF00  ESP") && p.contains("lake"), "sgdisk -p: {p}");

    // ESP through mtools: loader.conf, the entry, the boot chain, kernel and initrd by hash.
    let (kh, ih) = (short_hash(&f.kernel), short_hash(&f.initrd));
    let tmp = f.dir.join("out");
    let entry = mtools_read(&img, esp_off, "/loader/entries/lake-1.conf", &tmp);
    assert_eq!(
        String::from_utf8_lossy(&entry),
        format!(
            "title Lake OS\nversion 1\nsort-key lake\nlinux /lake/{kh}/vmlinuz\ninitrd /lake/{ih}/initrd\n\
             options lake.gen=1 rw console=ttyS0 lake.test=1\n"
        )
    );
    assert_eq!(mtools_read(&img, esp_off, "/loader/loader.conf", &tmp), b"default lake-*\ntimeout 0\neditor no\n");
    for (src, esp) in LOADERS {
        assert!(
            mtools_read(&img, esp_off, esp, &tmp) == std::fs::read(f.root.join(src)).expect("loader"),
            "{esp} is not the rootfs's {src}"
        );
    }
    // No fallback loader beside shim (shim would run it instead of systemd-boot).
    let o = run(Command::new("mdir").arg("-b").arg("-i").arg(format!("{}@@{esp_off}", s(&img))).arg("::/EFI/BOOT"));
    let listed = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert_eq!(listed.lines().count(), 3, "/EFI/BOOT holds the chain only: {listed}");
    assert!(!listed.contains("fbx64"), "{listed}");
    assert!(mtools_read(&img, esp_off, &format!("/lake/{kh}/vmlinuz"), &tmp) == std::fs::read(&f.kernel).expect("kernel"));
    assert!(mtools_read(&img, esp_off, &format!("/lake/{ih}/initrd"), &tmp) == std::fs::read(&f.initrd).expect("initrd"));
    assert_eq!(r["kernel"]["path"], format!("/lake/{kh}/vmlinuz"));
    let o = run(Command::new("mdir").arg("-i").arg(format!("{}@@{esp_off}", s(&img))).arg("::/loader/entries"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("lake-1.conf"), "mdir: {}", text(&o));
    let o = run(Command::new("blkid").args(["-p", "-o", "export", "-O"]).arg(esp_off.to_string()).arg(&img));
    let b = String::from_utf8_lossy(&o.stdout);
    assert!(b.contains("TYPE=vfat") && b.contains("VERSION=FAT32") && b.contains("LABEL=ESP"), "blkid ESP: {b}");
    fsck_fat(&img, esp_off, esp["size"].as_u64().expect("size"), &f.dir);

    // The lake partition: ext4 labelled lake with the lake's UUID; fsck-lakefs clean.
    let o = run(Command::new("blkid").args(["-p", "-o", "export", "-O"]).arg(lake_off.to_string()).arg(&img));
    let b = String::from_utf8_lossy(&o.stdout);
    assert!(b.contains("TYPE=ext4") && b.contains("LABEL=lake"), "blkid lake: {b}");
    assert!(b.contains(&format!("UUID={}", r["lake"]["uuid"].as_str().expect("uuid"))), "{b}");
    let o = run(Command::new(fsck_lakefs()).arg("--offset").arg(lake_off.to_string()).arg("--quiet").arg(&img));
    assert_eq!(o.status.code(), Some(0), "fsck-lakefs: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clean"), "{}", text(&o));

    // deploy/1/root is a hard-link farm into objects/: same inode, link count >= 2.
    let st = debugfs(&img, lake_off, "stat /deploy/1/root/usr/bin/tool");
    let (ino, links) = (field(&st, "Inode:"), field(&st, "Links:"));
    assert!(links >= 3, "tool + tool-alias + its object: {st}");
    let names = debugfs(&img, lake_off, &format!("ncheck {ino}"));
    assert!(names.contains("/objects/"), "inode {ino} is not a loose object: {names}");
    assert_eq!(field(&debugfs(&img, lake_off, "stat /deploy/1/root/usr/bin/tool-alias"), "Inode:"), ino);
    let hc = &r["lake"]["hardlink_check"];
    assert!(hc["links"].as_u64().expect("links") >= 2, "report: {hc}");
    // Device node, xattr, owner, setuid bit and nanosecond mtime survive.
    let st = debugfs(&img, lake_off, "stat /deploy/1/root/dev/null");
    assert!(st.contains("character special") && st.contains("major/minor number: 01:03"), "{st}");
    assert!(debugfs(&img, lake_off, "ea_get /deploy/1/root/etc/hostname user.lake").contains("test"));
    let st = debugfs(&img, lake_off, "stat /deploy/1/root/usr/lib/owned");
    assert!(st.contains("User:  1234") && st.contains("Group:  5678"), "{st}");
    assert!(debugfs(&img, lake_off, "stat /deploy/1/root/usr/bin/su").contains("Mode:  04755"));
    let want_nsec = std::fs::metadata(f.root.join("etc/os-release")).expect("stat").mtime_nsec();
    let st = debugfs(&img, lake_off, "stat /deploy/1/root/etc/os-release");
    let extra = st
        .lines()
        .find(|l| l.trim_start().starts_with("mtime:"))
        .and_then(|l| l.split(':').nth(2))
        .map(|v| v.split_whitespace().next().unwrap_or("").to_owned());
    let extra = u64::from_str_radix(extra.as_deref().expect("mtime line"), 16).expect("hex");
    assert_eq!((extra >> 2) as i64, want_nsec, "mtime nanoseconds: {st}");
    for d in ["upper", "work"] {
        assert!(debugfs(&img, lake_off, &format!("stat /deploy/1/{d}")).contains("Type: directory"));
    }
    assert!(debugfs(&img, lake_off, "stat /deploy/1/hotcache").contains("Type: regular"));

    // The 1 GiB image is sparse.
    let alloc = std::fs::metadata(&img).expect("image").blocks() * 512;
    assert!(alloc < 200 << 20, "image allocates {alloc} bytes");
    assert_eq!(r["image"]["allocated"].as_u64(), Some(alloc));
}

#[test]
fn refuses_an_image_holding_a_partition_table_without_yes() {
    let f = fixture();
    let img = f.dir.join("old.raw");
    std::fs::File::create(&img).and_then(|fh| fh.set_len(1 << 30)).expect("image");
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.arg("-q").arg(&img).stdin(std::process::Stdio::piped());
    let mut child = sfdisk.spawn().expect("sfdisk");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"label: gpt\nstart=2048, size=131072, type=L\n").expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("sfdisk").success());
    let before = fingerprint(&img);
    let common = ["--rootfs", s(&f.root), "--kernel", s(&f.kernel), "--initrd", s(&f.initrd), "--staging", s(&f.dir)];

    let o = install(&[&["--target", s(&img)][..], &common].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("refusing to overwrite") && err.contains("--yes") && err.contains("gpt"), "{err}");
    // The plan came first: the target's partition table and the new layout.
    assert!(err.contains("partition 1") && err.contains("Target:") && err.contains("ESP"), "{err}");
    assert!(fingerprint(&img) == before, "the refused image was modified");

    // --dry-run --json shows the plan (and would still refuse), writes nothing.
    let o = install(&[&["--target", s(&img), "--dry-run", "--json"][..], &common].concat());
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(plan["target"]["type"], "image-file");
    assert!(plan["target"]["content"].as_str().expect("content").contains("gpt"));
    assert_eq!(plan["layout"]["partitions"][1]["name"], "lake");
    assert!(fingerprint(&img) == before);

    // With --yes (and the rootfs as a tar archive) the install goes ahead.
    let tar = f.dir.join("rootfs.tar");
    let o = run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-cpf"])
        .arg(&tar)
        .arg("-C")
        .arg(&f.root)
        .arg("."));
    assert!(o.status.success(), "tar: {}", text(&o));
    // The boot loaders come from a directory: an archive needs --loader-root.
    let o = install(&["--target", s(&img), "--yes", "--rootfs", s(&tar), "--kernel", s(&f.kernel), "--initrd", s(&f.initrd)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is an archive: give --loader-root DIR"), "{}", text(&o));
    let o = install(&[
        "--target",
        s(&img),
        "--yes",
        "--json",
        "-q",
        "--rootfs",
        s(&tar),
        "--loader-root",
        s(&f.root),
        "--kernel",
        s(&f.kernel),
        "--initrd",
        s(&f.initrd),
        "--staging",
        s(&f.dir),
    ]);
    assert!(o.status.success(), "install --yes: {}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    let lake_off = partition(&r, "lake")["offset"].as_u64().expect("offset");
    let o = run(Command::new(fsck_lakefs()).arg("--offset").arg(lake_off.to_string()).arg("-q").arg(&img));
    assert_eq!(o.status.code(), Some(0), "fsck-lakefs: {}", text(&o));
    // The tar round trip kept the device node and the xattr.
    assert!(debugfs(&img, lake_off, "stat /deploy/1/root/dev/null").contains("character special"));
    assert!(debugfs(&img, lake_off, "ea_get /deploy/1/root/etc/hostname user.lake").contains("test"));

    // Installing again over a Lake OS image also needs --yes.
    let o = install(&[&["--target", s(&img)][..], &common].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("refusing"), "{}", text(&o));
}

#[test]
fn refuses_a_mounted_target_even_with_yes() {
    let f = fixture();
    let img = f.dir.join("mounted.raw");
    std::fs::File::create(&img).and_then(|fh| fh.set_len(1 << 30)).expect("image");
    let o = run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
    assert!(o.status.success(), "mkfs.ext4: {}", text(&o));
    let mnt = f.dir.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let o = run(Command::new("mount").args(["-o", "loop,ro"]).arg(&img).arg(&mnt));
    assert!(o.status.success(), "mount: {}", text(&o));
    let o = install(&["--target", s(&img), "--yes", "--rootfs", s(&f.root), "--kernel", s(&f.kernel), "--initrd", s(&f.initrd)]);
    let _ = run(Command::new("umount").arg(&mnt));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is mounted at") && err.contains(s(&mnt)), "{err}");
}

#[test]
fn explains_bad_input() {
    let f = fixture();
    let new = f.dir.join("new.raw");
    let base = |target: &Path| {
        vec!["--target".to_string(), s(target).into(), "--rootfs".into(), s(&f.root).into(), "--initrd".into(), s(&f.initrd).into()]
    };
    let run_with = |extra: &[&str], target: &Path, kernel: &Path| {
        let mut a = base(target);
        a.extend(["--kernel".to_string(), s(kernel).to_string()]);
        a.extend(extra.iter().map(|x| x.to_string()));
        let o = run(Command::new(installer()).arg("install").args(&a));
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    assert!(run_with(&[], &new, &f.kernel).contains("give --size"));
    assert!(run_with(&["--size", "8G"], &new, &f.dir.join("no-kernel")).contains("no-kernel"));
    let e = run_with(&["--size", "8G", "--loader-root", "/nonexistent"], &new, &f.kernel);
    assert!(e.contains("/nonexistent/usr/lib/shim/shimx64.efi.signed") && e.contains("shim-signed"), "{e}");
    assert!(run_with(&["--size", "300M"], &new, &f.kernel).contains("no room for the lake partition"));
    assert!(run_with(&["--size", "8G", "--esp-size", "16M"], &new, &f.kernel).contains("too small for FAT32"));
    assert!(!new.exists(), "a failed plan created the image");
    // A lake partition too small for the rootfs is found before anything is written.
    std::fs::write(f.root.join("usr/lib/big"), lake_testkit::bytes(9, 150 << 20)).expect("write");
    let err = run_with(&["--size", "700M", "--staging", s(&f.dir)], &new, &f.kernel);
    assert!(err.contains("too small for the staged lake") && err.contains("--size"), "{err}");
    assert!(!new.exists(), "a failed install left the image it created");
}

#[test]
fn optional_boot_partition_holds_kernels_and_entries() {
    let f = fixture();
    let img = f.dir.join("boot.raw");
    let o = install(&[
        "--target",
        s(&img),
        "--size",
        "1G",
        "--esp-size",
        "64M",
        "--boot-size",
        "128M",
        "--rootfs",
        s(&f.root),
        "--kernel",
        s(&f.kernel),
        "--initrd",
        s(&f.initrd),
        "--json",
        "-q",
        "--staging",
        s(&f.dir),
    ]);
    assert!(o.status.success(), "install: {}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    let o = run(Command::new("sfdisk").arg("--json").arg(&img));
    let pt: Value = serde_json::from_slice(&o.stdout).expect("sfdisk JSON");
    let types: Vec<&str> =
        pt["partitiontable"]["partitions"].as_array().expect("parts").iter().map(|p| p["type"].as_str().unwrap_or("")).collect();
    assert_eq!(
        types,
        ["C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "BC13C2FF-59E6-4262-A352-B275FD6F7172", "F1F21DE9-2996-4512-BF8A-B087ED8680FB"]
    );
    let (esp, boot) = (partition(&r, "ESP"), partition(&r, "boot"));
    let (esp_off, boot_off) = (esp["offset"].as_u64().expect("o"), boot["offset"].as_u64().expect("o"));
    let tmp = f.dir.join("out");
    assert_eq!(mtools_read(&img, esp_off, "/loader/loader.conf", &tmp), b"default lake-*\ntimeout 3\neditor no\n");
    let entry = String::from_utf8(mtools_read(&img, boot_off, "/loader/entries/lake-1.conf", &tmp)).expect("utf-8");
    assert!(entry.contains("options lake.gen=1 rw console=tty0 console=ttyS0,115200 quiet"), "{entry}");
    let o = run(Command::new("mdir").arg("-i").arg(format!("{}@@{esp_off}", s(&img))).arg("::/loader/entries"));
    assert!(!o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("lake-1"), "entry on the ESP too: {}", text(&o));
    fsck_fat(&img, esp_off, esp["size"].as_u64().expect("s"), &f.dir);
    fsck_fat(&img, boot_off, boot["size"].as_u64().expect("s"), &f.dir);
}

/// Detaches a loop device when the test ends.
struct Loop(String);

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("partx").arg("-d").arg(&self.0).output();
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

/// A 1 GiB loop device over a file in `dir`, detached when dropped.
fn loop_device(dir: &Path) -> Loop {
    let backing = dir.join("backing.raw");
    std::fs::File::create(&backing).and_then(|fh| fh.set_len(1 << 30)).expect("backing file");
    let o = run(Command::new("losetup").args(["--find", "--show"]).arg(&backing));
    assert!(o.status.success(), "losetup: {}", text(&o));
    Loop(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

#[test]
fn installs_onto_a_block_device_only_with_yes() {
    let f = fixture();
    let dev = loop_device(&f.dir);
    let args = ["--target", &dev.0, "--rootfs", s(&f.root), "--kernel", s(&f.kernel), "--initrd", s(&f.initrd), "--staging", s(&f.dir)];
    let o = install(&args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a block device"), "{}", text(&o));
    let o = install(&[&args[..], &["--yes", "--json", "-q", "--size", "2G"]].concat());
    assert_eq!(o.status.code(), Some(1), "--size on a device: {}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be resized"), "{}", text(&o));

    let o = install(&[&args[..], &["--yes", "--json", "-q"]].concat());
    assert!(o.status.success(), "install onto {}: {}", dev.0, text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    assert_eq!(r["target_type"], "block-device");
    assert_eq!(r["disk_size"], 1u64 << 30);
    // The kernel knows the new partitions (BLKRRPART or partx -u).
    let p2 = format!("{}p2", dev.0);
    assert!(Path::new(&p2).exists(), "{p2} missing after the install");
    let o = run(Command::new("blkid").args(["-p", "-o", "export"]).arg(&p2));
    assert!(String::from_utf8_lossy(&o.stdout).contains("LABEL=lake"), "{}", text(&o));
    let o = run(Command::new(fsck_lakefs()).arg("-q").arg(&p2));
    assert_eq!(o.status.code(), Some(0), "fsck-lakefs {p2}: {}", text(&o));
}

/// The fixture plus what an install configuration is checked against.
fn config_fixture(f: &Fixture) -> PathBuf {
    let r = &f.root;
    for d in ["usr/share/zoneinfo/Europe", "usr/share/i18n", "usr/share/X11/xkb/symbols"] {
        std::fs::create_dir_all(r.join(d)).expect("mkdir");
    }
    std::fs::write(r.join("usr/share/zoneinfo/Europe/Berlin"), b"TZif2 fake").expect("write");
    std::fs::write(r.join("usr/share/i18n/SUPPORTED"), "en_US.UTF-8 UTF-8\n").expect("write");
    std::fs::write(r.join("usr/share/X11/xkb/symbols/de"), "").expect("write");
    std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").expect("write");
    std::fs::write(r.join("etc/shadow"), "root:*:20000:0:99999:7:::\n").expect("write");
    std::fs::write(r.join("etc/group"), "root:x:0:\nshadow:x:42:\nsudo:x:27:\n").expect("write");
    std::fs::write(r.join("etc/gshadow"), "root:*::\nshadow:*::\nsudo:*::\n").expect("write");
    let o = run(Command::new("sh").arg("-c").arg(format!("printf 'pw\\n' | {} hash-password", s(&installer()))));
    assert!(o.status.success(), "hash-password: {}", text(&o));
    let hash = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let cfg = f.dir.join("lake-install.toml");
    std::fs::write(
        &cfg,
        format!(
            "hostname = \"lake-ci\"\ntimezone = \"Europe/Berlin\"\nlocale = \"en_US.UTF-8\"\n[keyboard]\nlayout = \"de\"\n\
             [user]\nname = \"ada\"\npassword_hash = \"{hash}\"\n\
             ssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHls+RGCoXxVHR+5V9QhQ0ycEirkpvaBbghoRYocatNX ada@laptop\"]\n"
        ),
    )
    .expect("write");
    cfg
}

#[test]
fn install_config_lands_as_generation_2_on_a_loop_device() {
    let f = fixture();
    let cfg = config_fixture(&f);
    let dev = loop_device(&f.dir);
    let args = ["--target", &dev.0, "--rootfs", s(&f.root), "--kernel", s(&f.kernel), "--initrd", s(&f.initrd), "--staging", s(&f.dir)];

    // A bad config is refused before the disk is touched.
    let bad = f.dir.join("bad.toml");
    std::fs::write(&bad, std::fs::read_to_string(&cfg).expect("read").replace("Europe/Berlin", "Mars/Olympus")).expect("write");
    let o = install(&[&args[..], &["--yes", "-q", "--config", s(&bad)]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.toml") && err.contains("`timezone`") && err.contains("Mars/Olympus"), "{err}");
    let o = run(Command::new("blkid").arg("-p").arg(&dev.0));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("PTTYPE"), "the disk was written: {}", text(&o));

    let o = install(&[&args[..], &["--yes", "--json", "-q", "--config", s(&cfg)]].concat());
    assert!(o.status.success(), "install onto {}: {}", dev.0, text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("report");
    assert_eq!(r["settings"]["generation"], 2, "{r}");
    assert_eq!(r["settings"]["base_generation"], 1);
    assert_eq!(r["lake"]["generation"], 2);
    assert_ne!(r["settings"]["commit"], r["settings"]["base"]);
    assert_eq!(r["entry"], "/loader/entries/lake-2.conf");

    // Read the lake back through the kernel: mount the partition.
    let p2 = format!("{}p2", dev.0);
    let mnt = f.dir.join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let o = run(Command::new("mount").arg(&p2).arg(&mnt));
    assert!(o.status.success(), "mount {p2}: {}", text(&o));
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Umount(mnt.clone());
    let lake = lakefs::Lake::open(&mnt).expect("open the installed lake");
    assert_eq!(lake_posix::generation::default(&lake).expect("default"), Some(2));
    let g1 = lake_posix::generation::get(&lake, 1).expect("gen").expect("generation 1");
    let g2 = lake_posix::generation::get(&lake, 2).expect("gen").expect("generation 2");
    assert_eq!(g1.commit.to_string(), r["settings"]["base"].as_str().expect("base"));
    let c2 = lake.read_commit(&g2.commit).expect("commit 2");
    assert_eq!(c2.parents, vec![g1.commit], "the settings commit sits on the profile's commit");

    let rd = |g: u32, p: &str| std::fs::read_to_string(mnt.join(format!("deploy/{g}/root/{p}"))).unwrap_or_default();
    assert_eq!(rd(2, "etc/hostname"), "lake-ci\n");
    assert_eq!(rd(2, "etc/timezone"), "Europe/Berlin\n");
    assert_eq!(rd(2, "etc/default/locale"), "LANG=en_US.UTF-8\n");
    assert!(rd(2, "etc/default/keyboard").contains("XKBLAYOUT=\"de\""));
    assert_eq!(
        std::fs::read_link(mnt.join("deploy/2/root/etc/localtime")).expect("localtime"),
        Path::new("../usr/share/zoneinfo/Europe/Berlin")
    );
    assert!(rd(2, "etc/passwd").contains("ada:x:1000:1000::/home/ada:/bin/bash"));
    assert!(rd(2, "etc/shadow").contains("ada:$6$"));
    assert!(rd(2, "etc/group").contains("sudo:x:27:ada"));
    assert!(rd(2, "var/lib/lake/first-boot/ada/authorized_keys").starts_with("ssh-ed25519 AAAA"));
    // The published commit holds none of it.
    assert_eq!(rd(1, "etc/hostname"), "lake\n");
    assert!(!rd(1, "etc/passwd").contains("ada") && !rd(1, "etc/shadow").contains("$6$"));
    assert!(!mnt.join("deploy/1/root/var/lib/lake/first-boot").exists());
    assert!(!mnt.join("deploy/1/root/etc/timezone").exists());
    // Both generations are bootable; systemd-boot's `default lake-*` picks the higher version.
    let off = partition(&r, "ESP")["offset"].as_u64().expect("offset");
    let backing = f.dir.join("backing.raw");
    let e1 = mtools_read(&backing, off, "/loader/entries/lake-1.conf", &f.dir.join("e1"));
    let e2 = mtools_read(&backing, off, "/loader/entries/lake-2.conf", &f.dir.join("e2"));
    assert!(String::from_utf8_lossy(&e1).contains("lake.gen=1") && String::from_utf8_lossy(&e2).contains("lake.gen=2"));
    drop(lake);
}
