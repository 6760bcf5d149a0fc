//! Package-level views of POSIX-zone commits: what dpkg says is installed in a tree
//! (`var/lib/dpkg/status`), and what changed between two trees in package terms.
//!
//! Versions compare as dpkg does (deb-version(7)), so an upgrade is told from a
//! downgrade even across epochs and `~` pre-releases.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use lakefs::error::{Error, Result};
use lakefs::id::ObjectId;
use lakefs::lake::Lake;
use lakefs::tree::{Content, Node};

/// Where dpkg keeps its database, relative to the root of a tree.
pub const STATUS_PATH: &str = "var/lib/dpkg/status";

/// One package as dpkg's status file records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    /// Empty when dpkg recorded none.
    pub version: String,
    /// `amd64`, `all`, ...; empty when dpkg recorded none.
    pub arch: String,
    /// The dpkg state, the third word of `Status:`: `installed`, `half-installed`,
    /// `unpacked`, `half-configured`, `triggers-awaited`, `triggers-pending` or
    /// `config-files` (`not-installed` stanzas are dropped).
    pub status: String,
}

impl Package {
    /// True when the package's files are (at least partly) on disk; `config-files`
    /// means it was removed and only its conffiles remain.
    pub fn is_present(&self) -> bool {
        self.status != "config-files"
    }
}

/// A package-level difference between two trees.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum PackageChange {
    Installed { name: String, version: String },
    Removed { name: String, version: String },
    Upgraded { name: String, from: String, to: String },
    Downgraded { name: String, from: String, to: String },
}

impl PackageChange {
    /// The package's name (`name:arch` when several architectures of it are involved).
    pub fn name(&self) -> &str {
        match self {
            PackageChange::Installed { name, .. }
            | PackageChange::Removed { name, .. }
            | PackageChange::Upgraded { name, .. }
            | PackageChange::Downgraded { name, .. } => name,
        }
    }
}

impl fmt::Display for PackageChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackageChange::Installed { name, version } => write!(f, "+{name} {version}"),
            PackageChange::Removed { name, version } => write!(f, "-{name} {version}"),
            PackageChange::Upgraded { name, from, to } => write!(f, "~{name} {from} -> {to}"),
            PackageChange::Downgraded { name, from, to } => write!(f, "~{name} {from} -> {to} (downgrade)"),
        }
    }
}

/// One line for logs: `+lake-hello 1.0; ~bash 5.2.15-2 -> 5.2.15-3; -foo 2.0`.
/// Empty when there are no changes, so callers decide how to say "nothing".
pub fn summary(changes: &[PackageChange]) -> String {
    changes.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
}

/// The packages dpkg records in `tree` (a root tree), keyed by name, or by `name:arch`
/// for names installed for several architectures. A tree without a status file is not
/// a Debian root: its map is empty.
pub fn packages(lake: &Lake, tree: &ObjectId) -> Result<BTreeMap<String, Package>> {
    match status_content(lake, tree)? {
        None => Ok(BTreeMap::new()),
        Some(content) => {
            let mut buf = Vec::new();
            lake.write_content(&content, &mut buf)?;
            parse_status(&buf)
        }
    }
}

/// Package changes from tree `a` to tree `b`. Cheap when the commits did not touch
/// dpkg's database: the same content id means nothing is parsed.
pub fn diff_trees(lake: &Lake, a: &ObjectId, b: &ObjectId) -> Result<Vec<PackageChange>> {
    let ca = status_content(lake, a)?;
    let cb = status_content(lake, b)?;
    if ca.map(|c| c.id()) == cb.map(|c| c.id()) {
        return Ok(Vec::new());
    }
    let read = |c: Option<Content>| -> Result<BTreeMap<String, Package>> {
        match c {
            None => Ok(BTreeMap::new()),
            Some(c) => {
                let mut buf = Vec::new();
                lake.write_content(&c, &mut buf)?;
                parse_status(&buf)
            }
        }
    };
    Ok(diff_packages(&read(ca)?, &read(cb)?))
}

