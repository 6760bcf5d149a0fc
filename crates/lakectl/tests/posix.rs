//! The POSIX zone's life on a real overlayfs: a package run committed from the
//! upper layer by the apt hooks, a new generation, rollback to before the run
//! (local /etc edits kept), roll forward with --now into the live overlay, and
//! path-limited restores. Needs root (overlay mounts), as the whole suite does.

use std::path::{Path, PathBuf};

use crate::common::{ok, run};

const STATUS_V1: &str = "Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\n";
const HELLO: &str = "Package: lake-hello\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n\n";

struct Overlay {
    merged: PathBuf,
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn mount_overlay(lake: &Path, n: u32, merged: &Path) -> Overlay {
    let d = lake.join("deploy").join(n.to_string());
    std::fs::create_dir_all(merged).unwrap();
    let opts = format!("lowerdir={},upperdir={},workdir={}", d.join("root").display(), d.join("upper").display(), d.join("work").display());
    nix::mount::mount(Some("overlay"), merged, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str()))
        .expect("mount overlay (needs root)");
    Overlay { merged: merged.to_owned() }
}

fn rootfs(dir: &Path) {
    for d in ["etc", "usr/bin", "var/lib/dpkg", "home", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(dir.join("etc/hello.conf"), "greeting=hi\n").unwrap();
    std::fs::write(dir.join("etc/local.conf"), "mine=1\n").unwrap();
    std::fs::write(dir.join("usr/bin/base"), "#!/bin/sh\n").unwrap();
    std::fs::write(dir.join("var/lib/dpkg/status"), STATUS_V1).unwrap();
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("bad JSON ({e}): {out}"))
}

fn root_args<'a>(m: &'a str, l: &'a Path, n: u32) -> Vec<String> {
    let d = l.join("deploy").join(n.to_string());
    vec![
        "--root".into(),
        m.into(),
        "--upper".into(),
        d.join("upper").display().to_string(),
        "--lower".into(),
        d.join("root").display().to_string(),
    ]
}

fn lc(lake: &Path, args: &[String]) -> String {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(lake, &a)
}

