//! The control file `<mount>/.lake/control`: one JSON request written, the JSON
//! reply read back on the same open file.
//!
//! Requests: `{"op":"flush"}` (commit what is pending now; optional `trigger`
//! and `message` label the commit, e.g. `restore`), `{"op":"commit","paths":[..],
//! "message":".."}` (one commit of exactly those paths, trigger manual),
//! `{"op":"reload"}` (reread zones, then rescan), `{"op":"status","path"}` (head
//! with its time, trigger and message; the path's zone, branch scope and branch;
//! merge conflicts; open files; `not_recorded`: `[{"path","reason"}]`, paths
//! left out of commits because they could not be read; tried again when they change;
//! `passthrough`: whether the kernel serves file data by FUSE passthrough, null
//! before the mount is up). Replies: `{"ok":true,"commit":"b3:.."}` or `{"ok":false,"error":".."}`.
//!
//! Paths, both ways, are strings when they are UTF-8 and `{"bytes": "caf\xe9"}`
//! otherwise (`lakefs::names`).
//!
//! Read requests answer as the writer of the request (its FUSE credentials), with
//! only what it may read ([`super::visible`]): `{"op":"search","words","limit","under"}`,
//! `{"op":"view-list"}`, `{"op":"view-show","name"}`, `{"op":"view-create","name",
//! "query","replace"}`, `{"op":"view-delete","name"}`, `{"op":"log","path","max"}`,
//! `{"op":"tree","rev","path"}` (for restores); `status` lists the open and
//! not-recorded paths the caller may read. `{"op":"zone","paths":[..]}` gives the
//! zone of each path (the zone files are in the lake, which only root may read).

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use serde_json::{json, Value};

use lakefs::error::{Error, IoContext, Result};
use lakefs::names;

use super::committer::Shared;
use super::visible;
use lake_fuse::caller::Caller;

/// Triggers a flush may name (the others belong to the committer).
const FLUSH_TRIGGERS: [&str; 5] = ["manual", "restore", "switch", "merge", "close"];

