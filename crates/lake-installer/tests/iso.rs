//! The install medium end to end on the host: `build --iso` (reproducible with
//! SOURCE_DATE_EPOCH, object reuse against the previous build), the ISO's
//! content read back with xorriso and mtools, the lake image checked with
//! fsck-lakefs, and installs from it (`install --lake-image`, `install-live
//! --medium` interactive with --yes, and --unattended). Needs root, xorriso,
//! mtools, e2fsprogs and systemd-boot-efi.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The signed loaders `build --iso` takes from the rootfs, and their paths in efi.img.
const LOADERS: [(&str, &str); 3] = [
    ("usr/lib/shim/shimx64.efi.signed", "/EFI/BOOT/BOOTX64.EFI"),
    ("usr/lib/shim/mmx64.efi.signed", "/EFI/BOOT/mmx64.efi"),
    ("usr/lib/systemd/boot/efi/systemd-bootx64.efi.signed", "/EFI/BOOT/grubx64.efi"),
];
const EPOCH: &str = "1700000000";

fn installer() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lake-installer"))
}

fn fsck_lakefs() -> PathBuf {
    let p = installer().with_file_name("fsck-lakefs");
    assert!(p.exists(), "{} is missing: build the workspace first (`cargo build --release --workspace`)", p.display());
    p
}

