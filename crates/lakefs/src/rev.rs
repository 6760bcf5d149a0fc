//! Revisions: how users name commits.
//!
//! - a ref name: `main`, `posix/main`;
//! - a commit id or a unique prefix of at least 4 hex digits, with or without `b3:`;
//! - `REV~N`: the N-th first parent;
//! - a time, meaning the newest commit on the default ref at or before it:
//!   `yesterday` (24 h ago), `2h ago`, `3 days ago`, `tuesday` (the most recent
//!   past Tuesday, 00:00 local time), ISO 8601 / RFC 3339 (`2025-06-01`,
//!   `2025-06-01T10:00:00Z`); time words are parsed by the `parse_datetime` crate
//!   (GNU `date -d` syntax);
//! - `before:<time>`: the newest commit strictly before that time;
//! - `REF@{<time>}` / `REF@{before:<time>}`: the same on another ref;
//! - names a layer above the store gives (`resolve_with`): the POSIX zone's
//!   `gen:N` and `last-apt-upgrade` (`lake_posix::rev`).

use crate::error::{Error, Result};
use crate::id::{parse_hex_prefix, ObjectId};
use crate::lake::Lake;

const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/// Rewrites the short forms people type into what `parse_datetime` reads:
/// `2h ago` -> `2 hours ago`, a bare weekday -> `last <weekday>` (the past one).
fn normalise_time(s: &str) -> String {
    let t = s.trim().to_ascii_lowercase();
    if WEEKDAYS.contains(&t.as_str()) || WEEKDAYS.iter().any(|d| d[..3] == t && t.len() == 3) {
        return format!("last {t}");
    }
    if let Some(num) = t.strip_suffix(" ago").or_else(|| t.strip_suffix("ago")) {
        let num = num.trim();
        let split = num.find(|c: char| !c.is_ascii_digit()).unwrap_or(num.len());
        let (n, unit) = num.split_at(split);
        let unit = match unit.trim() {
            "s" | "sec" | "secs" => Some("seconds"),
            "m" | "min" | "mins" => Some("minutes"),
            "h" | "hr" | "hrs" => Some("hours"),
            "d" => Some("days"),
            "w" | "wk" | "wks" => Some("weeks"),
            "mo" => Some("months"),
            "y" | "yr" | "yrs" => Some("years"),
            _ => None,
        };
        if let (false, Some(unit)) = (n.is_empty(), unit) {
            return format!("{n} {unit} ago");
        }
    }
    t
}

/// Parses a time expression relative to `now`; returns seconds since the epoch.
pub fn parse_time(s: &str, now: &jiff::Zoned) -> Result<i64> {
    let norm = normalise_time(s);
    let parsed = parse_datetime::parse_datetime_at_date(now.clone(), norm.as_str()).map_err(|_| Error::UnknownRevision(s.to_owned()))?;
    Ok(parsed.unix_epoch_second())
}

pub fn now_local() -> jiff::Zoned {
    jiff::Zoned::now()
}

/// The newest commit on the first-parent chain from `head` whose time is at or
/// before (`strict`: before) `t`.
pub fn at_time(lake: &Lake, head: ObjectId, t: i64, strict: bool) -> Result<Option<ObjectId>> {
    let mut cur = Some(head);
    while let Some(id) = cur {
        let c = lake.read_commit(&id)?;
        if c.time < t || (!strict && c.time == t) {
            return Ok(Some(id));
        }
        cur = c.parents.first().copied();
    }
    Ok(None)
}

fn show_time(t: i64) -> String {
    jiff::Timestamp::from_second(t).map(|ts| ts.to_string()).unwrap_or_else(|_| t.to_string())
}

fn by_time(lake: &Lake, rev: &str, reference: &str, expr: &str, now: &jiff::Zoned) -> Result<ObjectId> {
    let (strict, expr) = match expr.strip_prefix("before:") {
        Some(e) => (true, e),
        None => (false, expr),
    };
    let t = parse_time(expr, now).map_err(|_| Error::UnknownRevision(rev.to_owned()))?;
    let head = lake.get_ref(reference)?.ok_or_else(|| Error::UnknownRevision(format!("{rev} (ref '{reference}' does not exist)")))?;
    at_time(lake, head, t, strict)?.ok_or_else(|| Error::NothingAtTime {
        reference: reference.to_owned(),
        when: format!("{}{}", if strict { "before " } else { "" }, show_time(t)),
    })
}

