//! Does the assembled root have an init? Checked before switching root, so a
//! generation without systemd (an incomplete checkout, a package run that
//! removed it) fails in the initramfs with a message instead of a kernel panic
//! after switch-root.
//!
//! Paths are resolved as if the root were `/`: symlinks such as Debian's
//! /sbin -> usr/sbin and /usr/sbin/init -> ../lib/systemd/systemd are followed
//! inside it, never out of it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// What systemd in the initrd executes after switch-root, in its order:
/// itself (Debian's SYSTEMD_BINARY_PATH is /lib/systemd/systemd), then /sbin/init.
pub const INIT_CANDIDATES: &[&str] = &["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"];

/// Symlinks followed at most (Linux's own limit).
const MAX_LINKS: usize = 40;

/// `path` (absolute or relative to `/` of the root) resolved inside `root`:
/// the real path below `root` it names, with every symlink followed and `..`
/// never leaving `root`. None when a component does not exist, is not a
/// directory where one is needed, or symlinks loop.
pub fn resolve_in_root(root: &Path, path: &Path) -> Option<PathBuf> {
    // Components still to walk, in reverse order (the next one last).
    let mut todo: Vec<OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut here = root.to_path_buf();
        here.extend(&done);
        here.push(&c);
        let m = std::fs::symlink_metadata(&here).ok()?;
        if m.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return None;
            }
            let target = std::fs::read_link(&here).ok()?;
            if target.is_absolute() {
                done.clear();
            }
            push_components(&mut todo, &target);
        } else {
            if !todo.is_empty() && !m.is_dir() {
                return None;
            }
            done.push(c);
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Some(out)
}

fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

/// The first of [`INIT_CANDIDATES`] that is an executable regular file inside
/// `root` (as a path inside the root, e.g. `/usr/lib/systemd/systemd`).
pub fn find_init(root: &Path) -> Option<&'static str> {
    INIT_CANDIDATES.iter().copied().find(|c| {
        resolve_in_root(root, Path::new(c))
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_dir::TestDir;
    use std::os::unix::fs::symlink;

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn follows_merged_usr_links_inside_the_root() {
        let t = TestDir::new("init-merged");
        let r = t.path();
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        symlink("usr/sbin", r.join("sbin")).unwrap();
        symlink("usr/lib", r.join("lib")).unwrap();
        exe(&r.join("usr/lib/systemd/systemd"));
        symlink("../lib/systemd/systemd", r.join("usr/sbin/init")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("/sbin/init")), Some(r.join("usr/lib/systemd/systemd")));
        assert_eq!(resolve_in_root(r, Path::new("/lib/systemd/systemd")), Some(r.join("usr/lib/systemd/systemd")));
        assert_eq!(find_init(r), Some("/usr/lib/systemd/systemd"));
        // Only /sbin/init left: still bootable.
        std::fs::rename(r.join("usr/lib/systemd/systemd"), r.join("usr/lib/systemd/systemd.real")).unwrap();
        symlink("/usr/lib/systemd/systemd.real", r.join("usr/lib/systemd/systemd")).unwrap();
        std::fs::remove_file(r.join("usr/sbin/init")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("/usr/lib/systemd/systemd")), Some(r.join("usr/lib/systemd/systemd.real")));
        std::fs::remove_file(r.join("usr/lib/systemd/systemd.real")).unwrap();
        assert_eq!(find_init(r), None);
        exe(&r.join("usr/sbin/init"));
        assert_eq!(find_init(r), Some("/sbin/init"));
    }

    #[test]
    fn never_leaves_the_root() {
        let t = TestDir::new("init-escape");
        let outside = t.path().join("host");
        exe(&outside.join("usr/lib/systemd/systemd"));
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("usr/lib")).unwrap();
        // An absolute link and a ../.. link that would point at the host's
        // systemd if followed outside the root.
        let host_systemd = outside.join("usr/lib/systemd");
        symlink(&host_systemd, r.join("usr/lib/systemd")).unwrap();
        assert_eq!(find_init(&r), None);
        std::fs::remove_file(r.join("usr/lib/systemd")).unwrap();
        symlink("../../../host/usr/lib/systemd", r.join("usr/lib/systemd")).unwrap();
        assert_eq!(resolve_in_root(&r, Path::new("/usr/lib/systemd/systemd")), None, "root/host does not exist");
        assert_eq!(find_init(&r), None);
    }

    #[test]
    fn rejects_loops_missing_parts_and_non_executables() {
        let t = TestDir::new("init-bad");
        let r = t.path();
        symlink("b", r.join("a")).unwrap();
        symlink("a", r.join("b")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("/a")), None);
        assert_eq!(resolve_in_root(r, Path::new("/nope/x")), None);
        std::fs::write(r.join("file"), "").unwrap();
        assert_eq!(resolve_in_root(r, Path::new("/file/x")), None);
        std::fs::create_dir_all(r.join("usr/lib/systemd")).unwrap();
        std::fs::write(r.join("usr/lib/systemd/systemd"), "not executable").unwrap();
        assert_eq!(find_init(r), None);
        std::fs::create_dir_all(r.join("sbin/init")).unwrap();
        assert_eq!(find_init(r), None, "a directory is no init");
    }
}
