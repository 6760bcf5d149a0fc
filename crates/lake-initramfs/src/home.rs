//! The persistent /home: `<lake>/state/home`, bind-mounted on /sysroot/home by
//! the initramfs, so users' files live outside every generation and a rollback
//! never touches them.
//!
//! The first boot creates it from the generation's own /home (mode, owner and
//! contents), copied into a scratch name and renamed into place, so a boot
//! interrupted half-way copies again instead of keeping half a /home.

use std::io;
use std::os::unix::fs::{lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `state/home` below the lake's root.
pub fn state_home(lake_root: &Path) -> PathBuf {
    lake_root.join("state").join("home")
}

/// What [`prepare`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Prepared {
    /// `state/home` was there already.
    Existing,
    /// Created from the generation's /home; this many entries were copied.
    Created { entries: u64 },
    /// Created empty (0755 root) because the generation has no /home.
    CreatedEmpty,
}

/// Makes sure `state_home` exists, creating it the first time from
/// `lower_home` (the generation's /home): same mode and owner, a copy of its
/// contents (directories, regular files, symlinks; owners, modes and
/// modification times kept; other file types are skipped).
pub fn prepare(lower_home: &Path, state_home: &Path) -> io::Result<Prepared> {
    if state_home.is_dir() {
        return Ok(Prepared::Existing);
    }
    let parent = state_home.parent().ok_or_else(|| io::Error::other(format!("{} has no parent", state_home.display())))?;
    // `state/` is the lake's own directory: root's only (lakefs::privacy).
    lakefs::privacy::create_dir_all(parent).map_err(io::Error::other)?;
    let scratch =
        parent.join(format!(".{}.new", state_home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "home".into())));
    if scratch.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&scratch)?;
    }
    let result = match std::fs::symlink_metadata(lower_home) {
        Ok(m) if m.is_dir() => {
            let mut entries = 0;
            copy_tree(lower_home, &scratch, &mut entries)?;
            Prepared::Created { entries: entries - 1 }
        }
        _ => {
            std::fs::create_dir(&scratch)?;
            std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o755))?;
            Prepared::CreatedEmpty
        }
    };
    std::fs::rename(&scratch, state_home)?;
    Ok(result)
}

fn with_path(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

/// Copies `src` (not following a symlink at `src` itself) to `dst`, which must
/// not exist; counts every entry created in `n`.
fn copy_tree(src: &Path, dst: &Path, n: &mut u64) -> io::Result<()> {
    let m = std::fs::symlink_metadata(src).map_err(|e| with_path(e, "reading", src))?;
    let ft = m.file_type();
    if ft.is_dir() {
        std::fs::create_dir(dst).map_err(|e| with_path(e, "creating", dst))?;
        let mut names: Vec<_> = std::fs::read_dir(src).map_err(|e| with_path(e, "listing", src))?.collect::<io::Result<_>>()?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            copy_tree(&e.path(), &dst.join(e.file_name()), n)?;
        }
    } else if ft.is_file() {
        std::fs::copy(src, dst).map_err(|e| with_path(e, "copying", src))?;
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| with_path(e, "reading", src))?;
        symlink(&target, dst).map_err(|e| with_path(e, "creating", dst))?;
    } else {
        // Sockets, FIFOs and device nodes have no business in a fresh /home.
        return Ok(());
    }
    *n += 1;
    lchown(dst, Some(m.uid()), Some(m.gid())).map_err(|e| with_path(e, "chown", dst))?;
    if !ft.is_symlink() {
        // After chown: chown clears set-uid/set-gid bits.
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(m.mode() & 0o7777)).map_err(|e| with_path(e, "chmod", dst))?;
        // Directories last touched by the copy above, so the time is set after it.
        let t = std::fs::FileTimes::new().set_modified(m.modified()?).set_accessed(m.accessed()?);
        std::fs::File::open(dst).and_then(|f| f.set_times(t)).map_err(|e| with_path(e, "setting the times of", dst))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;

    #[test]
    fn first_boot_copies_the_generations_home_then_keeps_it() {
        let t = TestDir::new("home");
        let lower = t.path().join("lower/home");
        std::fs::create_dir_all(lower.join("alice/.config")).unwrap();
        std::fs::write(lower.join("alice/notes.txt"), "hello\n").unwrap();
        std::fs::set_permissions(lower.join("alice/notes.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("notes.txt", lower.join("alice/link")).unwrap();
        lchown(lower.join("alice"), Some(1000), Some(1000)).unwrap();
        lchown(lower.join("alice/notes.txt"), Some(1000), Some(100)).unwrap();
        lchown(lower.join("alice/link"), Some(1000), Some(1000)).unwrap();
        std::fs::set_permissions(lower.join("alice"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&lower, std::fs::Permissions::from_mode(0o751)).unwrap();
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::open(lower.join("alice/notes.txt")).unwrap().set_modified(old).unwrap();

        let lake = t.path().join("lake");
        let home = state_home(&lake);
        assert_eq!(home, lake.join("state/home"));
        assert_eq!(prepare(&lower, &home).unwrap(), Prepared::Created { entries: 4 });

        let m = std::fs::metadata(&home).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o751);
        let a = std::fs::metadata(home.join("alice")).unwrap();
        assert_eq!((a.uid(), a.gid(), a.mode() & 0o7777), (1000, 1000, 0o700));
        let f = std::fs::metadata(home.join("alice/notes.txt")).unwrap();
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1000, 100, 0o600));
        assert_eq!(f.modified().unwrap(), old);
        assert_eq!(std::fs::read_to_string(home.join("alice/notes.txt")).unwrap(), "hello\n");
        assert_eq!(std::fs::read_link(home.join("alice/link")).unwrap(), PathBuf::from("notes.txt"));
        assert_eq!(std::fs::symlink_metadata(home.join("alice/link")).unwrap().uid(), 1000);
        assert!(home.join("alice/.config").is_dir());
        assert!(!lake.join("state/.home.new").exists());

        // Later boots keep what users wrote, whatever the generation has.
        std::fs::write(home.join("alice/notes.txt"), "changed\n").unwrap();
        std::fs::remove_dir_all(&lower).unwrap();
        assert_eq!(prepare(&lower, &home).unwrap(), Prepared::Existing);
        assert_eq!(std::fs::read_to_string(home.join("alice/notes.txt")).unwrap(), "changed\n");
    }

    #[test]
    fn no_home_in_the_generation_gives_an_empty_one_and_leftovers_are_redone() {
        let t = TestDir::new("home-empty");
        let lake = t.path().join("lake");
        let home = state_home(&lake);
        // A copy interrupted by a power cut.
        std::fs::create_dir_all(lake.join("state/.home.new/half")).unwrap();
        assert_eq!(prepare(&t.path().join("missing"), &home).unwrap(), Prepared::CreatedEmpty);
        assert_eq!(std::fs::metadata(&home).unwrap().mode() & 0o7777, 0o755);
        assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0);
        assert!(!lake.join("state/.home.new").exists());
    }
}
