//! Applying validated [`Settings`] to a root file system tree: the files of
//! /etc that carry the hostname, timezone, locale, keyboard and accounts.
//!
//! The tree is a copy of the installed generation's root; what is written here
//! becomes the installed lake's own commit, never the profile's published one
//! (it holds password hashes and keys).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use crate::config::Settings;
use crate::error::{Error, IoContext, Result};

/// The first uid/gid for people (Debian's FIRST_UID).
pub const FIRST_UID: u32 = 1000;
/// The group whose members may use sudo (Debian's /etc/sudoers).
pub const SUDO_GROUP: &str = "sudo";

/// What [`apply`] wrote.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Applied {
    /// Paths relative to the root, in the order written.
    pub files: Vec<String>,
    /// The first user's uid (= gid of their own group).
    pub uid: Option<u32>,
}

fn write(root: &Path, rel: &str, text: &str, mode: u32, applied: &mut Applied) -> Result<()> {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).at(d)?;
    }
    // Replace, never write through a symlink of the image into somewhere else.
    let _ = fs::remove_file(&p);
    fs::write(&p, text).at(&p)?;
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).at(&p)?;
    applied.files.push(format!("/{rel}"));
    Ok(())
}

fn read(root: &Path, rel: &str) -> Result<String> {
    let p = root.join(rel);
    match fs::read_to_string(&p) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// Lines of a colon-separated database with `line` added (or replacing the entry of the same name).
fn upsert(text: &str, line: &str) -> String {
    let name = line.split(':').next().unwrap_or_default();
    let mut out: Vec<String> = text.lines().filter(|l| l.split(':').next() != Some(name)).map(str::to_owned).collect();
    out.push(line.to_owned());
    out.join("\n") + "\n"
}

/// Adds `user` to the member list (4th field for group, 4th for gshadow too) of `group`.
fn add_member(text: &str, group: &str, user: &str) -> Option<String> {
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.first() == Some(&group) && f.len() >= 4 {
                found = true;
                let mut members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
                if !members.contains(&user) {
                    members.push(user);
                }
                let joined = members.join(",");
                f[3] = &joined;
                return f.join(":");
            }
            l.to_owned()
        })
        .collect();
    found.then(|| lines.join("\n") + "\n")
}

fn free_id(passwd: &str, group: &str) -> u32 {
    let used = |text: &str, field: usize| -> Vec<u32> { text.lines().filter_map(|l| l.split(':').nth(field)?.parse().ok()).collect() };
    let (uids, gids) = (used(passwd, 2), used(group, 2));
    (FIRST_UID..60000).find(|id| !uids.contains(id) && !gids.contains(id)).unwrap_or(FIRST_UID)
}

/// Days since the epoch (the shadow "last change" field).
fn days_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86400)
}