/// The content of the tree's status file, following hard links (and symlinks, which
/// some image builders use) to the file itself.
fn status_content(lake: &Lake, tree: &ObjectId) -> Result<Option<Content>> {
    let mut path = STATUS_PATH.to_owned();
    // A handful of hops is plenty; more means a loop.
    for _ in 0..8 {
        let Some(node) = lake.lookup(tree, &path)? else { return Ok(None) };
        match node {
            Node::File { content, .. } => return Ok(Some(content)),
            Node::Hardlink { target } => path = String::from_utf8_lossy(&target).into_owned(),
            Node::Symlink { target, .. } => {
                let target = String::from_utf8_lossy(&target).into_owned();
                path = if target.starts_with('/') {
                    target
                } else {
                    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    resolve_dots(&format!("{dir}/{target}"))
                };
            }
            other => {
                return Err(Error::Invalid(format!("/{STATUS_PATH} in tree {tree} is a {}, not dpkg's status file", other.kind_name())))
            }
        }
    }
    Err(Error::Invalid(format!("/{STATUS_PATH} in tree {tree}: too many links to follow")))
}

/// Removes `.` and `..` components (lookup does not interpret them beyond `.`).
fn resolve_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

/// Parses a dpkg status file (deb822 stanzas). Field names are case-insensitive;
/// continuation lines (leading space or tab) belong to the previous field and are
/// irrelevant to the fields read here.
pub fn parse_status(bytes: &[u8]) -> Result<BTreeMap<String, Package>> {
    // Descriptions of old packages may not be UTF-8; the fields read here are ASCII.
    let text = String::from_utf8_lossy(bytes);
    let mut found: Vec<Package> = Vec::new();
    let mut stanza = Stanza::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            stanza.finish(&mut found)?;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') || line.starts_with('#') {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            return Err(Error::Decode {
                what: "dpkg status file",
                why: format!("line {}: neither a field nor a continuation: {line:?}", i + 1),
            });
        };
        let value = value.trim().to_owned();
        match field.trim().to_ascii_lowercase().as_str() {
            "package" => stanza.package = Some(value),
            "version" => stanza.version = Some(value),
            "architecture" => stanza.arch = Some(value),
            "status" => stanza.status = Some(value),
            _ => {}
        }
        stanza.start_line.get_or_insert(i + 1);
    }
    stanza.finish(&mut found)?;

    // Key by name unless a name is installed for several architectures.
    let mut arches: BTreeMap<String, usize> = BTreeMap::new();
    for p in &found {
        *arches.entry(p.name.clone()).or_default() += 1;
    }
    let mut out = BTreeMap::new();
    for p in found {
        let key = if arches.get(&p.name).copied().unwrap_or(0) > 1 { format!("{}:{}", p.name, p.arch) } else { p.name.clone() };
        out.insert(key, p);
    }
    Ok(out)
}

#[derive(Default)]
struct Stanza {
    start_line: Option<usize>,
    package: Option<String>,
    version: Option<String>,
    arch: Option<String>,
    status: Option<String>,
}

impl Stanza {
    /// Ends the stanza: keeps the package unless dpkg records it as not installed.
    fn finish(&mut self, found: &mut Vec<Package>) -> Result<()> {
        let s = std::mem::take(self);
        let Some(start) = s.start_line else { return Ok(()) };
        let Some(name) = s.package else {
            return Err(Error::Decode { what: "dpkg status file", why: format!("stanza at line {start} has no Package field") });
        };
        // "want flag state", e.g. "install ok installed" or "deinstall ok config-files".
        let state = s.status.as_deref().and_then(|st| st.split_whitespace().nth(2)).unwrap_or("");
        if state.is_empty() || state == "not-installed" {
            return Ok(());
        }
        let arch = s.arch.unwrap_or_default();
        // A name may appear once per architecture (Multi-Arch: same); the last stanza
        // for one name and architecture wins, as it would when dpkg rewrites the file.
        found.retain(|p| !(p.name == name && p.arch == arch));
        found.push(Package { name, version: s.version.unwrap_or_default(), arch, status: state.to_owned() });
        Ok(())
    }
}

