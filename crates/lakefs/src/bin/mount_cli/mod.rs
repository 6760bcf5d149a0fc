//! What `lakefs mount` and `mount.lakefs` share: option parsing, the volume
//! daemon, serving the mount, and daemonizing (return once the mount is up).

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use lakefs::fuse::{self, hooks::VolumeHooks, MountOptions};
use nix::sys::signal::{SigSet, Signal};

/// Set in the background child: serve, and say "ready" on stdout once mounted.
const CHILD_ENV: &str = "LAKEFS_MOUNT_CHILD";
const READY: &str = "lakefs-mount-ready";

pub struct Request {
    pub foreground: bool,
    pub name: Option<String>,
    pub options: Vec<String>,
    pub lake: PathBuf,
    pub mountpoint: PathBuf,
}

pub fn mount(r: Request) -> Result<()> {
    let mut opts = MountOptions::default();
    let mut name = r.name.clone();
    for list in &r.options {
        if let Some(n) = opts.apply(list).map_err(|e| anyhow!(e))? {
            if name.is_none() {
                name = Some(n);
            }
        }
    }
    let name = name.unwrap_or_else(|| "home".to_string());
    if !r.lake.join("superblock").exists() {
        bail!("{} is not a lake (no superblock file); create one with `lakectl init` or mkfs.lakefs", r.lake.display());
    }
    match lakefs::volume::locate::dead_mount(&r.mountpoint) {
        // A dead mount on the mount point itself (its daemon was killed): replace it.
        Some(root) if std::path::absolute(&r.mountpoint).is_ok_and(|m| m == root) => {
            eprintln!("lakefs: {} holds a dead lakefs mount (its daemon exited); detaching it and mounting again", r.mountpoint.display());
            nix::mount::umount2(&r.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("detaching the dead mount at {}", r.mountpoint.display()))?;
        }
        Some(root) => {
            bail!("mount point {} is inside a dead mount: {}", r.mountpoint.display(), lakefs::volume::locate::dead_mount_hint(&root))
        }
        None => {}
    }
    if !r.mountpoint.is_dir() {
        bail!("mount point {} is not a directory", r.mountpoint.display());
    }
    let child = std::env::var_os(CHILD_ENV).is_some();
    if !r.foreground && !child {
        return daemonize();
    }
    if opts.fsname == "lakefs" {
        opts.fsname = format!("lakefs:{name}");
    }
    let lake = std::fs::canonicalize(&r.lake).with_context(|| format!("lake {}", r.lake.display()))?;
    let mnt = std::fs::canonicalize(&r.mountpoint).with_context(|| format!("mount point {}", r.mountpoint.display()))?;

    raise_open_file_limit();

    // Block the stop signals in every thread; one thread waits for them and unmounts.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block().context("blocking SIGTERM/SIGINT")?;

    let daemon = lakefs::volume::Daemon::start(&lake, &name, &mnt)
        .with_context(|| format!("starting volume '{name}' of the lake {}", lake.display()))?;
    let workdir = daemon.work_dir().to_path_buf();
    let hooks: Arc<dyn VolumeHooks> = daemon.clone();
    let served = fuse::run(&workdir, &mnt, hooks, &opts, |passthrough_flag, mut unmounter| {
        let passthrough = passthrough_flag.load(std::sync::atomic::Ordering::Relaxed);
        daemon.set_passthrough(passthrough_flag);
        eprintln!(
            "lakefs: volume '{name}' of {} mounted on {} (working tree {}, FUSE passthrough {})",
            lake.display(),
            mnt.display(),
            workdir.display(),
            if passthrough { "on" } else { "off" }
        );
        if child {
            signal_ready();
        }
        let mnt_for_signal = mnt.clone();
        let _ = std::thread::Builder::new().name("lakefs-signals".into()).spawn(move || {
            if let Ok(sig) = stop.wait() {
                eprintln!("lakefs: {sig}: unmounting");
            }
            if let Err(e) = unmounter.unmount() {
                // Busy (open files, a shell's cwd): detach now; serving ends with the last user.
                eprintln!("lakefs: unmount: {e}; detaching lazily");
                if let Err(e) = nix::mount::umount2(&mnt_for_signal, nix::mount::MntFlags::MNT_DETACH) {
                    eprintln!("lakefs: lazy unmount failed too: {e}");
                }
            }
        });
    });
    let shut = daemon.shutdown();
    served.with_context(|| format!("serving {} on {}", workdir.display(), mnt.display()))?;
    shut.with_context(|| format!("final commit of volume '{name}'"))?;
    eprintln!("lakefs: volume '{name}' unmounted cleanly");
    Ok(())
}

/// Tells the waiting parent the mount is up, then detaches from its pipes.
/// The driver keeps an O_PATH descriptor for every inode the kernel knows (as
/// libfuse's passthrough_ll does), so the soft limit (often 1024) is raised to the
/// hard one; a hard limit below the tree's size is reported, not silently hit.
fn raise_open_file_limit() {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return;
    }
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) };
    }
    if rl.rlim_max < 65536 {
        eprintln!(
            "lakefs: warning: at most {} open files (hard limit); a tree with more entries than that cannot be served whole (raise LimitNOFILE / ulimit -Hn)",
            rl.rlim_max
        );
    }
}

fn signal_ready() {
    println!("{READY}");
    // Later output would hit closed pipes; keep it out of the way.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
}

/// Runs this same command again as a detached child and waits until it reports the
/// mount is up (exit 0) or fails (its error, exit non-zero).
fn daemonize() -> Result<()> {
    let exe = std::env::current_exe().context("finding this program's path")?;
    let mut cmd = Command::new(&exe);
    cmd.args(std::env::args_os().skip(1)).env(CHILD_ENV, "1").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            // A session of its own: the mount outlives the caller's terminal.
            libc::setsid();
            Ok(())
        });
    }
    let mut c = cmd.spawn().with_context(|| format!("starting {}", exe.display()))?;
    let stdout = c.stdout.take().ok_or_else(|| anyhow!("no pipe from the mount process"))?;
    let mut stderr = c.stderr.take().ok_or_else(|| anyhow!("no pipe from the mount process"))?;
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() == READY {
        return Ok(());
    }
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    let status = c.wait().context("waiting for the mount process")?;
    let err = err.trim();
    let err = err.strip_prefix("lakefs: error: ").unwrap_or(err);
    if err.is_empty() {
        bail!("the mount process ended ({status}) before the mount was up");
    }
    bail!("{err}")
}