/// Writes the settings into the tree at `root`.
pub fn apply(s: &Settings, root: &Path) -> Result<Applied> {
    let mut a = Applied::default();
    write(root, "etc/hostname", &format!("{}\n", s.hostname), 0o644, &mut a)?;
    let short = s.hostname.split('.').next().unwrap_or(&s.hostname);
    let alias = if short == s.hostname { String::new() } else { format!(" {short}") };
    write(
        root,
        "etc/hosts",
        &format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{}{alias}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
            s.hostname
        ),
        0o644,
        &mut a,
    )?;

    let lt = root.join("etc/localtime");
    let _ = fs::remove_file(&lt);
    symlink(format!("../usr/share/zoneinfo/{}", s.timezone), &lt).at(&lt)?;
    a.files.push("/etc/localtime".into());
    write(root, "etc/timezone", &format!("{}\n", s.timezone), 0o644, &mut a)?;

    write(root, "etc/default/locale", &format!("LANG={}\n", s.locale), 0o644, &mut a)?;
    if s.locale != "C.UTF-8" {
        // locales' locale-gen builds what /etc/locale.gen names (lake-first-boot.service runs it).
        let gen = read(root, "etc/locale.gen")?;
        let want = format!("{} {}", s.locale, s.locale.rsplit('.').next().unwrap_or("UTF-8"));
        let mut lines: Vec<String> =
            gen.lines().map(|l| if l.trim_start_matches(['#', ' ']) == want { want.clone() } else { l.to_owned() }).collect();
        if !lines.contains(&want) {
            lines.push(want);
        }
        write(root, "etc/locale.gen", &(lines.join("\n") + "\n"), 0o644, &mut a)?;
    }

    let k = &s.keyboard;
    write(
        root,
        "etc/default/keyboard",
        &format!(
            "# Written by lake-installer (keyboard-configuration(5)).\nXKBMODEL=\"pc105\"\nXKBLAYOUT=\"{}\"\nXKBVARIANT=\"{}\"\nXKBOPTIONS=\"\"\nBACKSPACE=\"guess\"\n",
            k.layout, k.variant
        ),
        0o644,
        &mut a,
    )?;
    write(root, "etc/vconsole.conf", &format!("KEYMAP={}\nXKBLAYOUT={}\nXKBVARIANT={}\n", k.layout, k.layout, k.variant), 0o644, &mut a)?;

    let mut passwd = read(root, "etc/passwd")?;
    let mut shadow = read(root, "etc/shadow")?;
    let mut group = read(root, "etc/group")?;
    let mut gshadow = read(root, "etc/gshadow")?;
    let days = days_now();
    if let Some(h) = &s.root_password_hash {
        shadow = upsert(&shadow, &format!("root:{h}:{days}:0:99999:7:::"));
    }
    if let Some(u) = &s.user {
        let id = free_id(&passwd, &group);
        a.uid = Some(id);
        passwd = upsert(&passwd, &format!("{}:x:{id}:{id}:{}:/home/{}:{}", u.name, u.full_name, u.name, u.shell));
        // "!" locks password login for a key-only user (sshd still takes the key).
        shadow = upsert(&shadow, &format!("{}:{}:{days}:0:99999:7:::", u.name, u.password_hash.as_deref().unwrap_or("!")));
        group = upsert(&group, &format!("{}:x:{id}:", u.name));
        gshadow = upsert(&gshadow, &format!("{}:!::", u.name));
        if !group.lines().any(|l| l.split(':').next() == Some(SUDO_GROUP)) {
            group = upsert(&group, &format!("{SUDO_GROUP}:x:27:"));
        }
        if !gshadow.lines().any(|l| l.split(':').next() == Some(SUDO_GROUP)) {
            gshadow = upsert(&gshadow, &format!("{SUDO_GROUP}:*::"));
        }
        group = add_member(&group, SUDO_GROUP, &u.name).unwrap_or(group);
        gshadow = add_member(&gshadow, SUDO_GROUP, &u.name).unwrap_or(gshadow);
    }
    write(root, "etc/passwd", &passwd, 0o644, &mut a)?;
    write(root, "etc/group", &group, 0o644, &mut a)?;
    write(root, "etc/shadow", &shadow, 0o640, &mut a)?;
    write(root, "etc/gshadow", &gshadow, 0o640, &mut a)?;
    for rel in ["etc/shadow", "etc/gshadow"] {
        // Debian: root:shadow 0640 (gid 42 when the group exists).
        let gid = group.lines().find(|l| l.starts_with("shadow:")).and_then(|l| l.split(':').nth(2)?.parse().ok()).unwrap_or(0);
        let p = root.join(rel);
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).at(&p)?;
    }

    if let Some(u) = &s.user {
        // /home is the LAKE zone's mount on the installed system, so the home
        // directory is made there at first boot (lake-first-boot.service) from
        // this seed, which lives in the POSIX zone.
        let seed = format!("var/lib/lake/first-boot/{}", u.name);
        let keys: String = u.ssh_authorized_keys.iter().map(|k| format!("{}\n", k.trim())).collect();
        write(root, &format!("{seed}/authorized_keys"), &keys, 0o600, &mut a)?;
        let p = root.join("var/lib/lake/first-boot");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o700)).at(&p)?;
    }
    Ok(a)
}

/// The installed lake's own commit: the settings on top of the profile's commit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SettingsCommit {
    /// The profile's (published) commit, generation `base_generation`.
    pub base: String,
    pub base_generation: u32,
    pub commit: String,
    /// The new default generation.
    pub generation: u32,
    pub files: Vec<String>,
}

/// Commit message of the settings commit (`lakectl log` shows it).
pub const MESSAGE: &str = "first-boot settings (lake-installer install config)";
pub const TRIGGER: &str = "install-config";

