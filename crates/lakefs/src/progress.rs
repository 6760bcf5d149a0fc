//! Progress reporting hook: the library reports, binaries draw (indicatif).

pub trait Progress: Sync {
    /// A new phase starts; totals may be 0 when unknown.
    fn phase(&self, _name: &str, _total_items: u64, _total_bytes: u64) {}
    fn advance(&self, _items: u64, _bytes: u64) {}
    fn finish(&self) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

/// An indicatif bar on stderr, hidden when stderr is not a terminal (scripts, CI).
pub struct Bar {
    bar: indicatif::ProgressBar,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        let bar = if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(0)
        };
        Bar { bar }
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total_items: u64, total_bytes: u64) {
        let style = if total_bytes > 0 {
            self.bar.set_length(total_bytes);
            "{msg:>18} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else if total_items > 0 {
            self.bar.set_length(total_items);
            "{msg:>18} [{bar:30}] {pos}/{len} eta {eta}"
        } else {
            "{msg:>18} {spinner} {elapsed}"
        };
        if let Ok(s) = indicatif::ProgressStyle::with_template(style) {
            self.bar.set_style(s.progress_chars("=> "));
        }
        self.bar.set_position(0);
        self.bar.set_message(name.to_owned());
        self.bar.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    fn advance(&self, items: u64, bytes: u64) {
        self.bar.inc(if self.bar.length().is_some_and(|l| l > 0) && bytes > 0 { bytes } else { items });
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
