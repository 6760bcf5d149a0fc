//! The mount daemon: what `lakefs mount` and `mount.lakefs` share. Option
//! parsing, the volume daemon, serving the mount until a stop signal, and
//! daemonizing (the caller returns once the mount is up, the mount is served by
//! a detached copy of the same program).
#![allow(unsafe_code)] // daemonizing: setsid/dup2 in the child and the RLIMIT_NOFILE raise (no safe wrappers here)

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use lake_fuse as fuse;
use lake_fuse::{hooks::VolumeHooks, MountOptions};
use nix::sys::signal::{SigSet, Signal};

/// Set in the background child: serve, and say "ready" on stdout once mounted.
const CHILD_ENV: &str = "LAKEFS_MOUNT_CHILD";
const READY: &str = "lakefs-mount-ready";

/// Why a mount failed. Each variant's message is what the mount programs print;
/// [`MountError::Failed`] keeps the failing step's cause as its source, so a
/// caller printing the chain (`{e:#}` with anyhow) shows step and cause.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A `-o` option that is unknown or has a bad value.
    #[error("{0}")]
    BadOption(String),
    #[error("{} is not a lake (no superblock file)", .0.display())]
    NotALake(PathBuf),
    #[error("mount point {} is inside a dead mount: {hint}", .mountpoint.display())]
    InsideDeadMount { mountpoint: PathBuf, hint: String },
    #[error("mount point {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A step of mounting or serving failed (`what` names it).
    #[error("{what}")]
    Failed {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no pipe from the mount process")]
    NoPipe,
    #[error("the mount process ended ({0}) before the mount was up")]
    ChildEnded(std::process::ExitStatus),
    /// The background mount process failed: its own message.
    #[error("{0}")]
    Child(String),
}

type Result<T, E = MountError> = std::result::Result<T, E>;

/// Names the step a fallible call was (as `anyhow::Context` does).
trait Step<T> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Step<T> for std::result::Result<T, E> {
    fn step(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| MountError::Failed { what: what(), source: Box::new(e) })
    }
}

/// What to mount, and how.
pub struct Request {
    pub foreground: bool,
    pub name: Option<String>,
    pub options: Vec<String>,
    pub lake: PathBuf,
    pub mountpoint: PathBuf,
}

/// Mounts volume `name` (default `home`, or `-o name=`) of the lake at
/// `r.lake` on `r.mountpoint`. In the foreground (or in the background child),
/// serves until SIGTERM/SIGINT/SIGHUP or an unmount, then makes the final commit;
/// otherwise starts this program again as a detached child with the same
/// arguments and returns once that child reports the mount is up.
pub fn mount(r: Request) -> Result<()> {
    let mut opts = MountOptions::default();
    let mut name = r.name.clone();
    for list in &r.options {
        if let Some(n) = opts.apply(list).map_err(MountError::BadOption)? {
            if name.is_none() {
                name = Some(n);
            }
        }
    }
    let name = name.unwrap_or_else(|| "home".to_string());
    if !r.lake.join("superblock").exists() {
        return Err(MountError::NotALake(r.lake));
    }
    match crate::locate::dead_mount(&r.mountpoint) {
        // A dead mount on the mount point itself (its daemon was killed): replace it.
        Some(root) if std::path::absolute(&r.mountpoint).is_ok_and(|m| m == root) => {
            eprintln!("lakefs: {} holds a dead lakefs mount (its daemon exited); detaching it and mounting again", r.mountpoint.display());
            nix::mount::umount2(&r.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                .step(|| format!("detaching the dead mount at {}", r.mountpoint.display()))?;
        }
        Some(root) => return Err(MountError::InsideDeadMount { mountpoint: r.mountpoint, hint: crate::locate::dead_mount_hint(&root) }),
        None => {}
    }
    if !r.mountpoint.is_dir() {
        return Err(MountError::NotADirectory(r.mountpoint));
    }
    let child = std::env::var_os(CHILD_ENV).is_some();
    if !r.foreground && !child {
        return daemonize();
    }
    if opts.fsname == "lakefs" {
        opts.fsname = format!("lakefs:{name}");
    }
    let lake = std::fs::canonicalize(&r.lake).step(|| format!("lake {}", r.lake.display()))?;
    let mnt = std::fs::canonicalize(&r.mountpoint).step(|| format!("mount point {}", r.mountpoint.display()))?;

    raise_open_file_limit();

    // Block the stop signals in every thread; one thread waits for them and unmounts.
    let mut stop = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(s);
    }
    stop.thread_block().step(|| "blocking SIGTERM/SIGINT".into())?;

    let daemon = crate::Daemon::start(&lake, &name, &mnt).step(|| format!("starting volume '{name}' of the lake {}", lake.display()))?;
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
    served.step(|| format!("serving {} on {}", workdir.display(), mnt.display()))?;
    shut.step(|| format!("final commit of volume '{name}'"))?;
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
    let exe = std::env::current_exe().step(|| "finding this program's path".into())?;
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
    let mut c = cmd.spawn().step(|| format!("starting {}", exe.display()))?;
    let stdout = c.stdout.take().ok_or(MountError::NoPipe)?;
    let mut stderr = c.stderr.take().ok_or(MountError::NoPipe)?;
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() == READY {
        return Ok(());
    }
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    let status = c.wait().step(|| "waiting for the mount process".into())?;
    let err = err.trim();
    let err = err.strip_prefix("lakefs: error: ").unwrap_or(err);
    if err.is_empty() {
        return Err(MountError::ChildEnded(status));
    }
    Err(MountError::Child(err.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(lake: &std::path::Path, mountpoint: &std::path::Path, options: &[&str]) -> Request {
        Request {
            foreground: true,
            name: None,
            options: options.iter().map(|s| s.to_string()).collect(),
            lake: lake.to_owned(),
            mountpoint: mountpoint.to_owned(),
        }
    }

    #[test]
    fn refuses_before_mounting_what_cannot_be_mounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"").expect("write");

        // An unknown option is named, before anything is looked at.
        let e = mount(request(&lake, dir.path(), &["passthrough=on,bogus"])).unwrap_err();
        assert!(matches!(&e, MountError::BadOption(m) if m.contains("unknown mount option 'bogus'")), "{e}");

        let e = mount(request(&lake, dir.path(), &[])).unwrap_err();
        assert!(matches!(&e, MountError::NotALake(p) if *p == lake), "{e}");
        assert!(e.to_string().contains("is not a lake (no superblock file)"), "{e}");

        drop(lakefs::Lake::create(&lake, &Default::default()).expect("create the lake"));
        let e = mount(request(&lake, &file, &[])).unwrap_err();
        assert!(matches!(&e, MountError::NotADirectory(p) if *p == file), "{e}");
        assert_eq!(e.to_string(), format!("mount point {} is not a directory", file.display()));
    }

    #[test]
    fn a_failed_step_keeps_its_cause() {
        let e = std::fs::read("/nonexistent/lake-test").step(|| "reading the thing".into()).unwrap_err();
        assert_eq!(e.to_string(), "reading the thing");
        let cause = std::error::Error::source(&e).expect("the cause is kept as the source");
        assert!(cause.to_string().contains("No such file"), "{cause}");
    }
}
