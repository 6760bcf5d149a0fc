//! A real `lakefs mount` of a lake's volume (the daemon and the driver, as
//! installed systems run them), unmounted on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use lakefs::lake::{CreateOptions, Lake};

pub struct Mounted {
    _dir: Option<tempfile::TempDir>,
    pub lake: PathBuf,
    pub mnt: PathBuf,
}

impl Mounted {
    /// A new lake in a temporary directory with its `home` volume mounted; None
    /// (a skip, see [`crate::require_fuse`]) where FUSE mounts cannot run.
    pub fn fresh() -> Option<Mounted> {
        if !crate::require_fuse() {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = dir.path().join("lake");
        drop(Lake::create(&lake, &CreateOptions::default()).expect("create the lake"));
        let mnt = dir.path().join("mnt");
        Some(Mounted::start(&lake, &mnt).owning(dir))
    }

    /// Keeps `dir` (holding the lake and the mount point) until after the unmount.
    pub fn owning(mut self, dir: tempfile::TempDir) -> Mounted {
        self._dir = Some(dir);
        self
    }

    /// Mounts the `home` volume of the existing lake `lake` on `mnt` (created if
    /// missing) with `lakefs mount`, which returns once the mount is up.
    pub fn start(lake: &Path, mnt: &Path) -> Mounted {
        std::fs::create_dir_all(mnt).expect("mount point");
        let st = Command::new(crate::bin("lakefs")).arg("mount").arg(lake).arg(mnt).status().expect("run lakefs mount");
        assert!(st.success(), "lakefs mount failed: {st}");
        assert!(mnt.join(".lake/info").is_file(), "the mount serves .lake/info");
        Mounted { _dir: None, lake: lake.to_owned(), mnt: mnt.to_owned() }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // As SIGTERM: umount makes the daemon do its final commit and exit.
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}