/// Package changes from `a` to `b` (maps from [`packages`]), sorted by name. Packages
/// left in `config-files` state count as removed. A name matches across the two sides by
/// name alone, so a package that moved from `amd64` to `all` is an upgrade, not a removal
/// plus an install; names with several architectures on either side match per
/// architecture and are shown as `name:arch`.
pub fn diff_packages(a: &BTreeMap<String, Package>, b: &BTreeMap<String, Package>) -> Vec<PackageChange> {
    let by_name = |m: &BTreeMap<String, Package>| {
        let mut out: BTreeMap<String, Vec<Package>> = BTreeMap::new();
        for p in m.values().filter(|p| p.is_present()) {
            out.entry(p.name.clone()).or_default().push(p.clone());
        }
        out
    };
    let (a, b) = (by_name(a), by_name(b));
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let empty = Vec::new();
    let mut changes = Vec::new();
    for name in names {
        let pa = a.get(name).unwrap_or(&empty);
        let pb = b.get(name).unwrap_or(&empty);
        if pa.len() <= 1 && pb.len() <= 1 {
            change(name.clone(), pa.first(), pb.first(), &mut changes);
            continue;
        }
        let arches: std::collections::BTreeSet<&String> = pa.iter().chain(pb.iter()).map(|p| &p.arch).collect();
        for arch in arches {
            let x = pa.iter().find(|p| &p.arch == arch);
            let y = pb.iter().find(|p| &p.arch == arch);
            change(format!("{name}:{arch}"), x, y, &mut changes);
        }
    }
    changes
}

fn change(name: String, a: Option<&Package>, b: Option<&Package>, out: &mut Vec<PackageChange>) {
    match (a, b) {
        (None, None) => {}
        (None, Some(b)) => out.push(PackageChange::Installed { name, version: b.version.clone() }),
        (Some(a), None) => out.push(PackageChange::Removed { name, version: a.version.clone() }),
        (Some(a), Some(b)) => match compare_versions(&a.version, &b.version) {
            Ordering::Less => out.push(PackageChange::Upgraded { name, from: a.version.clone(), to: b.version.clone() }),
            Ordering::Greater => out.push(PackageChange::Downgraded { name, from: a.version.clone(), to: b.version.clone() }),
            // Equal to dpkg (e.g. "1.0" and "0:1.0"): not a change.
            Ordering::Equal => {}
        },
    }
}

/// Compares two Debian versions as dpkg does (deb-version(7)): epoch numerically, then
/// upstream version, then revision, each with [`compare_fragment`].
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    compare_fragment(ea, eb).then_with(|| compare_fragment(ua, ub)).then_with(|| compare_fragment(ra, rb))
}

/// `[epoch:]upstream[-revision]`: the epoch ends at the first colon (when what precedes
/// it is all digits), the revision starts after the last hyphen. Missing parts are "",
/// which compares equal to "0".
fn split_version(v: &str) -> (&str, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => (e, r),
        _ => ("", v),
    };
    let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
    (epoch, upstream, revision)
}