/// Revision names a layer above the store resolves itself: `Ok(Some(id))` when
/// `rev` is one of them (given the lake and the default ref), `Ok(None)` when not.
pub type Names<'a> = &'a dyn Fn(&Lake, &str, &str) -> Result<Option<ObjectId>>;

/// Resolves `rev` to a commit id; times are looked up on `default_ref`.
pub fn resolve(lake: &Lake, rev: &str, default_ref: &str) -> Result<ObjectId> {
    resolve_with(lake, rev, default_ref, &now_local(), &|_, _, _| Ok(None))
}

/// [`resolve`], with `names` tried first for each revision (also the base of `REV~N`).
pub fn resolve_with(lake: &Lake, rev: &str, default_ref: &str, now: &jiff::Zoned, names: Names) -> Result<ObjectId> {
    let rev = rev.trim();
    if rev.is_empty() {
        return lake.get_ref(default_ref)?.ok_or_else(|| Error::UnknownRevision(format!("(empty: ref '{default_ref}' does not exist)")));
    }
    if let Some((base, n)) = rev.rsplit_once('~') {
        if let Ok(n) = n.parse::<u32>() {
            let mut id = resolve_with(lake, base, default_ref, now, names)?;
            for i in 0..n {
                id = *lake
                    .read_commit(&id)?
                    .parents
                    .first()
                    .ok_or_else(|| Error::UnknownRevision(format!("{rev} (history has only {i} ancestors)")))?;
            }
            return Ok(id);
        }
    }
    if let Some(id) = names(lake, rev, default_ref)? {
        return Ok(id);
    }
    if let Some((r, inner)) = rev.strip_suffix('}').and_then(|x| x.split_once("@{")) {
        return by_time(lake, rev, r, inner, now);
    }
    if let Some(id) = lake.get_ref(rev)? {
        return Ok(id);
    }
    let hex = rev.strip_prefix("b3:").unwrap_or(rev);
    if hex.len() >= 4 && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        let prefix = parse_hex_prefix(hex).unwrap_or_default();
        let odd = hex.len() % 2 == 1;
        let lower = hex.to_ascii_lowercase();
        let found = lake.db().commits_with_prefix(&prefix, 50)?;
        let matches: Vec<ObjectId> = found.into_iter().filter(|id| !odd || id.to_hex().starts_with(&lower)).collect();
        match matches.len() {
            1 => return Ok(matches[0]),
            0 if rev.starts_with("b3:") => return Err(Error::UnknownRevision(rev.to_owned())),
            0 => {}
            n => return Err(Error::AmbiguousRevision { rev: rev.to_owned(), why: format!("{n} commits start with it; give more digits") }),
        }
    }
    by_time(lake, rev, default_ref, rev, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Zoned {
        // Saturday 2026-11-21 12:00 UTC.
        "2026-11-21T12:00:00+00:00[UTC]".parse().unwrap()
    }

    fn ts(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_second()
    }

    #[test]
    fn time_words() {
        let n = now();
        assert_eq!(parse_time("yesterday", &n).unwrap(), ts("2026-11-20T12:00:00Z"));
        assert_eq!(parse_time("2h ago", &n).unwrap(), ts("2026-11-21T10:00:00Z"));
        assert_eq!(parse_time("3 days ago", &n).unwrap(), ts("2026-11-18T12:00:00Z"));
        assert_eq!(parse_time("tuesday", &n).unwrap(), ts("2026-11-17T00:00:00Z"));
        assert_eq!(parse_time("2025-06-01T10:00:00Z", &n).unwrap(), ts("2025-06-01T10:00:00Z"));
        assert_eq!(parse_time("2025-06-01", &n).unwrap(), ts("2025-06-01T00:00:00Z"));
        assert!(parse_time("the day the music died", &n).is_err());
    }
}
