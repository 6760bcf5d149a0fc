//! Zones: which paths get full history (LAKE), history on close (HYBRID) or are
//! stored plainly (POSIX), read from zones.toml (`/etc/lake/zones.toml`; the
//! repository's `zones.toml` is the built-in default), plus per-volume overrides
//! in `LAKE/volumes/NAME/zones.toml` written by `lakectl zone set`.
//!
//! Rules name absolute path prefixes (`/home/*/.cache`, `*` matching within one
//! component); a volume maps them onto its mount point. Override rules name
//! mount-relative paths (`alice/build`) and win over the system rules wherever
//! they match. Among the matching rules of one kind the longest prefix wins.
//!
//! Paths are matched as bytes, so a name that is not UTF-8 gets its zone like
//! any other; rules themselves are UTF-8 (TOML).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobBuilder, GlobMatcher};

use lakefs::error::{Error, Result};

/// Where the system zone map lives in the image.
pub const SYSTEM_ZONES: &str = "/etc/lake/zones.toml";
/// The repository's zones.toml, used when the system has none.
pub const BUILTIN_ZONES: &str = include_str!("../../../zones.toml");
/// Micro-snapshot interval of files whose type has no `[[snapshot]]` policy.
pub const DEFAULT_SNAPSHOT_SECS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    Posix,
    Hybrid,
    Lake,
}

impl Zone {
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Posix => "posix",
            Zone::Hybrid => "hybrid",
            Zone::Lake => "lake",
        }
    }
}

impl std::str::FromStr for Zone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Zone> {
        match s.trim().to_ascii_lowercase().as_str() {
            "posix" => Ok(Zone::Posix),
            "hybrid" => Ok(Zone::Hybrid),
            "lake" => Ok(Zone::Lake),
            _ => Err(Error::Invalid(format!("unknown zone '{s}': use posix, hybrid or lake"))),
        }
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRule {
    /// Absolute prefix (system file) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// ... or mount-relative path (volume override file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub zone: Zone,
}

/// How often files of one type that are open for writing get a micro-snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotPolicy {
    /// A file type (see [`file_type`]) or `*`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// Or a glob over the file name (`*.log`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Seconds between snapshots; 0 turns micro-snapshots off for these files.
    pub interval_secs: u64,
}

/// One zones.toml file as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZonesFile {
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneRule>,
    #[serde(default, rename = "snapshot")]
    pub snapshots: Vec<SnapshotPolicy>,
}