/// Applies `s` on top of the default generation of the lake at `lake_dir`
/// as a POSIX-zone commit of its own, deploys it and makes it the default.
/// The tree is prepared in a hard-linked copy of the generation's root on the
/// lake's own file system (files are replaced, never written through, so the
/// shared objects stay as they are).
pub fn commit(lake_dir: &Path, s: &Settings) -> Result<SettingsCommit> {
    use lake_posix::generation;
    let lake = lakefs::Lake::open(lake_dir).map_err(Error::lake(format!("opening the lake {}", lake_dir.display())))?;
    let err = |what: &str| Error::lake(format!("{what} in {}", lake_dir.display()));
    let base_generation = generation::default(&lake).map_err(err("reading the default generation"))?.unwrap_or(1);
    let base = generation::get(&lake, base_generation)
        .map_err(err("reading the generations"))?
        .ok_or_else(|| Error::Invalid(format!("{}: the lake has no generation {base_generation}", lake_dir.display())))?;
    let scratch = crate::install::Scratch { dir: lake_dir.join(format!(".settings-{}", lakefs::util::random_hex(4))), keep: false };
    let base_root = generation::root_dir(lake_dir, base_generation);
    run("cp", "coreutils", &["-a".as_ref(), "--link".as_ref(), base_root.as_os_str(), scratch.dir.as_os_str()])?;
    let applied = apply(s, &scratch.dir)?;
    let changed: Vec<Vec<u8>> = applied.files.iter().map(|f| f.trim_start_matches('/').as_bytes().to_vec()).collect();
    let req = lakefs::ops::CommitRequest {
        src: &scratch.dir,
        reference: generation::POSIX_REF,
        message: MESSAGE,
        scope: crate::lake_partition::POSIX_SCOPE,
        trigger: TRIGGER,
        changed: Some(&changed),
        options: lakefs::import::ImportOptions { loose: true },
        extra: vec![("installer".into(), format!("lake-installer {}", env!("CARGO_PKG_VERSION")))],
        allow_empty: true,
    };
    let out = lakefs::ops::commit_dir_onto(&lake, &req, None, &lakefs::progress::Silent).map_err(err("committing the settings"))?;
    drop(scratch);
    let g = generation::deploy(&lake, out.commit, false, &lakefs::progress::Silent).map_err(err("deploying the settings commit"))?;
    generation::set_default(&lake, g.number).map_err(err("making the settings generation the default"))?;
    Ok(SettingsCommit {
        base: base.commit.to_string(),
        base_generation,
        commit: out.commit.to_string(),
        generation: g.number,
        files: applied.files,
    })
}

