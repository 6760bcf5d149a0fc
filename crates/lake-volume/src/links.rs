//! Which names of the working tree share an inode (hard links), so that a
//! change made through one name is recorded under every name.
//!
//! The driver reports the name a change came through; a file's other names
//! changed with it. Every scan of the volume tells this index of each file with
//! more than one name that it meets (the mount-time scan meets them all; the
//! driver reports both names of a new link), and before an incremental commit
//! the list of changed paths is widened with the other names of the inodes its
//! paths (and the paths below them) named when last scanned: a removed or
//! renamed name's partners are rescanned too, so the tree never keeps a hard
//! link to a name that is gone, and names scanned together are recorded as
//! links of one file. Names that a commit scanned and no longer found linked
//! are forgotten after it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

type Key = (u64, u64);

#[derive(Default)]
struct Inner {
    by_name: BTreeMap<Vec<u8>, (Key, u64)>,
    by_ino: HashMap<Key, BTreeSet<Vec<u8>>>,
    /// Bumped per commit; a name's entry carries the commit that last saw it.
    epoch: u64,
}

#[derive(Default)]
pub(crate) struct Links {
    inner: Mutex<Inner>,
}

impl Inner {
    fn unlink_name(&mut self, rel: &[u8]) {
        if let Some((key, _)) = self.by_name.remove(rel) {
            if let Some(set) = self.by_ino.get_mut(&key) {
                set.remove(rel);
                if set.is_empty() {
                    self.by_ino.remove(&key);
                }
            }
        }
    }

    /// Names at or below `rel` (all of them for the root, "").
    fn at_or_below<'a>(&'a self, rel: &'a [u8]) -> impl Iterator<Item = (&'a Vec<u8>, &'a (Key, u64))> + 'a {
        self.by_name
            .range::<[u8], _>((std::ops::Bound::Included(rel), std::ops::Bound::Unbounded))
            .take_while(move |(n, _)| n.starts_with(rel))
            .filter(move |(n, _)| lakefs::names::within(n, rel))
    }
}

impl Links {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A scan met `rel`, one of several names of inode `key`.
    pub(crate) fn note(&self, rel: &[u8], key: Key) {
        let mut g = self.lock();
        let epoch = g.epoch;
        if g.by_name.get(rel).is_some_and(|(k, _)| *k != key) {
            g.unlink_name(rel);
        }
        g.by_name.insert(rel.to_vec(), (key, epoch));
        g.by_ino.entry(key).or_default().insert(rel.to_vec());
    }

    /// Known names of inode `key`.
    pub(crate) fn names_of(&self, key: Key) -> Vec<Vec<u8>> {
        self.lock().by_ino.get(&key).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().by_name.is_empty()
    }

    /// Starts a commit of `paths`: returns them plus the other names of every
    /// inode named at or below them. The commit's scan re-notes what is still linked.
    pub(crate) fn widen(&self, paths: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut g = self.lock();
        g.epoch += 1;
        if g.by_name.is_empty() {
            return paths.to_vec();
        }
        let mut out: BTreeSet<Vec<u8>> = paths.iter().cloned().collect();
        for p in paths {
            let keys: Vec<Key> = g.at_or_below(p).map(|(_, (k, _))| *k).collect();
            for k in keys {
                out.extend(g.by_ino.get(&k).into_iter().flatten().cloned());
            }
        }
        out.into_iter().collect()
    }

    /// After a commit of `paths` (as widened): names the scan went over and did
    /// not meet as links any more (removed, or down to one name) are forgotten.
    pub(crate) fn settle(&self, paths: &[Vec<u8>]) {
        let mut g = self.lock();
        let epoch = g.epoch;
        let stale: Vec<Vec<u8>> = paths
            .iter()
            .flat_map(|p| g.at_or_below(p).filter(|(_, (_, e))| *e < epoch).map(|(n, _)| n.clone()).collect::<Vec<_>>())
            .collect();
        for n in stale {
            g.unlink_name(&n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_by_inode_and_forgets_what_is_gone() {
        let l = Links::default();
        assert_eq!(l.widen(&[b"a".to_vec()]), vec![b"a".to_vec()]);
        l.note(b"d/one", (1, 10));
        l.note(b"e/two", (1, 10));
        l.note(b"x", (1, 11));
        l.note(b"y", (1, 11));
        let w = l.widen(&[b"d/one".to_vec()]);
        assert_eq!(w, vec![b"d/one".to_vec(), b"e/two".to_vec()]);
        // A directory covers the names below it (a removed or renamed tree).
        let w = l.widen(&[b"d".to_vec(), b"q".to_vec()]);
        assert_eq!(w, vec![b"d".to_vec(), b"d/one".to_vec(), b"e/two".to_vec(), b"q".to_vec()]);
        // That commit met only e/two again: d/one is forgotten, e/two kept.
        l.note(b"e/two", (1, 10));
        l.settle(&w);
        assert_eq!(l.names_of((1, 10)), vec![b"e/two".to_vec()]);
        assert_eq!(l.widen(&[b"x".to_vec()]), vec![b"x".to_vec(), b"y".to_vec()]);
        // "dx" is not below "d".
        l.note(b"dx", (1, 12));
        assert_eq!(l.widen(&[b"d".to_vec()]), vec![b"d".to_vec()]);
        // A name that now belongs to another inode moves over.
        l.note(b"x", (1, 13));
        assert_eq!(l.names_of((1, 11)), vec![b"y".to_vec()]);
        assert_eq!(l.names_of((1, 13)), vec![b"x".to_vec()]);
        // The root covers everything.
        assert_eq!(l.widen(&[Vec::new()]).len(), 5);
    }
}
