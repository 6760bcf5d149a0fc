//! What the store's command-line tools (src/bin/: mkfs.lakefs, fsck.lakefs,
//! mount.lakefs, lakefs) share: how an error is shown with what to do about
//! it. The libraries' errors name only what is wrong; the hint is the tools'.

/// One error line, `PROG: [error: ]MESSAGE (hint: WHAT TO DO)`: one line,
/// because mount(8) shows only a helper's last line.
pub fn error_line(prog: &str, prefix: &str, e: &anyhow::Error) -> String {
    match hint(e) {
        Some(h) => format!("{prog}: {prefix}{e:#} (hint: {h})"),
        None => format!("{prog}: {prefix}{e:#}"),
    }
}

/// What to run about an error, for the errors a user can act on.
pub fn hint(e: &anyhow::Error) -> Option<String> {
    e.chain().find_map(|c| match c.downcast_ref::<lake_volume::serve::MountError>() {
        Some(lake_volume::serve::MountError::NotALake(p)) => Some(format!("create one with `lakectl init {}` or mkfs.lakefs", p.display())),
        _ => match c.downcast_ref::<lakefs::Error>() {
            Some(lakefs::Error::NotALake { .. }) => Some("give the lake's directory (mkfs.lakefs creates one)".into()),
            Some(lakefs::Error::DiskFull { .. }) => Some("free space or run `lakectl gc`, then retry".into()),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hints_follow_the_error_on_its_line() {
        let e = anyhow::Error::from(lakefs::Error::DiskFull { path: "/lake/packs".into(), during: "a pack write".into() })
            .context("writing a pack");
        let line = super::error_line("fsck.lakefs", "error: ", &e);
        assert!(line.starts_with("fsck.lakefs: error: writing a pack: "), "{line}");
        assert!(line.ends_with("(hint: free space or run `lakectl gc`, then retry)") && !line.contains('\n'), "{line}");
        let plain = anyhow::anyhow!("no such file");
        assert_eq!(super::error_line("mount.lakefs", "", &plain), "mount.lakefs: no such file");
    }
}
