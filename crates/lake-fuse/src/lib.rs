//! lake-fuse: the FUSE driver of the LAKE zone (see docs/lake-zone.md): a
//! passthrough over the volume's working directory (`LAKE/state/NAME`), with FUSE
//! passthrough for file data where the kernel has it, plus the virtual `.lake/`
//! and `views/` paths. It knows nothing of history: it reports to, and asks, a
//! [`hooks::VolumeHooks`] (implemented by lake-volume).
//!
//! - [`MountOptions`], [`spawn`], [`run`]: mounting and serving (this file);
//! - [`hooks`]: what the driver tells a volume and asks of it ([`hooks::ViewEntry`]);
//! - [`caller`]: who made a request (uid, gid, groups) and what it may do;
//! - `driver`: the passthrough operations; `inode`: the inode table;
//!   `virt`: the virtual paths; `privs`: acting with the caller's rights;
//!   `sys`: the raw syscalls (the crate's unsafe code is there and in `driver`).

pub mod caller;
mod driver;
pub mod hooks;
mod inode;
mod privs;
mod sys;
mod virt;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use driver::Driver;
use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use hooks::VolumeHooks;

/// How to mount: parsed from `-o` options by [`MountOptions::apply`].
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Use FUSE passthrough for file data when the kernel grants it (`passthrough=on|off`).
    pub passthrough: bool,
    /// Threads serving requests (`threads=N`).
    pub threads: usize,
    /// Source shown in /proc/mounts.
    pub fsname: String,
    /// Kernel mount flags given with -o (ro, noexec, nosuid, nodev, dev, suid, sync, ...).
    pub flags: Vec<MountOption>,
    /// When reads move atime (`noatime`, `relatime`, `strictatime`).
    pub atime: Atime,
    /// `nodiratime`: listing a directory does not move its atime.
    pub nodiratime: bool,
}

/// The atime policy of a mount. The kernel never updates a FUSE inode's atime
/// itself: the backing ext4 does, on the reads of the driver and of FUSE
/// passthrough, by the rules of the mount those backing files are opened
/// through. So a policy other than the backing mount's own is honoured by
/// serving the working tree through a private, detached bind mount of it that
/// has the policy (see `sys::detached_tree`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Atime {
    /// As the file system the lake is on is mounted (`atime`, `norelatime`: the default).
    #[default]
    Backing,
    Relatime,
    Strict,
    Never,
}

impl MountOptions {
    /// The detached mount's atime attributes (`MOUNT_ATTR_*`), or None when the
    /// working tree is served as it is mounted.
    pub(crate) fn atime_attr(&self) -> Option<u64> {
        let base = match self.atime {
            Atime::Backing if !self.nodiratime => return None,
            Atime::Backing | Atime::Relatime => sys::MOUNT_ATTR_RELATIME,
            Atime::Strict => sys::MOUNT_ATTR_STRICTATIME,
            Atime::Never => sys::MOUNT_ATTR_NOATIME,
        };
        Some(base | if self.nodiratime { sys::MOUNT_ATTR_NODIRATIME } else { 0 })
    }
}

impl Default for MountOptions {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        MountOptions {
            passthrough: true,
            threads: cpus.clamp(4, 16),
            fsname: "lakefs".into(),
            flags: Vec::new(),
            atime: Atime::Backing,
            nodiratime: false,
        }
    }
}

impl MountOptions {
    /// Applies a comma-separated `-o` list; returns the value of `name=` if present.
    /// Unknown options are an error naming them.
    pub fn apply(&mut self, list: &str) -> Result<Option<String>, String> {
        let mut name = None;
        for opt in list.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let (k, v) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            match (k, v) {
                ("name", Some(v)) => name = Some(v.to_string()),
                ("passthrough", Some("on" | "1" | "yes")) | ("passthrough", None) => self.passthrough = true,
                ("passthrough", Some("off" | "0" | "no")) | ("nopassthrough", None) => self.passthrough = false,
                ("threads", Some(v)) => {
                    self.threads = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| format!("threads={v}: expected a number from 1 to 64"))?
                }
                ("fsname", Some(v)) => self.fsname = v.to_string(),
                // Always on: every user sees the volume, the kernel checks permissions.
                ("rw" | "allow_other" | "default_permissions" | "defaults" | "auto" | "noauto" | "nofail" | "_netdev", None) => {}
                ("ro", None) => self.flags.push(MountOption::RO),
                ("noexec", None) => self.flags.push(MountOption::NoExec),
                ("exec", None) => self.flags.push(MountOption::Exec),
                ("nosuid", None) => self.flags.push(MountOption::NoSuid),
                ("suid", None) => self.flags.push(MountOption::Suid),
                ("nodev", None) => self.flags.push(MountOption::NoDev),
                ("dev", None) => self.flags.push(MountOption::Dev),
                ("noatime", None) => self.atime = Atime::Never,
                ("relatime", None) => self.atime = Atime::Relatime,
                ("strictatime", None) => self.atime = Atime::Strict,
                ("atime" | "norelatime", None) => self.atime = Atime::Backing,
                ("nodiratime", None) => self.nodiratime = true,
                ("diratime", None) => self.nodiratime = false,
                // When atime is written back is the backing file system's business.
                ("lazytime" | "nolazytime", None) => {}
                ("sync", None) => self.flags.push(MountOption::Sync),
                ("async", None) => self.flags.push(MountOption::Async),
                ("dirsync", None) => self.flags.push(MountOption::DirSync),
                // x-* options belong to fstab tools (x-systemd.*), not to us.
                (k, _) if k.starts_with("x-") => {}
                _ => {
                    return Err(format!(
                        "unknown mount option '{opt}' (known: name=, passthrough=on|off, threads=N, fsname=, ro, rw, \
                         [no]exec, [no]suid, [no]dev, [no]atime, relatime, strictatime, [no]diratime, [no]lazytime, \
                         sync, async, dirsync)"
                    ))
                }
            }
        }
        Ok(name)
    }

    fn config(&self) -> Config {
        let mut c = Config::default();
        c.mount_options =
            vec![MountOption::FSName(self.fsname.clone()), MountOption::Subtype("lakefs".into()), MountOption::DefaultPermissions];
        c.mount_options.extend(self.flags.iter().cloned());
        if self.atime == Atime::Never {
            // Shown in /proc/mounts; the kernel's own noatime check never fires for FUSE.
            c.mount_options.push(MountOption::NoAtime);
        }
        c.acl = SessionACL::All;
        c.n_threads = Some(self.threads.max(1));
        c.clone_fd = true;
        c
    }
}

