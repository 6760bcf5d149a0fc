//! systemd-boot's boot counting, as it shows in entry file names.
//!
//! `lake-5.conf` has no counter: it booted fine (systemd-bless-boot renamed it
//! after boot-complete.target) or was never counted (the installer's generation
//! 1). `lake-5+3.conf` is a fresh entry with three tries; each boot attempt makes
//! systemd-boot rename it, `lake-5+2-1.conf` then `lake-5+1-2.conf`, and at
//! `lake-5+0-3.conf` the entry is bad: sorted last and not booted by default.

use serde::Serialize;

/// What the counter in an entry's name says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No counter: booted successfully, or never counted.
    Good,
    /// Still being tried: `left` attempts remain.
    Counting { left: u32 },
    /// Every try failed (no tries left).
    Bad,
}

impl State {
    /// `good`, `counting` or `bad` (JSON; the tries left are beside it).
    pub fn name(&self) -> &'static str {
        match self {
            State::Good => "good",
            State::Counting { .. } => "counting",
            State::Bad => "bad",
        }
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Good => f.write_str("good"),
            State::Counting { left } => write!(f, "counting ({left} left)"),
            State::Bad => f.write_str("bad"),
        }
    }
}

/// A lake entry's file name, taken apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CountedName {
    pub generation: u32,
    /// `None` when the name carries no counter.
    pub tries_left: Option<u32>,
    /// `None` when absent (also when the counter is `+N` alone, meaning none done yet).
    pub tries_done: Option<u32>,
}

fn number(s: &str) -> Option<u32> {
    // Digits only: `parse` would accept a leading '+'.
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl CountedName {
    /// Parses `lake-N.conf`, `lake-N+LEFT.conf` or `lake-N+LEFT-DONE.conf`;
    /// `None` for anything else (other entries share the directory).
    pub fn parse(file_name: &str) -> Option<CountedName> {
        let stem = file_name.strip_prefix("lake-")?.strip_suffix(".conf")?;
        let (gen, counter) = match stem.split_once('+') {
            None => (stem, None),
            Some((g, c)) => (g, Some(c)),
        };
        let generation = number(gen)?;
        let (tries_left, tries_done) = match counter {
            None => (None, None),
            Some(c) => match c.split_once('-') {
                None => (Some(number(c)?), None),
                Some((l, d)) => (Some(number(l)?), Some(number(d)?)),
            },
        };
        Some(CountedName { generation, tries_left, tries_done })
    }

    pub fn state(&self) -> State {
        match self.tries_left {
            None => State::Good,
            Some(0) => State::Bad,
            Some(left) => State::Counting { left },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<(u32, Option<u32>, Option<u32>, State)> {
        CountedName::parse(s).map(|c| (c.generation, c.tries_left, c.tries_done, c.state()))
    }

    #[test]
    fn names_and_states() {
        assert_eq!(p("lake-5.conf"), Some((5, None, None, State::Good)));
        assert_eq!(p("lake-5+3.conf"), Some((5, Some(3), None, State::Counting { left: 3 })));
        assert_eq!(p("lake-5+2-1.conf"), Some((5, Some(2), Some(1), State::Counting { left: 2 })));
        assert_eq!(p("lake-5+0-3.conf"), Some((5, Some(0), Some(3), State::Bad)));
        assert_eq!(p("lake-12+1-0.conf"), Some((12, Some(1), Some(0), State::Counting { left: 1 })));
    }

    #[test]
    fn other_names_are_not_lake_entries() {
        for s in [
            "lake-.conf",
            "lake-5",
            "lake-5.conf.tmp",
            "lake-x.conf",
            "lake-5+.conf",
            "lake-5+3-.conf",
            "lake-5+-1.conf",
            "lake-+5.conf",
            "lake-5+3-1-1.conf",
            "lake-5++3.conf",
            "debian-5.conf",
            "lake-99999999999.conf",
            ".lake-5.conf.tmp",
        ] {
            assert_eq!(CountedName::parse(s), None, "{s}");
        }
    }

    #[test]
    fn display() {
        assert_eq!(State::Counting { left: 2 }.to_string(), "counting (2 left)");
        assert_eq!(State::Bad.to_string(), "bad");
    }
}
