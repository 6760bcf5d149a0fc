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
    lake_cli_docs::maybe_generate(docs_command(), lake_cli_docs::Section::Admin);
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
        // One line: mount(8) shows the helper's last line.
        eprintln!("{}", lake_tools::error_line("mount.lakefs", "", &e));
        std::process::exit(32);
    }
}

/// The arguments above as a clap command, for the man page and completions only:
/// mount(8)'s helper convention (exit 1 with USAGE on bad arguments) is parsed by hand.
fn docs_command() -> clap::Command {
    use clap::{Arg, ArgAction, Command};
    let flag = |id: &'static str, short: char, help: &'static str| Arg::new(id).short(short).action(ArgAction::SetTrue).help(help);
    Command::new("mount.lakefs")
        .version(env!("CARGO_PKG_VERSION"))
        // Named in the page, but mount.lakefs has no -V.
        .disable_version_flag(true)
        .about("Mount a LAKE-zone volume of a lake: the mount(8) helper for `mount -t lakefs`")
        .long_about(
            "Mount volume NAME (default home) of the lake at LAKE on MOUNTPOINT, as \
             `mount -t lakefs LAKE MOUNTPOINT -o name=NAME` (or an fstab line of type lakefs) runs it. \
             It returns once the mount is up (exit 0) and keeps serving it from a background process \
             (lakefs mount), or exits non-zero with the reason: 1 for bad arguments, 32 if the mount \
             failed.\n\nExamples:\n  mount -t lakefs /lake /home -o name=home\n  \
             fstab: /lake  /home  lakefs  name=home,passthrough=on  0  0",
        )
        .arg(Arg::new("lake").value_name("LAKE").required(true).help("The lake (a directory holding a lake superblock)"))
        .arg(Arg::new("mountpoint").value_name("MOUNTPOINT").required(true).help("Where to mount (an existing directory)"))
        .arg(Arg::new("options").short('o').value_name("OPTIONS").action(ArgAction::Append).help(
            "Mount options, comma-separated: name=NAME picks the volume; the others are those of \
             `lakefs mount -o` (passthrough=on|off, threads=N, fsname=S, ro, noexec, ...; see lakefs-mount(1))",
        ))
        .arg(flag("fake", 'f', "Fake: check the arguments, mount nothing"))
        .arg(flag("sloppy", 's', "Sloppy (accepted; nothing to do differently)"))
        .arg(flag("no-mtab", 'n', "No mtab (accepted; nothing to do differently)"))
        .arg(flag("verbose", 'v', "Verbose (accepted; nothing to do differently)"))
}

fn fail(msg: &str) -> ! {
    eprintln!("mount.lakefs: {msg}\n{USAGE}");
    std::process::exit(1);
}
