//! Names and mount-relative paths as bytes, and their two text forms.
//!
//! A Linux file name is any bytes but '/' and NUL; it need not be UTF-8. The
//! LAKE zone keeps paths as bytes end to end (`Vec<u8>`, '/'-separated, no
//! leading '/': `alice/notes.txt`) and turns them into text only to show them
//! or to send them as JSON (docs/lake-zone.md, "Names"):
//!
//! - shown ([`escape`]): UTF-8 text as it is, but a backslash as `\\` and
//!   control characters and bytes that are not UTF-8 as `\xHH` (like `ls -b`,
//!   except that spaces and non-ASCII letters stay). `caf\xe9.txt` is the
//!   Latin-1 "café.txt"; [`unescape`] turns it back into the bytes.
//! - in JSON ([`to_json`], [`from_json`]): a string when the path is UTF-8,
//!   otherwise `{"bytes": "<escaped form>"}`; so every path a program reads
//!   from lakectl's or the control file's JSON maps back to exactly one name.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The printable, reversible form of a name or path (see the module notes).
pub fn escape(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        let _ = write!(out, "\\x{byte:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// The bytes an [`escape`]d text stands for: `\\` and `\xHH` are the only escapes.
pub fn unescape(s: &str) -> Result<Vec<u8>> {
    let bad = |why: &str| Error::Invalid(format!("'{s}': {why} (names are written with \\\\ for a backslash and \\xHH for a byte)"));
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or_else(|| bad("\\x needs two hex digits"))?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad("\\x needs two hex digits"))?);
                i += 4;
            }
            _ => return Err(bad("a backslash must start \\\\ or \\xHH")),
        }
    }
    Ok(out)
}

/// The bytes of a path kept in its escaped form (catalog rows, branch scopes);
/// a stored text that is not a valid escape (written before names were bytes)
/// is taken as it is.
pub fn from_escaped(s: &str) -> Vec<u8> {
    unescape(s).unwrap_or_else(|_| s.as_bytes().to_vec())
}

/// JSON for a path: the string when it is UTF-8, else `{"bytes": escaped}`.
pub fn to_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => serde_json::json!({ "bytes": escape(b) }),
    }
}

/// The path a [`to_json`] value stands for.
pub fn from_json(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::String(s) => Ok(s.as_bytes().to_vec()),
        Value::Object(o) if o.len() == 1 => match o.get("bytes") {
            Some(Value::String(e)) => unescape(e),
            _ => Err(Error::Invalid(format!("path {v}: expected a string or {{\"bytes\": \"..\"}}"))),
        },
        _ => Err(Error::Invalid(format!("path {v}: expected a string or {{\"bytes\": \"..\"}}"))),
    }
}

/// `#[serde(with = "crate::names::json")]` for a `Vec<u8>` path field.
pub mod json {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&super::to_json(b), s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let v: serde_json::Value = serde::Deserialize::deserialize(d)?;
        super::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(with = "crate::names::json_list")]` for a `Vec<Vec<u8>>` of paths.
pub mod json_list {
    pub fn serialize<S: serde::Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| super::to_json(b)))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v: Vec<serde_json::Value> = serde::Deserialize::deserialize(d)?;
        v.iter().map(|p| super::from_json(p).map_err(serde::de::Error::custom)).collect()
    }
}

/// A path's bytes as a `Path` (for joining onto a directory).
pub fn path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// `parent/name` (`name` alone when `parent` is the root, "").
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(parent.len() + 1 + name.len());
    out.extend_from_slice(parent);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// The components of a path: no empty ones, no `.`.
pub fn components(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.split(|c| *c == b'/').filter(|c| !c.is_empty() && *c != b".")
}

/// The directories above `rel`, outermost first: `a`, `a/b` for `a/b/c`.
pub fn ancestors(rel: &[u8]) -> impl Iterator<Item = &[u8]> {
    rel.iter().enumerate().filter(|(_, c)| **c == b'/').map(move |(i, _)| &rel[..i])
}

/// The last component of `rel` (all of it when it has no '/').
pub fn file_name(rel: &[u8]) -> &[u8] {
    rel.rsplit(|c| *c == b'/').next().unwrap_or(rel)
}

/// `rel` without its last component ("" for a top-level name).
pub fn parent(rel: &[u8]) -> &[u8] {
    rel.iter().rposition(|c| *c == b'/').map_or(&rel[..0], |i| &rel[..i])
}

/// True when `rel` is `dir` or lies below it ("" contains everything).
pub fn within(rel: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || rel == dir || (rel.starts_with(dir) && rel.get(dir.len()) == Some(&b'/'))
}

/// A mount-relative path as given (by a user, a request): no leading or trailing
/// '/', no `..`, no NUL; `.` and empty components dropped.
pub fn check_rel(p: &[u8]) -> Result<Vec<u8>> {
    if p.contains(&0) || components(p).any(|c| c == b"..") {
        return Err(Error::Invalid(format!("path '{}' must be mount-relative without '..'", escape(p))));
    }
    Ok(components(p).collect::<Vec<_>>().join(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_every_byte() {
        assert_eq!(escape(b"caf\xe9.txt"), "caf\\xe9.txt");
        assert_eq!(escape("café €.txt".as_bytes()), "café €.txt");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"new\nline\ttab\x7f"), "new\\x0aline\\x09tab\\x7f");
        // A C1 control character is escaped byte by byte.
        assert_eq!(escape("x\u{85}".as_bytes()), "x\\xc2\\x85");
        let all: Vec<u8> = (1..=255u8).collect();
        assert_eq!(unescape(&escape(&all)).expect("unescape"), all);
        for name in [&b"\xff\xfe"[..], b"\\x41", b"\\\\", b"plain", b"a b", b""] {
            assert_eq!(unescape(&escape(name)).expect("unescape"), name, "{}", escape(name));
        }
    }

    #[test]
    fn unescape_refuses_what_escape_never_writes() {
        for bad in ["\\", "\\x", "\\x4", "\\xzz", "\\n", "a\\b"] {
            let e = unescape(bad).expect_err(bad).to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn json_is_a_string_when_it_can_be() {
        assert_eq!(to_json(b"alice/notes.txt"), Value::String("alice/notes.txt".into()));
        assert_eq!(to_json(b"a\\b"), Value::String("a\\b".into()));
        let v = to_json(b"alice/caf\xe9.txt");
        assert_eq!(v, serde_json::json!({"bytes": "alice/caf\\xe9.txt"}));
        assert_eq!(from_json(&v).expect("back"), b"alice/caf\xe9.txt");
        assert_eq!(from_json(&Value::String("a\\b".into())).expect("plain"), b"a\\b");
        assert!(from_json(&serde_json::json!(3)).is_err());
        assert!(from_json(&serde_json::json!({"bytes": "x", "more": 1})).is_err());
    }

    #[test]
    fn path_pieces() {
        assert_eq!(join(b"", b"a"), b"a");
        assert_eq!(join(b"a", b"\xff"), b"a/\xff");
        assert_eq!(ancestors(b"a/b/c").collect::<Vec<_>>(), vec![&b"a"[..], b"a/b"]);
        assert_eq!(file_name(b"a/b/c"), b"c");
        assert_eq!(parent(b"a/b/c"), b"a/b");
        assert_eq!(parent(b"c"), b"");
        assert!(within(b"a/b", b"a") && within(b"a", b"a") && within(b"x", b""));
        assert!(!within(b"ab", b"a"));
        assert_eq!(check_rel(b"/a//./b/").expect("ok"), b"a/b");
        assert!(check_rel(b"a/../b").is_err());
        assert!(check_rel(b"a\0b").is_err());
    }
}