/// dpkg's `verrevcmp`: alternate non-digit and digit runs. Non-digits compare by
/// [`order`] (`~` before the end of the string, letters before other characters);
/// digit runs compare numerically.
pub fn compare_fragment(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied().unwrap_or(0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == b'0' {
            i += 1;
        }
        while at(b, j) == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while at(a, i).is_ascii_digit() && at(b, j).is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if at(a, i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if at(b, j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Sort weight of one non-digit byte: `~` lowest, then the end of the string (and
/// digits, which end a non-digit run), then letters, then everything else.
fn order(c: u8) -> i32 {
    match c {
        b'~' => -1,
        0 => 0,
        c if c.is_ascii_digit() => 0,
        c if c.is_ascii_alphabetic() => c as i32,
        c => c as i32 + 256,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Stanzas copied from a Debian 12 host's /var/lib/dpkg/status (Breaks of libc6
    /// shortened), plus removed and multi-arch packages as dpkg writes them.
    const STATUS: &str = "\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 341
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u11
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Pre-Depends: awk
Conffiles:
 /etc/debian_version 8031d1483ffa9c819e6be94c6c77fd2a
 /etc/dpkg/origins/debian c47b6815f67ad1aeccb0d4529bd0b990
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system, and
 several important miscellaneous files, such as /etc/debian_version,
 /etc/host.conf, /etc/issue, /etc/motd, /etc/profile, and others,
 and the text of several common licenses in use on Debian systems.

Package: bash
Essential: yes
Status: install ok installed
Priority: required
Section: shells
Installed-Size: 7164
Maintainer: Matthias Klose <doko@debian.org>
Architecture: amd64
Multi-Arch: foreign
Source: bash (5.2.15-2)
Version: 5.2.15-2+b8
Replaces: bash-completion (<< 20060301-0), bash-doc (<= 2.05-1)
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
Conffiles:
 /etc/bash.bashrc 89269e1298235f1b12b4c16e4065ad0d
 /etc/skel/.bashrc ee35a240758f374832e809ae0ea4883a
Description: GNU Bourne Again SHell
 Bash is an sh-compatible command language interpreter that executes
 commands read from the standard input or from a file.  Bash also
 .
 Version: 99 (a continuation line, not a field)
Homepage: http://tiswww.case.edu/php/chet/bash/bashtop.html

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 13001
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u14
Replaces: libc6-amd64
Depends: libgcc-s1
Breaks: aide (<< 0.17.3-4+b3), busybox (<< 1.30.1-6),
 chrony (<< 4.2-3~)
Conffiles:
 /etc/ld.so.conf.d/x86_64-linux-gnu.conf d4e7a7b88a71b5ffd9e2644e71a0cfab
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: libc6
Status: install ok installed
Architecture: i386
Multi-Arch: same
Version: 2.36-9+deb12u14

Package: tzdata
Status: install ok installed
Priority: required
Section: localization
Installed-Size: 2565
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: all
Multi-Arch: foreign
Version: 2025b-0+deb12u2
Provides: tzdata-bookworm
Depends: debconf (>= 0.5) | debconf-2.0
Description: time zone and daylight-saving time data
 This package contains data required for the implementation of
 standard local time for many representative locations around the
 globe.
Homepage: https://www.iana.org/time-zones

Package: nano
Status: deinstall ok config-files
Priority: optional
Architecture: amd64
Version: 7.2-1+deb12u1
Conffiles:
 /etc/nanorc 1ef2a3a8ce2c6ba5f4a1c0d8a8f1a6f1

Package: vim
Status: purge ok not-installed
Priority: optional
Architecture: amd64

Package: broken
Status: reinstreq ok half-installed
Architecture: amd64
Version: 1.0-1
";

    #[test]
    fn parses_a_real_status_file() {
        let p = parse_status(STATUS.as_bytes()).unwrap();
        let keys: Vec<&str> = p.keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["base-files", "bash", "broken", "libc6:amd64", "libc6:i386", "nano", "tzdata"]);
        assert_eq!(
            p["bash"],
            Package { name: "bash".into(), version: "5.2.15-2+b8".into(), arch: "amd64".into(), status: "installed".into() }
        );
        assert_eq!(p["tzdata"].arch, "all");
        assert_eq!(p["libc6:i386"].version, "2.36-9+deb12u14");
        assert_eq!(p["nano"].status, "config-files");
        assert!(!p["nano"].is_present());
        assert_eq!(p["broken"].status, "half-installed");
        assert!(p["broken"].is_present());
    }

    #[test]
    fn rejects_garbage_and_accepts_empty() {
        assert!(parse_status(b"").unwrap().is_empty());
        assert!(parse_status(b"\n\n").unwrap().is_empty());
        let e = parse_status(b"Package: a\nStatus: install ok installed\nthis is not a field\n").unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse_status(b"Version: 1\nStatus: install ok installed\n").unwrap_err();
        assert!(e.to_string().contains("no Package field"), "{e}");
    }

    #[test]
    fn versions_compare_like_dpkg() {
        use Ordering::*;
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1:0.9", "2.0", Greater),
            ("1.0-1", "1.0-1+b1", Less),
            ("5.2.15-2", "5.2.15-3", Less),
            ("5.2.15-2+b8", "5.2.15-3", Less),
            ("1.0", "1.0-0", Equal),
            ("0:1.0", "1.0", Equal),
            ("1.10", "1.9", Greater),
            ("1.010", "1.10", Equal),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("2.36-9+deb12u14", "2.36-9+deb12u9", Greater),
            ("1:1.0", "0:9.9", Greater),
            ("10:1", "9:1", Greater),
            ("1.2-3-4", "1.2-3-5", Less),
            ("2025b-0+deb12u2", "2025a-0+deb12u2", Greater),
            ("7.2-1~bpo12+1", "7.2-1", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), *want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    fn pkg(name: &str, version: &str, arch: &str, status: &str) -> Package {
        Package { name: name.into(), version: version.into(), arch: arch.into(), status: status.into() }
    }

    fn map(ps: &[Package]) -> BTreeMap<String, Package> {
        ps.iter().map(|p| (format!("{}:{}", p.name, p.arch), p.clone())).collect()
    }

    #[test]
    fn diff_names_every_kind_of_change() {
        let a = map(&[
            pkg("bash", "5.2.15-2", "amd64", "installed"),
            pkg("foo", "2.0", "amd64", "installed"),
            pkg("gcc", "1:12", "amd64", "installed"),
            pkg("same", "1.0", "amd64", "installed"),
            pkg("nano", "7.2", "amd64", "installed"),
            pkg("moved", "1.0", "amd64", "installed"),
            pkg("libx", "1.0", "amd64", "installed"),
        ]);
        let b = map(&[
            pkg("bash", "5.2.15-3", "amd64", "installed"),
            pkg("lake-hello", "1.0", "all", "installed"),
            pkg("gcc", "12.1", "amd64", "installed"),
            pkg("same", "1.0", "amd64", "installed"),
            pkg("nano", "7.2", "amd64", "config-files"),
            pkg("moved", "1.1", "all", "installed"),
            pkg("libx", "1.0", "amd64", "installed"),
            pkg("libx", "1.0", "i386", "installed"),
        ]);
        let d = diff_packages(&a, &b);
        assert_eq!(
            d,
            vec![
                PackageChange::Upgraded { name: "bash".into(), from: "5.2.15-2".into(), to: "5.2.15-3".into() },
                PackageChange::Removed { name: "foo".into(), version: "2.0".into() },
                PackageChange::Downgraded { name: "gcc".into(), from: "1:12".into(), to: "12.1".into() },
                PackageChange::Installed { name: "lake-hello".into(), version: "1.0".into() },
                PackageChange::Installed { name: "libx:i386".into(), version: "1.0".into() },
                PackageChange::Upgraded { name: "moved".into(), from: "1.0".into(), to: "1.1".into() },
                PackageChange::Removed { name: "nano".into(), version: "7.2".into() },
            ]
        );
        assert_eq!(
            summary(&d),
            "~bash 5.2.15-2 -> 5.2.15-3; -foo 2.0; ~gcc 1:12 -> 12.1 (downgrade); +lake-hello 1.0; +libx:i386 1.0; \
             ~moved 1.0 -> 1.1; -nano 7.2"
        );
        assert_eq!(summary(&[]), "");
        assert!(diff_packages(&b, &b).is_empty());
        let json = serde_json::to_value(&d[0]).unwrap();
        assert_eq!(json["change"], "upgraded");
        assert_eq!(json["to"], "5.2.15-3");
    }

    fn write_status(root: &Path, text: &str) {
        let dir = root.join("var/lib/dpkg");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status"), text).unwrap();
    }

    fn commit(lake: &Lake, src: &Path, message: &str) -> ObjectId {
        let req = lakefs::ops::CommitRequest {
            src,
            reference: "posix/main",
            message,
            scope: "zone:posix",
            trigger: "test",
            changed: None,
            options: lakefs::import::ImportOptions { loose: true },
            extra: vec![],
            allow_empty: true,
        };
        let out = lakefs::ops::commit_dir(lake, &req, &lakefs::progress::Silent).unwrap();
        out.tree
    }

    #[test]
    fn diffs_trees_of_a_real_lake() {
        let tmp = tempfile::tempdir().unwrap();
        let lake = Lake::create(&tmp.path().join("lake"), &Default::default()).unwrap();
        let src = tmp.path().join("root");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/hostname"), "lake\n").unwrap();

        // Not a Debian root (yet).
        let t0 = commit(&lake, &src, "no dpkg");
        assert!(packages(&lake, &t0).unwrap().is_empty());

        write_status(&src, STATUS);
        let t1 = commit(&lake, &src, "debian");
        let p1 = packages(&lake, &t1).unwrap();
        assert_eq!(p1.len(), 7);
        assert_eq!(p1["bash"].version, "5.2.15-2+b8");
        let d01 = diff_trees(&lake, &t0, &t1).unwrap();
        assert_eq!(d01.len(), 6, "{d01:?}"); // all but the config-files one
        assert!(d01.iter().all(|c| matches!(c, PackageChange::Installed { .. })));

        // A commit that leaves dpkg alone changes no package.
        std::fs::write(src.join("etc/hostname"), "other\n").unwrap();
        let t2 = commit(&lake, &src, "hostname");
        assert_ne!(t1, t2);
        assert!(diff_trees(&lake, &t1, &t2).unwrap().is_empty());

        let upgraded = STATUS
            .replace("Version: 5.2.15-2+b8", "Version: 5.2.15-3")
            .replace("Package: nano\nStatus: deinstall ok config-files", "Package: nano\nStatus: install ok installed")
            + "\nPackage: lake-hello\nStatus: install ok installed\nArchitecture: all\nVersion: 1.0\n";
        let upgraded =
            upgraded.replace("Package: tzdata\nStatus: install ok installed", "Package: tzdata\nStatus: deinstall ok config-files");
        write_status(&src, &upgraded);
        let t3 = commit(&lake, &src, "apt upgrade");
        let d = diff_trees(&lake, &t2, &t3).unwrap();
        assert_eq!(summary(&d), "~bash 5.2.15-2+b8 -> 5.2.15-3; +lake-hello 1.0; +nano 7.2-1+deb12u1; -tzdata 2025b-0+deb12u2");
        let back = diff_trees(&lake, &t3, &t1).unwrap();
        assert_eq!(
            summary(&back),
            "~bash 5.2.15-3 -> 5.2.15-2+b8 (downgrade); -lake-hello 1.0; -nano 7.2-1+deb12u1; +tzdata 2025b-0+deb12u2"
        );
    }

    #[test]
    fn follows_a_hard_linked_status_file() {
        let tmp = tempfile::tempdir().unwrap();
        let lake = Lake::create(&tmp.path().join("lake"), &Default::default()).unwrap();
        let src = tmp.path().join("root");
        write_status(&src, STATUS);
        // "a" sorts before "var", so the importer meets this name first and records
        // var/lib/dpkg/status as a hard link to it.
        std::fs::create_dir_all(src.join("a")).unwrap();
        std::fs::hard_link(src.join("var/lib/dpkg/status"), src.join("a/status")).unwrap();
        let t = commit(&lake, &src, "linked");
        assert!(matches!(lake.lookup(&t, STATUS_PATH).unwrap(), Some(Node::Hardlink { .. })));
        assert_eq!(packages(&lake, &t).unwrap().len(), 7);
    }

    #[test]
    fn status_that_is_not_a_file_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let lake = Lake::create(&tmp.path().join("lake"), &Default::default()).unwrap();
        let src = tmp.path().join("root");
        std::fs::create_dir_all(src.join("var/lib/dpkg/status")).unwrap();
        let t = commit(&lake, &src, "odd");
        let e = packages(&lake, &t).unwrap_err();
        assert!(e.to_string().contains("is a dir"), "{e}");
    }
}
