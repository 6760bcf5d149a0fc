//! mount.lakefs: the mount(8) helper for `mount -t lakefs LAKE MOUNTPOINT -o name=NAME`.
//!
//! mount(8) runs `mount.lakefs LAKE MOUNTPOINT [-sfnv] [-o OPTIONS]`. This returns
//! once the mount is up (exit 0), serving it from a background process, or exits
//! non-zero with the reason. Options are those of `lakefs mount -o` (see
//! `lakefs mount --help`); `name=NAME` picks the volume (default home).

use std::path::PathBuf;

use lake_volume::serve;

const USAGE: &str = "usage: mount.lakefs LAKE MOUNTPOINT [-o name=NAME,passthrough=on|off,...] [-s] [-f] [-n] [-v]\n\
    Mounts volume NAME (default home) of the lake at LAKE on MOUNTPOINT; normally run by\n\
    `mount -t lakefs LAKE MOUNTPOINT -o name=NAME`. Options: see `lakefs mount --help`.";

fn main() {
    let mut pos: Vec<PathBuf> = Vec::new();
    let mut options = Vec::new();
    let mut fake = false;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return;
            }
            Some("-o") => match args.next() {
                Some(o) => options.push(o.to_string_lossy().into_owned()),
                None => fail("-o needs a value"),
            },
            Some(s) if s.starts_with("-o") && s.len() > 2 => options.push(s[2..].to_string()),
            // sloppy, no-mtab, verbose: nothing to do differently.
            Some("-s" | "-n" | "-v") => {}
            Some("-f") => fake = true,
            Some(s) if s.starts_with('-') => fail(&format!("unknown flag {s}")),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    if pos.len() != 2 {
        fail("expected LAKE and MOUNTPOINT");
    }
    if fake {
        return;
    }
    let mountpoint = pos.pop().unwrap_or_default();
    let lake = pos.pop().unwrap_or_default();
    let r = serve::Request { foreground: false, name: None, options, lake, mountpoint };
    if let Err(e) = serve::mount(r).map_err(anyhow::Error::from) {
        eprintln!("mount.lakefs: {e:#}");
        std::process::exit(32);
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("mount.lakefs: {msg}\n{USAGE}");
    std::process::exit(1);
}
