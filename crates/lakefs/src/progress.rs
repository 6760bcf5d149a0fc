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