#[test]
fn package_run_rollback_and_roll_forward_on_a_real_overlay() {
    let tmp = tempfile::tempdir().unwrap();
    let (lake, src, esp) = (tmp.path().join("lake"), tmp.path().join("rootfs"), tmp.path().join("esp"));
    ok(&lake, &["init"]);
    rootfs(&src);
    ok(&lake, &["--zone", "posix", "commit", src.to_str().unwrap(), "-m", "install"]);
    // Generation 1 with a kernel and initrd on a (directory) ESP.
    std::fs::create_dir_all(esp.join("loader/entries")).unwrap();
    let (k, i) = (tmp.path().join("vmlinuz"), tmp.path().join("initrd"));
    std::fs::write(&k, b"kernel").unwrap();
    std::fs::write(&i, b"initrd").unwrap();
    let l = lakefs::Lake::open(&lake).unwrap();
    let head = l.get_ref("posix/main").unwrap().unwrap();
    let opts =
        lake_boot::deploy::DeployOptions { esp: Some(esp.clone()), tries: None, kernel: Some(k), initrd: Some(i), ..Default::default() };
    let g1 = lake_boot::deploy::deploy_generation(&l, head, &opts, &lakefs::progress::Silent).unwrap();
    assert_eq!(g1.generation, 1);
    drop(l);

    let merged = tmp.path().join("merged");
    let ov = mount_overlay(&lake, 1, &merged);
    let m = merged.to_str().unwrap();
    let ra = root_args(m, &lake, 1);
    let esp_args = vec!["--esp".to_string(), esp.display().to_string()];
    let hook = |h: &str| {
        let mut a: Vec<String> = ["--zone", "posix", "--json", "commit", "--hook", h].iter().map(|s| s.to_string()).collect();
        a.extend(ra.clone());
        a.extend(esp_args.clone());
        json(&lc(&lake, &a))
    };

    // The admin edits /etc before the upgrade: the pre commit records it.
    std::fs::write(merged.join("etc/local.conf"), "mine=2\n").unwrap();
    let pre = hook("apt-pre");
    assert_eq!(pre["unchanged"], false);
    // "dpkg" installs lake-hello: a binary, a conffile change, the status file.
    std::fs::write(merged.join("usr/bin/lake-hello"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::write(merged.join("etc/hello.conf"), "greeting=hello\n").unwrap();
    std::fs::write(merged.join("var/lib/dpkg/status"), format!("{STATUS_V1}{HELLO}")).unwrap();
    std::fs::write(merged.join("tmp/scratch"), "not recorded").unwrap();
    let post = hook("apt-post");
    assert_eq!(post["deployed"]["generation"], 2, "apt-post deploys a generation: {post}");
    assert!(esp.join("loader/entries/lake-2+3.conf").exists(), "boot-counted entry for generation 2");
    let g2root = lake.join("deploy/2/root");
    assert!(g2root.join("usr/bin/lake-hello").exists());
    assert!(!g2root.join("tmp/scratch").exists(), "tmp is outside the POSIX zone");
    // Only the changed paths were scanned: the upper layer, not the tree.
    assert!(post["stats"]["files"].as_u64().unwrap() <= 4, "{post}");

    // Log and diff at package level.
    let log = ok(&lake, &["--zone", "posix", "log", "-n", "1"]);
    assert!(log.contains("Packages: +lake-hello 1.0") && log.contains("Trigger: apt (post)"), "{log}");
    let diff = ok(&lake, &["--zone", "posix", "diff", "before:last-apt-upgrade", "last-apt-upgrade"]);
    assert!(diff.contains("+lake-hello 1.0") && diff.contains("A /usr/bin/lake-hello"), "{diff}");

    // A local edit after the upgrade, then a rollback to before it.
    std::fs::write(merged.join("etc/local.conf"), "mine=3\n").unwrap();
    let mut a: Vec<String> =
        ["--zone", "posix", "--json", "rollback", "--to", "before:last-apt-upgrade", "--dry-run"].iter().map(|s| s.to_string()).collect();
    a.extend(ra.clone());
    let dry = json(&lc(&lake, &a));
    assert_eq!(dry["plan"]["packages"][0]["change"], "removed", "{dry}");
    assert_eq!(
        lakefs::Lake::open(&lake).unwrap().get_ref("posix/main").unwrap().unwrap().to_string(),
        post["commit"].as_str().unwrap(),
        "a dry run records nothing"
    );
    // Without --yes and without a terminal it refuses.
    let mut a: Vec<String> = ["--zone", "posix", "rollback", "--to", "before:last-apt-upgrade"].iter().map(|s| s.to_string()).collect();
    a.extend(ra.clone());
    a.extend(esp_args.clone());
    let refused = run(&lake, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    a.push("--yes".into());
    a.insert(2, "--json".into());
    let rb = json(&lc(&lake, &a));
    let g3 = rb["deployed"]["generation"].as_u64().unwrap();
    let kept: Vec<&str> = rb["plan"]["kept"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(kept, vec!["/etc/local.conf"], "{rb}");
    let g3root = lake.join(format!("deploy/{g3}/root"));
    assert!(!g3root.join("usr/bin/lake-hello").exists(), "the package's file is gone");
    assert_eq!(std::fs::read_to_string(g3root.join("etc/hello.conf")).unwrap(), "greeting=hi\n", "the package's conffile change is undone");
    assert_eq!(std::fs::read_to_string(g3root.join("etc/local.conf")).unwrap(), "mine=3\n", "local edits made after the target are kept");
    assert_eq!(std::fs::read_to_string(g3root.join("var/lib/dpkg/status")).unwrap(), STATUS_V1);
    // The running root was not touched without --now.
    assert!(merged.join("usr/bin/lake-hello").exists());

    // "Reboot" into the rolled-back generation: its overlay, a fresh upper layer.
    drop(ov);
    let ov = mount_overlay(&lake, g3 as u32, &merged);
    let ra = root_args(m, &lake, g3 as u32);
    assert!(!merged.join("usr/bin/lake-hello").exists());
    // Roll forward into the live overlay with --now.
    let mut a: Vec<String> =
        ["--zone", "posix", "--json", "rollback", "--to", "gen:2", "--now", "--yes"].iter().map(|s| s.to_string()).collect();
    a.extend(ra.clone());
    a.extend(esp_args.clone());
    let fwd = json(&lc(&lake, &a));
    assert!(fwd["applied"]["written"].as_u64().is_some_and(|n| n >= 1), "{fwd}");
    assert_eq!(std::fs::read_to_string(merged.join("etc/hello.conf")).unwrap(), "greeting=hello\n");
    assert!(merged.join("usr/bin/lake-hello").exists(), "the package is back without a reboot");
    assert_eq!(std::fs::read_to_string(merged.join("etc/local.conf")).unwrap(), "mine=3\n");
    // The live root now holds exactly the result: committing it changes nothing.
    let mut a: Vec<String> = ["--zone", "posix", "--json", "commit"].iter().map(|s| s.to_string()).collect();
    a.extend(ra.clone());
    let again = json(&lc(&lake, &a));
    assert_eq!(again["unchanged"], true, "live root differs from the rollback result: {again}");

    // Restore one file only, as it was at the install, into the live root.
    // (Generation 1 itself is gone by now: retention keeps 3.)
    assert!(!lake.join("deploy/1").exists() && !esp.join("loader/entries/lake-1.conf").exists());
    let install = head.to_string();
    let mut a: Vec<String> = ["--zone", "posix", "--json", "rollback", "--to", &install, "--file", "/etc/hello.conf", "--now", "--yes"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(ra.clone());
    a.extend(esp_args.clone());
    let one = json(&lc(&lake, &a));
    let paths: Vec<&str> = one["plan"]["changes"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str()).collect();
    assert_eq!(paths, vec!["/etc/hello.conf"], "{one}");
    assert_eq!(std::fs::read_to_string(merged.join("etc/hello.conf")).unwrap(), "greeting=hi\n");
    assert!(merged.join("usr/bin/lake-hello").exists(), "other paths stay");
    drop(ov);
}