fn one() -> u32 {
    1
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl ZonesFile {
    /// Parses zones.toml text; errors name `file` and the line.
    pub fn parse(text: &str, file: &Path) -> Result<ZonesFile> {
        let f: ZonesFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            Error::Invalid(format!("{}:{line}: {}", file.display(), e.message()))
        })?;
        if f.version != 1 {
            return Err(Error::Invalid(format!("{}: zones.toml version {} is not supported (expected 1)", file.display(), f.version)));
        }
        for r in &f.zones {
            if r.prefix.is_some() == r.path.is_some() {
                return Err(Error::Invalid(format!(
                    "{}: every [[zone]] needs exactly one of prefix (absolute) or path (mount-relative)",
                    file.display()
                )));
            }
            if let Some(p) = &r.prefix {
                if !p.starts_with('/') {
                    return Err(Error::Invalid(format!("{}: zone prefix '{p}' must be absolute", file.display())));
                }
            }
            pattern(r.prefix.as_deref().or(r.path.as_deref()).unwrap_or_default(), file)?;
        }
        for s in &f.snapshots {
            if s.file_type.is_none() && s.name.is_none() {
                return Err(Error::Invalid(format!("{}: every [[snapshot]] needs a type or a name glob", file.display())));
            }
            if let Some(n) = &s.name {
                Glob::new(n).map_err(|e| Error::Invalid(format!("{}: snapshot name glob '{n}': {e}", file.display())))?;
            }
        }
        Ok(f)
    }

    /// Reads `path`; a missing file is an empty one.
    pub fn load_or_empty(path: &Path) -> Result<ZonesFile> {
        match std::fs::read_to_string(path) {
            Ok(t) => ZonesFile::parse(&t, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ZonesFile::default_empty()),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn default_empty() -> ZonesFile {
        ZonesFile { version: 1, zones: Vec::new(), snapshots: Vec::new() }
    }

    /// The system zone map: /etc/lake/zones.toml if present, else the built-in one.
    pub fn system() -> Result<ZonesFile> {
        let p = Path::new(SYSTEM_ZONES);
        match std::fs::read_to_string(p) {
            Ok(t) => ZonesFile::parse(&t, p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ZonesFile::parse(BUILTIN_ZONES, Path::new("<built-in zones.toml>")),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Sets (or replaces) the override of mount-relative `rel`.
    pub fn set_override(&mut self, rel: &str, zone: Zone) {
        let rel = rel.trim_matches('/').to_owned();
        self.zones.retain(|r| r.path.as_deref() != Some(rel.as_str()));
        self.zones.push(ZoneRule { prefix: None, path: Some(rel), zone });
    }

    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| Error::Invalid(format!("encoding zones.toml: {e}")))
    }
}

/// A prefix pattern matches the path itself and everything below it.
fn pattern(prefix: &str, file: &Path) -> Result<(GlobMatcher, GlobMatcher)> {
    let p = prefix.trim_end_matches('/');
    let p = if p.is_empty() { "/" } else { p };
    let build = |g: &str| {
        GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map(|g| g.compile_matcher())
            .map_err(|e| Error::Invalid(format!("{}: zone pattern '{prefix}': {e}", file.display())))
    };
    let below = if p == "/" { "/**".to_owned() } else { format!("{p}/**") };
    Ok((build(p)?, build(&below)?))
}

struct Rule {
    itself: GlobMatcher,
    below: GlobMatcher,
    /// Components in the pattern: more is more specific.
    depth: usize,
    len: usize,
    zone: Zone,
}

impl Rule {
    fn new(pat: &str, zone: Zone, file: &Path) -> Result<Rule> {
        let (itself, below) = pattern(pat, file)?;
        Ok(Rule { itself, below, depth: pat.split('/').filter(|c| !c.is_empty()).count(), len: pat.len(), zone })
    }

    fn matches(&self, p: &[u8]) -> bool {
        let p = Path::new(OsStr::from_bytes(p));
        self.itself.is_match(p) || self.below.is_match(p)
    }
}

fn best(rules: &[Rule], p: &[u8]) -> Option<Zone> {
    // Longest match wins; on a tie the later rule (as written) wins.
    rules.iter().filter(|r| r.matches(p)).max_by_key(|r| (r.depth, r.len)).map(|r| r.zone)
}

struct Policy {
    file_type: Option<String>,
    name: Option<GlobMatcher>,
    secs: u64,
}

/// The zones of one volume: mount-relative path -> zone, and snapshot intervals.
pub struct VolumeZones {
    mountpoint: PathBuf,
    system: Vec<Rule>,
    overrides: Vec<Rule>,
    policies: Vec<Policy>,
}

impl VolumeZones {
    /// `system` rules are absolute and mapped onto `mountpoint`; `overrides` (the
    /// volume's file) may hold both kinds. Snapshot policies of the override file
    /// come first.
    pub fn new(system: &ZonesFile, overrides: &ZonesFile, mountpoint: &Path, names: (&Path, &Path)) -> Result<VolumeZones> {
        let mut sys = Vec::new();
        let mut ovr = Vec::new();
        for (f, file, is_override) in [(system, names.0, false), (overrides, names.1, true)] {
            for r in &f.zones {
                match (&r.prefix, &r.path) {
                    (Some(p), _) => sys.push(Rule::new(p, r.zone, file)?),
                    (None, Some(p)) if is_override => ovr.push(Rule::new(&format!("/{}", p.trim_matches('/')), r.zone, file)?),
                    (None, Some(p)) => sys.push(Rule::new(&String::from_utf8_lossy(&join_abs(mountpoint, p.as_bytes())), r.zone, file)?),
                    (None, None) => {}
                }
            }
        }
        // A system rule that covers the mount point itself (`/var` for a volume
        // mounted at /var/tmp/x, `/home` for /home) says what the directory is in
        // the root file system, not what a LAKE volume mounted there is: only rules
        // for paths inside the volume apply.
        let m = join_abs(mountpoint, b"");
        sys.retain(|r| !r.matches(&m));
        let mut policies = Vec::new();
        for s in overrides.snapshots.iter().chain(&system.snapshots) {
            let name = match &s.name {
                Some(n) => Some(Glob::new(n).map_err(|e| Error::Invalid(format!("snapshot name glob '{n}': {e}")))?.compile_matcher()),
                None => None,
            };
            policies.push(Policy { file_type: s.file_type.clone(), name, secs: s.interval_secs });
        }
        Ok(VolumeZones { mountpoint: mountpoint.to_owned(), system: sys, overrides: ovr, policies })
    }

    /// The system zone map plus the override file of a volume (missing: none).
    pub fn load(override_file: &Path, mountpoint: &Path) -> Result<VolumeZones> {
        let sys = ZonesFile::system()?;
        let ovr = ZonesFile::load_or_empty(override_file)?;
        VolumeZones::new(&sys, &ovr, mountpoint, (Path::new(SYSTEM_ZONES), override_file))
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The zone of mount-relative `rel` (bytes). Paths no rule covers are LAKE (the volume's own zone).
    pub fn zone(&self, rel: impl AsRef<[u8]>) -> Zone {
        let rel = trim_slashes(rel.as_ref());
        let mut abs = Vec::with_capacity(rel.len() + 1);
        abs.push(b'/');
        abs.extend_from_slice(rel);
        if let Some(z) = best(&self.overrides, &abs) {
            return z;
        }
        best(&self.system, &join_abs(&self.mountpoint, rel)).unwrap_or(Zone::Lake)
    }

    /// Micro-snapshot interval for `rel` in seconds (0: none). Only LAKE-zone files have one.
    pub fn snapshot_secs(&self, rel: impl AsRef<[u8]>) -> u64 {
        let rel = rel.as_ref();
        if self.zone(rel) != Zone::Lake {
            return 0;
        }
        let name = Path::new(OsStr::from_bytes(lakefs::names::file_name(rel)));
        let ty = file_type(rel);
        for p in &self.policies {
            let type_ok = p.file_type.as_deref().is_none_or(|t| t == "*" || t == ty);
            let name_ok = p.name.as_ref().is_none_or(|g| g.is_match(name));
            if type_ok && name_ok {
                return p.secs;
            }
        }
        DEFAULT_SNAPSHOT_SECS
    }
}

fn trim_slashes(mut b: &[u8]) -> &[u8] {
    while let [b'/', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

/// `mountpoint/rel` as bytes (the mount point alone, or "/", for the root).
fn join_abs(mountpoint: &Path, rel: &[u8]) -> Vec<u8> {
    let mut m = mountpoint.as_os_str().as_bytes();
    while let [rest @ .., b'/'] = m {
        m = rest;
    }
    let rel = trim_slashes(rel);
    let mut out = m.to_vec();
    if !rel.is_empty() || m.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
    out
}

/// A coarse file type from the name, for snapshot policies: text, image, audio,
/// video, document, archive, database or other.
pub fn file_type(rel: impl AsRef<[u8]>) -> &'static str {
    let name = lakefs::names::file_name(rel.as_ref());
    let ext = match name.iter().rposition(|c| *c == b'.') {
        Some(i) if i > 0 => name[i + 1..].to_ascii_lowercase(),
        _ => {
            return if matches!(name, b"Makefile" | b"README" | b"LICENSE" | b"Dockerfile") { "text" } else { "other" };
        }
    };
    let Ok(ext) = std::str::from_utf8(&ext) else { return "other" };
    match ext {
        "txt" | "md" | "rst" | "org" | "tex" | "csv" | "tsv" | "json" | "toml" | "yaml" | "yml" | "xml" | "html" | "htm" | "css" | "js"
        | "ts" | "rs" | "c" | "h" | "cc" | "cpp" | "hpp" | "py" | "sh" | "go" | "java" | "rb" | "pl" | "lua" | "sql" | "ini" | "conf"
        | "cfg" | "log" | "diff" | "patch" => "text",
        "jpg" | "jpeg" | "png" | "gif" | "webp" | "tif" | "tiff" | "bmp" | "heic" | "svg" | "raw" | "cr2" | "nef" => "image",
        "mp3" | "flac" | "ogg" | "opus" | "wav" | "m4a" | "aac" => "audio",
        "mp4" | "mkv" | "webm" | "mov" | "avi" => "video",
        "pdf" | "odt" | "ods" | "odp" | "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "epub" => "document",
        "zip" | "tar" | "gz" | "xz" | "zst" | "bz2" | "7z" | "iso" | "img" | "qcow2" => "archive",
        "db" | "sqlite" | "sqlite3" | "mdb" => "database",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(over: &str, mnt: &str) -> VolumeZones {
        let sys = ZonesFile::parse(BUILTIN_ZONES, Path::new("builtin")).expect("builtin parses");
        let ovr = ZonesFile::parse(over, Path::new("ovr.toml")).expect("override parses");
        VolumeZones::new(&sys, &ovr, Path::new(mnt), (Path::new("builtin"), Path::new("ovr.toml"))).expect("zones")
    }

    #[test]
    fn builtin_map_on_home() {
        let z = zones("", "/home");
        assert_eq!(z.zone("alice/notes.txt"), Zone::Lake);
        assert_eq!(z.zone("alice"), Zone::Lake);
        assert_eq!(z.zone(""), Zone::Lake);
        assert_eq!(z.zone("alice/.cache"), Zone::Posix);
        assert_eq!(z.zone("alice/.cache/mozilla/x"), Zone::Posix);
        assert_eq!(z.zone("alice/.bashrc"), Zone::Hybrid);
        assert_eq!(z.zone("alice/.config/app/settings"), Zone::Hybrid);
        // `*` stays within one component: a dotfile deeper down is LAKE.
        assert_eq!(z.zone("alice/src/.gitignore"), Zone::Lake);
        assert_eq!(z.zone("alice/.cachefoo"), Zone::Hybrid);
    }

    #[test]
    fn mapped_onto_another_mountpoint() {
        // Mounted elsewhere, the /home rules do not apply; a relative system rule would.
        let z = zones("", "/mnt/vol");
        assert_eq!(z.zone("alice/.cache/x"), Zone::Lake);
        let sys = ZonesFile::parse("[[zone]]\nprefix = \"/mnt/vol/*/.cache\"\nzone = \"posix\"\n", Path::new("s")).expect("parse");
        let z = VolumeZones::new(&sys, &ZonesFile::default_empty(), Path::new("/mnt/vol/"), (Path::new("s"), Path::new("o"))).expect("z");
        assert_eq!(z.zone("bob/.cache/y"), Zone::Posix);
        assert_eq!(z.zone("bob/.cachey"), Zone::Lake);
    }

    #[test]
    fn rules_above_the_mount_point_do_not_apply() {
        // /var is POSIX in the root file system; a volume mounted below it is still a volume.
        let z = zones("", "/var/tmp/vol");
        assert_eq!(z.zone("alice/notes.txt"), Zone::Lake);
        assert_eq!(z.zone(""), Zone::Lake);
        let z = zones("", "/home/alice");
        assert_eq!(z.zone("notes.txt"), Zone::Lake);
    }

    #[test]
    fn overrides_win_and_longest_match() {
        let over = "[[zone]]\npath = \"alice/build\"\nzone = \"posix\"\n\n[[zone]]\npath = \"alice/build/keep\"\nzone = \"lake\"\n\n\
                    [[zone]]\npath = \"alice/.cache/important\"\nzone = \"hybrid\"\n";
        let z = zones(over, "/home");
        assert_eq!(z.zone("alice/build/out.o"), Zone::Posix);
        assert_eq!(z.zone("alice/build/keep/a"), Zone::Lake);
        assert_eq!(z.zone("alice/.cache/important/x"), Zone::Hybrid);
        assert_eq!(z.zone("alice/.cache/other"), Zone::Posix);
        assert_eq!(z.zone("alice/buildx"), Zone::Lake);
    }

    #[test]
    fn set_override_round_trips() {
        let mut f = ZonesFile::default_empty();
        f.set_override("/alice/big/", Zone::Posix);
        f.set_override("alice/big", Zone::Hybrid);
        let text = f.to_toml().expect("toml");
        let back = ZonesFile::parse(&text, Path::new("x")).expect("parse");
        assert_eq!(back.zones.len(), 1);
        assert_eq!(back.zones[0].zone, Zone::Hybrid);
        assert_eq!(back.zones[0].path.as_deref(), Some("alice/big"));
    }

    #[test]
    fn snapshot_policies() {
        let over = "[[snapshot]]\ntype = \"text\"\ninterval_secs = 2\n\n[[snapshot]]\nname = \"*.iso\"\ninterval_secs = 0\n";
        let z = zones(over, "/home");
        assert_eq!(z.snapshot_secs("alice/notes.md"), 2);
        assert_eq!(z.snapshot_secs("alice/x.iso"), 0);
        assert_eq!(z.snapshot_secs("alice/photo.jpg"), DEFAULT_SNAPSHOT_SECS);
        // HYBRID and POSIX files get none.
        assert_eq!(z.snapshot_secs("alice/.bashrc"), 0);
        assert_eq!(z.snapshot_secs("alice/.cache/a.txt"), 0);
    }

    #[test]
    fn malformed_names_file_and_line() {
        let text = "version = 1\n\n[[zone]]\nprefix = \"/home\"\nzone = \"lakey\"\n";
        let e = ZonesFile::parse(text, Path::new("/etc/lake/zones.toml")).expect_err("bad zone");
        let msg = e.to_string();
        assert!(msg.starts_with("/etc/lake/zones.toml:5:"), "{msg}");
        let e = ZonesFile::parse("[[zone]\n", Path::new("z.toml")).expect_err("bad toml").to_string();
        assert!(e.starts_with("z.toml:1:"), "{e}");
        let e = ZonesFile::parse("[[zone]]\nprefix = \"home\"\nzone = \"lake\"\n", Path::new("z.toml")).expect_err("relative");
        assert!(e.to_string().contains("absolute"), "{e}");
    }
}
