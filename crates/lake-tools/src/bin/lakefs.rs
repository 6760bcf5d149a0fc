//! lakefs: serve a LAKE-zone volume of a lake over FUSE.
//!
//! `lakefs mount [--foreground] [--name NAME] [-o OPTS] LAKE MOUNTPOINT`

use std::path::PathBuf;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use lake_volume::serve;

#[derive(Parser)]
#[command(name = "lakefs", version, about = "Serve a LAKE-zone volume of a lake (e.g. /home) over FUSE, recording its history in the lake")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount volume NAME of the lake at LAKE on MOUNTPOINT.
    #[command(long_about = "Mount volume NAME of the lake at LAKE on MOUNTPOINT.\n\n\
        The volume's working tree is LAKE/state/NAME; file data stays there (on the lake's ext4),\n\
        served through FUSE passthrough where the kernel has it (Linux 6.9+), else by the daemon.\n\
        Closes and fsyncs are recorded as commits on ref NAME/main; the mount also shows\n\
        MOUNTPOINT/.lake/info, .lake/control, .lake/at/<when>/ (read-only past trees) and views/.\n\n\
        Without --foreground, lakefs returns once the mount is up (exit 0) and keeps serving in\n\
        the background; it exits non-zero with the reason if the mount fails.\n\
        SIGTERM or SIGINT (or `umount MOUNTPOINT`) makes the final commit and unmounts.\n\n\
        Options (-o, comma-separated):\n\
        \x20 name=NAME           volume name (same as --name)\n\
        \x20 passthrough=on|off  FUSE passthrough for file data (default on; off serves reads and writes in the daemon)\n\
        \x20 threads=N           request-serving threads (default: number of CPUs, 4 to 16)\n\
        \x20 fsname=S            source shown in /proc/mounts\n\
        \x20 ro, [no]exec, [no]suid, [no]dev, [no]atime, sync, dirsync   kernel mount flags (default nosuid,nodev)\n\
        \x20 rw, defaults, allow_other, default_permissions, x-*         accepted and implied\n\n\
        Examples:\n\
        \x20 lakefs mount --name home /lake /home\n\
        \x20 lakefs mount --foreground -o passthrough=off /lake /mnt/home")]
    Mount {
        /// Stay in the foreground (for systemd Type=exec); log to stderr.
        #[arg(long, short = 'f')]
        foreground: bool,
        /// Volume name (its working tree is LAKE/state/NAME, its history ref NAME/main).
        #[arg(long)]
        name: Option<String>,
        /// Mount options, comma-separated (see above).
        #[arg(short = 'o', value_name = "OPTS")]
        options: Vec<String>,
        /// The lake (a directory holding a lake superblock).
        lake: PathBuf,
        /// Where to mount (an existing directory).
        mountpoint: PathBuf,
    },
}

fn main() {
    lake_cli_docs::maybe_generate(Args::command(), lake_cli_docs::Section::Commands);
    let args = Args::parse();
    let r: Result<()> = match args.cmd {
        Cmd::Mount { foreground, name, options, lake, mountpoint } => {
            serve::mount(serve::Request { foreground, name, options, lake, mountpoint }).map_err(anyhow::Error::from)
        }
    };
    if let Err(e) = r {
        eprintln!("{}", lake_tools::error_line("lakefs", "error: ", &e));
        std::process::exit(1);
    }
}