/// A mounted volume served by background threads; unmounts when dropped.
pub struct Mounted {
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
    passthrough: bool,
}

impl Mounted {
    /// Whether file data goes through FUSE passthrough (the kernel granted it and it was wanted).
    pub fn passthrough(&self) -> bool {
        self.passthrough
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts and waits for the serving threads to end.
    pub fn unmount(mut self) -> io::Result<()> {
        match self.session.take() {
            Some(s) => s.umount_and_join(),
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}

fn session(
    workdir: &Path,
    mountpoint: &Path,
    hooks: Arc<dyn VolumeHooks>,
    opts: &MountOptions,
) -> io::Result<(Session<Driver>, Arc<AtomicBool>)> {
    let driver =
        Driver::new(workdir, hooks, opts).map_err(|e| io::Error::new(e.kind(), format!("working directory {}: {e}", workdir.display())))?;
    let flag = driver.passthrough_flag();
    let notifier = driver.notifier_slot();
    // The handshake (and so the passthrough decision) happens inside Session::new.
    let s = Session::new(driver, mountpoint, &opts.config())
        .map_err(|e| io::Error::new(e.kind(), format!("mounting on {}: {e}", mountpoint.display())))?;
    let _ = notifier.set(s.notifier());
    Ok((s, flag))
}

/// Mounts `workdir` on `mountpoint` and serves it from background threads.
/// Returns once the mount is up.
pub fn spawn(workdir: &Path, mountpoint: &Path, hooks: Arc<dyn VolumeHooks>, opts: &MountOptions) -> io::Result<Mounted> {
    let (s, flag) = session(workdir, mountpoint, hooks, opts)?;
    Ok(Mounted { session: Some(s.spawn()?), mountpoint: mountpoint.to_path_buf(), passthrough: flag.load(Ordering::Relaxed) })
}

/// Mounts and serves in this thread until unmounted. `ready` runs once the mount is
/// up (with the passthrough flag: set when the kernel granted it, cleared if
/// backing files cannot be used after all; and a handle that unmounts, e.g. on SIGTERM).
pub fn run(
    workdir: &Path,
    mountpoint: &Path,
    hooks: Arc<dyn VolumeHooks>,
    opts: &MountOptions,
    ready: impl FnOnce(Arc<AtomicBool>, fuser::SessionUnmounter),
) -> io::Result<()> {
    let (mut s, flag) = session(workdir, mountpoint, hooks, opts)?;
    ready(flag, s.unmount_callable());
    s.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_parse() {
        let mut o = MountOptions::default();
        assert!(o.passthrough);
        let name = o.apply("rw,name=work,passthrough=off,threads=8,noexec,x-systemd.automount").unwrap();
        assert_eq!(name.as_deref(), Some("work"));
        assert!(!o.passthrough);
        assert_eq!(o.threads, 8);
        assert_eq!(o.flags, vec![MountOption::NoExec]);
        assert_eq!(o.apply("passthrough=on").unwrap(), None);
        assert!(o.passthrough);
        let e = o.apply("threads=0").unwrap_err();
        assert!(e.contains("threads=0"), "{e}");
        let e = o.apply("rw,frobnicate").unwrap_err();
        assert!(e.contains("unknown mount option 'frobnicate'"), "{e}");
    }

    #[test]
    fn atime_options_are_accepted() {
        let mut o = MountOptions::default();
        assert_eq!(o.atime_attr(), None, "by default the working tree is served as mounted");
        o.apply("strictatime,lazytime,nolazytime,diratime").unwrap();
        assert_eq!(o.atime, Atime::Strict);
        assert_eq!(o.atime_attr(), Some(sys::MOUNT_ATTR_STRICTATIME));
        o.apply("noatime,nodiratime").unwrap();
        assert_eq!(o.atime_attr(), Some(sys::MOUNT_ATTR_NOATIME | sys::MOUNT_ATTR_NODIRATIME));
        assert!(o.config().mount_options.contains(&MountOption::NoAtime));
        // The last word wins, and the kernel is never given both atime and noatime.
        o.apply("relatime").unwrap();
        assert_eq!(o.atime, Atime::Relatime);
        assert!(!o.config().mount_options.contains(&MountOption::NoAtime));
        o.apply("atime,diratime").unwrap();
        assert_eq!(o.atime_attr(), None);
        assert!(o.flags.is_empty(), "{:?}", o.flags);
    }
}