fn run(program: &str, package: &'static str, args: &[&std::ffi::OsStr]) -> Result<String> {
    let o = Command::new(program).args(args).output().map_err(|error| Error::Spawn { program: program.into(), package, error })?;
    if !o.status.success() {
        return Err(Error::Command {
            what: format!("{program} {}", args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")),
            status: o.status.to_string(),
            stderr: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_owned())
}

/// Detaches the loop device and unmounts, however the commit ends.
struct Mounted {
    dev: String,
    dir: std::path::PathBuf,
    mounted: bool,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
        let _ = fs::remove_dir(&self.dir);
    }
}

/// [`commit`] on a lake already written into the ext4 at `offset` (`size`
/// bytes) of `target` (an image file or a disk whose partition table is not
/// written yet): mounted through a loop device of that range under `scratch`.
pub fn commit_at(target: &Path, offset: u64, size: u64, scratch: &Path, s: &Settings) -> Result<SettingsCommit> {
    use std::ffi::OsStr;
    let dev = run(
        "losetup",
        "mount",
        &[
            OsStr::new("--find"),
            OsStr::new("--show"),
            OsStr::new("--offset"),
            OsStr::new(&offset.to_string()),
            OsStr::new("--sizelimit"),
            OsStr::new(&size.to_string()),
            target.as_os_str(),
        ],
    )?;
    let dir = scratch.join(format!("lake-installer-mnt-{}", lakefs::util::random_hex(4)));
    let mut m = Mounted { dev, dir, mounted: false };
    fs::create_dir_all(&m.dir).at(&m.dir)?;
    run("mount", "mount", &[OsStr::new("-t"), OsStr::new("ext4"), OsStr::new(&m.dev), m.dir.as_os_str()])?;
    m.mounted = true;
    let c = commit(&m.dir, s)?;
    run("umount", "mount", &[m.dir.as_os_str()])?;
    m.mounted = false;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Keyboard, User};

    fn settings(user: bool) -> Settings {
        Settings {
            hostname: "lake-1.example.org".into(),
            timezone: "Europe/Berlin".into(),
            locale: "de_DE.UTF-8".into(),
            keyboard: Keyboard { layout: "de".into(), variant: "nodeadkeys".into() },
            root_password_hash: Some("$6$root$hash".into()),
            user: user.then(|| User {
                name: "ada".into(),
                full_name: "Ada L".into(),
                password_hash: Some("$6$ada$hash".into()),
                ssh_authorized_keys: vec!["ssh-ed25519 AAAA ada@x".into()],
                shell: "/bin/bash".into(),
            }),
        }
    }

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("etc");
        fs::create_dir_all(&e).unwrap();
        fs::write(e.join("passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        fs::write(e.join("shadow"), "root:*:20000:0:99999:7:::\n").unwrap();
        fs::write(e.join("group"), "root:x:0:\nshadow:x:42:\nsudo:x:27:\nusers:x:100:\n").unwrap();
        fs::write(e.join("gshadow"), "root:*::\nshadow:*::\nsudo:*::\n").unwrap();
        fs::write(e.join("locale.gen"), "# en_US.UTF-8 UTF-8\n# de_DE.UTF-8 UTF-8\n").unwrap();
        d
    }

    #[test]
    fn writes_every_file() {
        let d = tree();
        let r = d.path();
        let a = apply(&settings(true), r).unwrap();
        assert_eq!(a.uid, Some(1000));
        let rd = |p: &str| fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(rd("etc/hostname"), "lake-1.example.org\n");
        assert!(rd("etc/hosts").contains("127.0.1.1\tlake-1.example.org lake-1\n"));
        assert_eq!(fs::read_link(r.join("etc/localtime")).unwrap(), Path::new("../usr/share/zoneinfo/Europe/Berlin"));
        assert_eq!(rd("etc/timezone"), "Europe/Berlin\n");
        assert_eq!(rd("etc/default/locale"), "LANG=de_DE.UTF-8\n");
        assert!(rd("etc/locale.gen").lines().any(|l| l == "de_DE.UTF-8 UTF-8"));
        assert!(rd("etc/default/keyboard").contains("XKBLAYOUT=\"de\"\nXKBVARIANT=\"nodeadkeys\""));
        assert!(rd("etc/vconsole.conf").starts_with("KEYMAP=de\n"));
        assert!(rd("etc/passwd").contains("ada:x:1000:1000:Ada L:/home/ada:/bin/bash\n"));
        let shadow = rd("etc/shadow");
        assert!(shadow.starts_with("ada:$6$ada$hash:") || shadow.contains("\nada:$6$ada$hash:"), "{shadow}");
        assert!(shadow.contains("root:$6$root$hash:"), "{shadow}");
        assert_eq!(shadow.matches("root:").count(), 1);
        assert!(rd("etc/group").contains("sudo:x:27:ada\n") && rd("etc/group").contains("ada:x:1000:\n"));
        assert!(rd("etc/gshadow").contains("sudo:*::ada\n"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(r.join("etc/shadow")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(rd("var/lib/lake/first-boot/ada/authorized_keys"), "ssh-ed25519 AAAA ada@x\n");
    }

    #[test]
    fn root_only_touches_no_user() {
        let d = tree();
        let a = apply(&settings(false), d.path()).unwrap();
        assert_eq!(a.uid, None);
        assert_eq!(fs::read_to_string(d.path().join("etc/group")).unwrap(), "root:x:0:\nshadow:x:42:\nsudo:x:27:\nusers:x:100:\n");
        assert!(!d.path().join("var/lib/lake/first-boot").exists());
    }

    #[test]
    fn uid_skips_taken_ids() {
        assert_eq!(free_id("a:x:1000:1000::/:/bin/sh\n", "g:x:1001:\n"), 1002);
    }
}