fn reply(r: Result<Value>) -> Vec<u8> {
    let v = match r {
        Ok(mut v) => {
            v["ok"] = true.into();
            v
        }
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let mut b = serde_json::to_vec(&v).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    b.push(b'\n');
    b
}

pub(crate) fn handle(sh: &Shared, caller: &Caller, request: &[u8]) -> Vec<u8> {
    reply(handle_inner(sh, caller, request))
}

fn handle_inner(sh: &Shared, caller: &Caller, request: &[u8]) -> Result<Value> {
    let req: Value = serde_json::from_slice(request).map_err(|e| Error::Invalid(format!("control request is not JSON: {e}")))?;
    let op = req["op"].as_str().unwrap_or_default();
    let text = |k: &str| req[k].as_str().map(str::to_owned);
    // A mount-relative path (absent: the mount root).
    let rel = |k: &str| match &req[k] {
        Value::Null => Ok(Vec::new()),
        v => names::from_json(v).and_then(|p| names::check_rel(&p)),
    };
    match op {
        "flush" => {
            let label = match (text("trigger"), text("message")) {
                (None, None) => None,
                (t, m) => {
                    let t = t.unwrap_or_else(|| "manual".into());
                    if !FLUSH_TRIGGERS.contains(&t.as_str()) {
                        return Err(Error::Invalid(format!("flush trigger '{t}' is not one of {FLUSH_TRIGGERS:?}")));
                    }
                    Some((t, m.unwrap_or_default()))
                }
            };
            let c = sh.flush(false, label)?;
            Ok(json!({"commit": c}))
        }
        "commit" => {
            let paths = req["paths"].as_array().ok_or_else(|| Error::Invalid("commit needs \"paths\": [..]".into()))?;
            let paths: Vec<Vec<u8>> =
                paths.iter().map(|p| names::from_json(p).and_then(|p| names::check_rel(&p))).collect::<Result<_>>()?;
            if paths.is_empty() || paths.iter().any(|p| p.is_empty()) {
                return Err(Error::Invalid("commit needs at least one path below the mount root".into()));
            }
            let message = text("message").unwrap_or_default();
            let out = sh.commit_explicit(&paths, &message)?;
            // Branches: conflicts among the paths are resolved, merges complete, tips advance.
            let effect = super::branch::on_commit(sh.vol.lake(), sh.vol.name(), &paths, out.commit, &message)?;
            Ok(json!({"commit": out.commit, "unchanged": out.unchanged, "branches": effect}))
        }
        "reload" => {
            sh.vol.reload_zones()?;
            let c = sh.flush(true, Some(("manual".into(), "zones changed".into())))?;
            Ok(json!({"commit": c}))
        }
        "status" => {
            let skipped = visible::shown(sh, caller, sh.skipped().into_iter().collect(), |(p, _): &(Vec<u8>, String)| Cow::Borrowed(p), None);
            let skipped: Vec<Value> = skipped.iter().map(|(path, reason)| json!({"path": names::to_json(path), "reason": reason})).collect();
            let open = visible::shown(sh, caller, sh.open_files(), |p: &Vec<u8>| Cow::Borrowed(p), None);
            let open: Vec<Value> = open.iter().map(|p| names::to_json(p)).collect();
            // What `lakectl status` shows of the head, the path's zone and branch, and
            // the conflicts the caller may read: the lake itself is root's only.
            let (lake, volume) = (sh.vol.lake(), sh.vol.name());
            let head = sh.vol.head()?;
            let commit = head.map(|h| lake.read_commit(&h)).transpose()?;
            let path = rel("path")?;
            let scope = super::branch::scope_of(lake, volume, &names::escape(&path))?;
            let branch = scope.as_deref().map(|s| super::branch::current_branch(lake, volume, s)).transpose()?;
            let conflicts = super::branch::conflicts(lake, volume)?;
            let conflicts = visible::shown(sh, caller, conflicts, |c| Cow::Owned(names::from_escaped(&c.path)), None);
            Ok(json!({
                "passthrough": sh.passthrough.get().map(|f| f.load(std::sync::atomic::Ordering::Relaxed)),
                "head": head,
                "head_time": commit.as_ref().map(|c| c.time),
                "head_trigger": commit.as_ref().map(|c| &c.trigger),
                "head_message": commit.as_ref().map(|c| &c.message),
                "zone": sh.vol.zone(&path),
                "scope": scope,
                "branch": branch,
                "conflicts": conflicts,
                "open": open,
                "not_recorded": skipped,
            }))
        }
        "search" => {
            let words = text("words").unwrap_or_default();
            let limit = req["limit"].as_u64().unwrap_or(50) as usize;
            visible::search(sh, caller, &words, limit, &rel("under")?)
        }
        "view-list" | "view-show" | "view-create" | "view-delete" => visible::view_op(sh, caller, op, &req),
        "log" => {
            let max = req["max"].as_u64().map_or(usize::MAX, |m| m as usize);
            visible::log(sh, caller, &rel("path")?, max)
        }
        "tree" => {
            let rev = text("rev").ok_or_else(|| Error::Invalid("tree needs \"rev\"".into()))?;
            visible::tree(sh, caller, &rev, &rel("path")?)
        }
        "zone" => {
            let paths = req["paths"].as_array().ok_or_else(|| Error::Invalid("zone needs \"paths\": [..]".into()))?;
            let zones: Vec<Value> = paths.iter().map(|p| Ok(json!(sh.vol.zone(&names::from_json(p)?)))).collect::<Result<_>>()?;
            Ok(json!({"zones": zones}))
        }
        "" => Err(Error::Invalid("control request needs \"op\"".into())),
        other => Err(Error::Invalid(format!(
            "unknown control op '{other}' (flush, commit, reload, status, zone, search, view-list, view-show, view-create, view-delete, log, tree)"
        ))),
    }
}

/// Sends `req` to the daemon of the mount at `mountpoint`; returns its reply, or
/// an error carrying the daemon's message when it says `ok: false`.
pub fn request(mountpoint: &Path, req: &Value) -> Result<Value> {
    let path = mountpoint.join(".lake").join("control");
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(&path).at(&path)?;
    let body = serde_json::to_vec(req).map_err(|e| Error::Invalid(format!("encoding the request: {e}")))?;
    f.write_all(&body).at(&path)?;
    // The reply is read from the start of the same open file; it is one JSON
    // value, so stop as soon as what was read parses (some kernels read ahead
    // past the end of a synthetic file).
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let v: Value = loop {
        let n = f.read_at(&mut buf, out.len() as u64).at(&path)?;
        out.extend_from_slice(&buf[..n]);
        if let Ok(v) = serde_json::from_slice::<Value>(&out) {
            break v;
        }
        if let Some(end) = out.iter().position(|b| *b == b'\n') {
            if let Ok(v) = serde_json::from_slice::<Value>(&out[..end]) {
                break v;
            }
        }
        if n == 0 {
            return Err(Error::Invalid(format!("{}: reply is not JSON: {}", path.display(), String::from_utf8_lossy(&out))));
        }
    };
    if v["ok"].as_bool() != Some(true) {
        let msg = v["error"].as_str().unwrap_or("no reason given").to_owned();
        return Err(Error::Invalid(format!("{}: {msg}", mountpoint.display())));
    }
    Ok(v)
}
