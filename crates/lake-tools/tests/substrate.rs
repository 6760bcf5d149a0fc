//! mkfs.lakefs and fsck.lakefs on real ext4 images: a lake inside an image file
//! at an offset (as a partition of a disk image), populated without a loop device.

use std::path::Path;
use std::process::{Command, Output};

fn mkfs(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkfs-lakefs")).args(args).output().unwrap()
}

fn fsck(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fsck-lakefs")).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn debugfs_cat(img: &Path, path: &str) -> Vec<u8> {
    Command::new("debugfs").arg("-R").arg(format!("cat {path}")).arg(img).output().unwrap().stdout
}

const OFFSET: u64 = 1 << 20;

#[test]
fn mkfs_populates_an_image_at_an_offset_and_fsck_checks_it() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hostname"), b"lake\n").unwrap();
    std::fs::write(src.join("etc/big"), (0..3_000_000u32).map(|i| ((i * 2_654_435_761u32) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    let img = t.path().join("disk.raw");
    // Something in front of the partition that must survive.
    std::fs::write(&img, vec![0xAB; OFFSET as usize]).unwrap();
    let o = mkfs(&["--offset", "1M", "--size", "64M", "--populate", src.to_str().unwrap(), "--json", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["commit"].as_str().unwrap().starts_with("b3:"));
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(bytes.len() as u64, OFFSET + (64 << 20));
    assert!(bytes[..OFFSET as usize].iter().all(|b| *b == 0xAB), "bytes before the offset are untouched");
    // A real ext4 labelled 'lake', with the lake's UUID, holding the lake layout.
    let blkid = Command::new("blkid").args(["-p", "-O", "1048576", "-o", "export"]).arg(&img).output().unwrap();
    let b = String::from_utf8_lossy(&blkid.stdout);
    assert!(b.contains("TYPE=ext4") && b.contains("LABEL=lake"), "{b}");
    assert!(b.contains(&format!("UUID={}", v["uuid"].as_str().unwrap())), "{b}");
    // fsck: e2fsck of the substrate, then a full lake verify on a read-only mount.
    let o = fsck(&["--offset", "1M", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("clean"));

    // Damage a pack inside the image (found through the file system), fsck says so.
    let part = t.path().join("part.img");
    std::fs::write(&part, &bytes[OFFSET as usize..]).unwrap();
    let ls = Command::new("debugfs").args(["-R", "ls -p /packs"]).arg(&part).output().unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    let pack = listing.lines().filter_map(|l| l.split('/').nth(5)).find(|n| n.starts_with("pack-")).expect("a pack in /packs");
    let content = debugfs_cat(&part, &format!("/packs/{pack}"));
    assert!(content.starts_with(b"LKPACK01"));
    // Find the pack's first data block inside the image and flip a byte in it.
    let stat = Command::new("debugfs").args(["-R", &format!("bmap /packs/{pack} 0")]).arg(&part).output().unwrap();
    let block: u64 = String::from_utf8_lossy(&stat.stdout).trim().parse().expect("block number");
    let bs = 1024u64; // small file systems use 1 KiB blocks (checked below)
    let at = (OFFSET + block * bs + 100) as usize;
    let mut damaged = bytes.clone();
    assert_eq!(&damaged[at - 100..at - 92], b"LKPACK01", "block size assumption");
    damaged[at] ^= 0x40;
    std::fs::write(&img, &damaged).unwrap();
    let o = fsck(&["--offset", "1M", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("DAMAGED"), "{}", text(&o));
}

#[test]
fn loose_populated_image_keeps_nanosecond_mtimes() {
    // mke2fs -d truncates mtimes to seconds; loose objects carry their mtime in
    // their key, so without the repair fsck would call every one of them damaged.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"alpha").unwrap();
    std::fs::write(src.join("b"), b"beta").unwrap();
    let st = Command::new("touch").args(["-d", "2024-01-02 03:04:05.123456789"]).arg(src.join("a")).status().unwrap();
    assert!(st.success());
    let img = t.path().join("l.img");
    let o = mkfs(&["--size", "32M", "--loose", "--populate", src.to_str().unwrap(), img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = fsck(&[img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn mkfs_refuses_to_overwrite_without_yes() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("x.img");
    let o = mkfs(&["--size", "32M", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let before = std::fs::read(&img).unwrap();
    let o = mkfs(&["--size", "32M", img.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("refusing to overwrite") && text(&o).contains("ext4"), "{}", text(&o));
    assert!(std::fs::read(&img).unwrap() == before, "nothing written without --yes");
    let o = mkfs(&["--size", "32M", "--yes", img.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // Content that does not fit gives a clear error naming the target and --size.
    let src = t.path().join("big");
    std::fs::create_dir(&src).unwrap();
    // Incompressible: 40 MB from the kernel's random source.
    let mut noise = vec![0u8; 40_000_000];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut noise).unwrap();
    std::fs::write(src.join("noise"), noise).unwrap();
    let small = t.path().join("small.img");
    let o = mkfs(&["--size", "16M", "--populate", src.to_str().unwrap(), small.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--size") && text(&o).contains("small.img"), "{}", text(&o));
}

/// A loop device over a file, detached (and unmounted) on drop.
struct Loop {
    dev: String,
    mnt: Option<std::path::PathBuf>,
}

impl Drop for Loop {
    fn drop(&mut self) {
        if let Some(m) = &self.mnt {
            let _ = Command::new("umount").arg(m).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

#[test]
fn mkfs_on_a_block_device_needs_yes_and_refuses_a_mounted_one() {
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("dev.img");
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let out = Command::new("losetup").args(["--find", "--show"]).arg(&img).output().unwrap();
    assert!(out.status.success(), "losetup: {}", text(&out));
    let mut lo = Loop { dev: String::from_utf8_lossy(&out.stdout).trim().to_owned(), mnt: None };
    let o = mkfs(&[&lo.dev]);
    assert!(!o.status.success());
    assert!(text(&o).contains("block device") && text(&o).contains("--yes"), "{}", text(&o));
    let o = mkfs(&["--yes", &lo.dev]);
    assert!(o.status.success(), "{}", text(&o));
    let o = fsck(&[&lo.dev]);
    assert!(o.status.success(), "{}", text(&o));
    // Mounted: refused even with --yes, naming the mount point.
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").arg(&lo.dev).arg(&mnt).status().unwrap().success());
    lo.mnt = Some(mnt.clone());
    let o = mkfs(&["--yes", &lo.dev]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is mounted at") && text(&o).contains(mnt.to_str().unwrap()), "{}", text(&o));
    // The mounted lake is intact and usable as a directory.
    assert!(mnt.join("superblock").exists());
}