fn text(o: &Output) -> String {
    format!("--- stdout:\n{}\n--- stderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> Output {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn noise(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// A repository layout as `build --skip-mkosi` expects: images/build/{rootfs,vmlinuz,initrd.cpio.zst} and a profile.
struct Repo {
    _t: tempfile::TempDir,
    dir: PathBuf,
    profile: PathBuf,
}

fn repo() -> Repo {
    let t = tempfile::tempdir().expect("tempdir");
    let dir = t.path().to_owned();
    let b = dir.join("images/build");
    let root = b.join("rootfs");
    for d in ["etc", "usr/bin", "usr/lib/systemd", "home/ann", "var/lib"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(root.join("etc/hostname"), b"lake\n").expect("write");
    std::fs::write(root.join("usr/lib/systemd/systemd"), b"#!/bin/sh\n").expect("write");
    for i in 0..40 {
        std::fs::write(root.join(format!("usr/bin/tool{i}")), noise(20_000 + i * 997, i as u32)).expect("write");
    }
    std::fs::hard_link(root.join("usr/bin/tool1"), root.join("usr/bin/tool1-alias")).expect("link");
    for (i, (src, _)) in LOADERS.iter().enumerate() {
        std::fs::create_dir_all(root.join(src).parent().expect("parent")).expect("mkdir");
        std::fs::write(root.join(src), noise(30_000 + i, 30 + i as u32)).expect("write");
    }
    std::os::unix::fs::symlink("../usr/lib", root.join("etc/lib-link")).expect("symlink");
    let st = run(Command::new("touch").args(["-d", "2024-05-06 07:08:09.123456789"]).arg(root.join("etc/hostname")));
    assert!(st.status.success());
    std::fs::write(b.join("vmlinuz"), noise(3 << 20, 7)).expect("write");
    std::fs::write(b.join("initrd.cpio.zst"), noise(1 << 20, 8)).expect("write");
    let profile = dir.join("test.toml");
    std::fs::write(
        &profile,
        "name = \"test\"\nrelease = \"trixie\"\n[image]\nesp_size = \"64M\"\n[boot]\ncmdline = \"console=ttyS0\"\ntimeout = 2\n",
    )
    .expect("write");
    Repo { _t: t, dir, profile }
}

fn build_iso(r: &Repo, out: &Path, extra: &[&str]) -> Value {
    let o = ok(Command::new(installer())
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .args(["build", "--skip-mkosi", "--iso", "--json", "-q", "--profile", s(&r.profile), "--repo", s(&r.dir), "--out", s(out)])
        .args(["--staging", s(&r.dir)])
        .args(extra));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{}", text(&o)))
}

fn sha(p: &Path) -> String {
    let o = ok(Command::new("sha256sum").arg(p));
    String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

/// Extracts the ISO's tree into `dir` (xorriso, no mount).
fn extract(iso: &Path, dir: &Path) {
    ok(Command::new("xorriso").args(["-osirrox", "on", "-indev", s(iso), "-extract", "/", s(dir)]));
}

fn mtype(img: &Path, path: &str) -> String {
    let o = ok(Command::new("mtype").env("MTOOLS_SKIP_CHECK", "1").args(["-i", s(img), &format!("::{path}")]));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn iso_builds_are_reproducible_and_hold_a_bootable_lake() {
    let r = repo();
    let (a, b) = (r.dir.join("a.iso"), r.dir.join("b.iso"));
    let ja = build_iso(&r, &a, &[]);
    let jb = build_iso(&r, &b, &[]);
    assert_eq!(sha(&a), sha(&b), "two builds from the same inputs and SOURCE_DATE_EPOCH differ");
    assert_eq!(ja["manifest"]["commit"], jb["manifest"]["commit"]);
    assert_eq!(ja["label"], "LAKEOS_TEST");
    // Another epoch: another commit id and other bytes.
    let c = r.dir.join("c.iso");
    let o = ok(Command::new(installer()).env("SOURCE_DATE_EPOCH", "1700000001").args([
        "build",
        "--skip-mkosi",
        "--iso",
        "--json",
        "-q",
        "--profile",
        s(&r.profile),
        "--repo",
        s(&r.dir),
        "--out",
        s(&c),
        "--staging",
        s(&r.dir),
    ]));
    let jc: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_ne!(jc["manifest"]["commit"], ja["manifest"]["commit"]);

    // The ISO's tree: hybrid (GPT with the EFI image as ESP), the lake image, the manifest.
    let gpt = ok(Command::new("sgdisk").arg("-p").arg(&a));
    assert!(String::from_utf8_lossy(&gpt.stdout).contains("EF00"), "no EFI system partition in the ISO's GPT:\n{}", text(&gpt));
    let x = r.dir.join("x");
    extract(&a, &x);
    let manifest: Value = serde_json::from_slice(&std::fs::read(x.join("lake/lake.json")).expect("lake.json")).expect("json");
    assert_eq!(manifest["profile"], "test");
    assert_eq!(manifest["generation"], 1);
    assert_eq!(manifest["source_date_epoch"], 1_700_000_000);
    let efi = x.join("boot/efi.img");
    let root = r.dir.join("images/build/rootfs");
    for (src, esp) in LOADERS {
        let got = r.dir.join("loader-from-efi");
        ok(Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args(["-n", "-i", s(&efi), &format!("::{esp}"), s(&got)]));
        assert!(std::fs::read(&got).expect("read") == std::fs::read(root.join(src)).expect("loader"), "{esp} in efi.img is not {src}");
    }
    assert_eq!(manifest["loaders"], serde_json::json!(LOADERS.map(|l| l.1)));
    let loader = mtype(&efi, "/loader/loader.conf");
    assert!(loader.contains("default lake-live.conf") && loader.contains("timeout 2"), "{loader}");
    let live = mtype(&efi, "/loader/entries/lake-live.conf");
    assert!(live.contains("options lake.live=LAKEOS_TEST console=ttyS0"), "{live}");
    assert!(live.contains(manifest["kernel"]["path"].as_str().expect("kernel path")), "{live}");
    let k = r.dir.join("kernel-from-efi");
    ok(Command::new("mcopy").env("MTOOLS_SKIP_CHECK", "1").args([
        "-n",
        "-i",
        s(&efi),
        &format!("::{}", manifest["kernel"]["path"].as_str().expect("path")),
        s(&k),
    ]));
    assert_eq!(std::fs::read(&k).expect("kernel"), std::fs::read(r.dir.join("images/build/vmlinuz")).expect("vmlinuz"));
    let fsck = ok(Command::new(fsck_lakefs()).arg(x.join("lake/lake.img")));
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("clean"), "{}", text(&fsck));
    let e2 = ok(Command::new("dumpe2fs").arg("-h").arg(x.join("lake/lake.img")));
    let uuid = String::from_utf8_lossy(&e2.stdout).lines().find_map(|l| l.strip_prefix("Filesystem UUID:").map(|v| v.trim().to_owned()));
    assert_eq!(uuid.as_deref(), manifest["lake_uuid"].as_str(), "the ext4 UUID is the lake's");

    // Unattended variant: its install entry is the default.
    let u = r.dir.join("u.iso");
    build_iso(&r, &u, &["--iso-unattended-target", "/dev/vda"]);
    let xu = r.dir.join("xu");
    extract(&u, &xu);
    let ue = xu.join("boot/efi.img");
    assert!(mtype(&ue, "/loader/loader.conf").contains("default lake-install.conf"));
    let inst = mtype(&ue, "/loader/entries/lake-install.conf");
    assert!(inst.contains("lake.install=auto lake.target=/dev/vda lake.poweroff"), "{inst}");
}

#[test]
fn a_rebuild_after_a_change_reuses_the_unchanged_objects() {
    let r = repo();
    let out = r.dir.join("r.iso");
    let first = build_iso(&r, &out, &[]);
    assert!(first["objects"]["previous"].is_null());
    let total = first["objects"]["total"].as_u64().expect("total");
    // One "package" changes: one file replaced, one added.
    let root = r.dir.join("images/build/rootfs");
    std::fs::write(root.join("usr/bin/tool3"), noise(30_000, 99)).expect("write");
    std::fs::write(root.join("usr/bin/newtool"), noise(10_000, 98)).expect("write");
    let second = build_iso(&r, &out, &[]);
    let (new, reused) = (second["objects"]["new"].as_u64().expect("new"), second["objects"]["reused"].as_u64().expect("reused"));
    assert!(second["objects"]["previous"].is_string());
    assert!(new >= 2, "the changed and the added file are new objects: {}", second["objects"]);
    // Unchanged files, and trees off the changed path, are the same objects.
    assert!(reused >= total - 6, "{reused} of {total} reused: {}", second["objects"]);
    assert_ne!(first["manifest"]["commit"], second["manifest"]["commit"]);
}

#[test]
fn installs_from_the_lake_image_without_importing() {
    let r = repo();
    let iso = r.dir.join("m.iso");
    build_iso(&r, &iso, &[]);
    let medium = r.dir.join("medium");
    extract(&iso, &medium);
    let b = r.dir.join("images/build");

    // install --lake-image: copy, grow, check.
    let disk = r.dir.join("disk.raw");
    // `install --lake-image` of the medium's lake onto `disk`, with `extra` arguments.
    let install_image = |disk: &Path, extra: &[&str]| {
        ok(Command::new(installer())
            .args(["install", "--target", s(disk), "--size", "1G", "--json", "-q", "--esp-size", "64M"])
            .args(["--lake-image", s(&medium.join("lake/lake.img"))])
            .args(["--kernel", s(&b.join("vmlinuz")), "--initrd", s(&b.join("initrd.cpio.zst"))])
            .args(extra))
    };
    // The host has no signed loaders; the image's rootfs has (default: /).
    let o = install_image(&disk, &["--loader-root", s(&b.join("rootfs"))]);
    let rep: Value = serde_json::from_slice(&o.stdout).expect("json");
    let lake = rep["partitions"].as_array().expect("partitions").iter().find(|p| p["role"] == "lake").expect("lake partition").clone();
    let (off, size) = (lake["offset"].as_u64().expect("offset"), lake["size"].as_u64().expect("size"));
    assert!(rep["timings"].as_array().expect("timings").iter().any(|t| t["step"] == "copy"));
    assert!(!rep["timings"].as_array().expect("timings").iter().any(|t| t["step"] == "import+deploy"));
    let fsck = ok(Command::new(fsck_lakefs()).arg("--offset").arg(off.to_string()).arg(&disk));
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("clean"), "{}", text(&fsck));
    let e2 = ok(Command::new("dumpe2fs").arg("-h").arg(format!("{}?offset={off}", disk.display())));
    let out = String::from_utf8_lossy(&e2.stdout);
    let blocks: u64 = out.lines().find_map(|l| l.strip_prefix("Block count:")).and_then(|v| v.trim().parse().ok()).expect("block count");
    assert_eq!(blocks * 4096, size, "the lake was grown to fill its partition");
    assert_eq!(std::fs::metadata(&disk).expect("disk").len(), 1 << 30, "the image keeps its size (backup GPT)");

    // With an install configuration: generation 2 on top of the image's lake, committed through a loop mount.
    let root = b.join("rootfs");
    std::fs::create_dir_all(root.join("usr/share/zoneinfo/Europe")).expect("mkdir");
    std::fs::write(root.join("usr/share/zoneinfo/Europe/Berlin"), b"TZif2 fake").expect("write");
    let cfg = r.dir.join("lake-install.toml");
    std::fs::write(&cfg, "hostname = \"iso-ci\"\ntimezone = \"Europe/Berlin\"\n[user]\nname = \"ada\"\nssh_authorized_keys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHls+RGCoXxVHR+5V9QhQ0ycEirkpvaBbghoRYocatNX ada\"]\n").expect("write");
    let disk_c = r.dir.join("disk-c.raw");
    let o = install_image(&disk_c, &["--config", s(&cfg), "--loader-root", s(&root), "--staging", s(&r.dir)]);
    let rep: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(rep["settings"]["generation"], 2, "{rep}");
    assert_eq!(rep["entry"], "/loader/entries/lake-2.conf");
    let lake = rep["partitions"].as_array().expect("partitions").iter().find(|p| p["role"] == "lake").expect("lake").clone();
    let off = lake["offset"].as_u64().expect("offset");
    let cat = |p: &str| {
        let o = ok(Command::new("debugfs").arg("-R").arg(format!("cat {p}")).arg(format!("{}?offset={off}", disk_c.display())));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert_eq!(cat("/deploy/2/root/etc/hostname"), "iso-ci\n");
    assert_eq!(cat("/deploy/1/root/etc/hostname"), "lake\n");
    let fsck = ok(Command::new(fsck_lakefs()).arg("--offset").arg(off.to_string()).arg(&disk_c));
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("clean"), "{}", text(&fsck));

    // install-live from the extracted medium, no questions (--target, --yes).
    let disk2 = r.dir.join("disk2.raw");
    std::fs::File::create(&disk2).expect("create").set_len(1 << 30).expect("size");
    let o = ok(Command::new(installer()).args(["install-live", "--medium", s(&medium), "--target", s(&disk2), "--yes"]));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Lake OS installed on"), "{}", text(&o));
    let esp_log = Command::new("mtype")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-i", &format!("{}@@1M", disk2.display()), "::/lake/install.log"])
        .output()
        .expect("mtype");
    assert!(String::from_utf8_lossy(&esp_log.stdout).contains("copying the lake image"), "{}", text(&esp_log));

    // Unattended: one LAKE-INSTALL line, ok; and a failure names its cause.
    let disk3 = r.dir.join("disk3.raw");
    std::fs::File::create(&disk3).expect("create").set_len(1 << 30).expect("size");
    let o = ok(Command::new(installer()).args(["install-live", "--unattended", "--medium", s(&medium), "--target", s(&disk3)]));
    let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("LAKE-INSTALL ")).expect("LAKE-INSTALL line").to_owned();
    let v: Value = serde_json::from_str(&line["LAKE-INSTALL ".len()..]).expect("json");
    assert_eq!(v["result"], "ok", "{line}");
    assert_eq!(v["generation"], 1);
    // A target that cannot be installed on: the result says so.
    let o = run(Command::new(installer()).args(["install-live", "--unattended", "--medium", s(&medium), "--target", s(&r.dir)]));
    assert!(!o.status.success());
    let line = String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with("LAKE-INSTALL ")).expect("LAKE-INSTALL line").to_owned();
    let v: Value = serde_json::from_str(&line["LAKE-INSTALL ".len()..]).expect("json");
    assert_eq!(v["result"], "fail", "{line}");
    assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{line}");
}
