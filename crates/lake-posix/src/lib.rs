//! lake-posix: the POSIX zone of Lake OS, the root file system's history on top
//! of the lake store (`lakefs`). See docs/format.md (generations) and DESIGN.md.
//!
//! Where things are:
//! - [`generation`]: deployed generations (`deploy/N/`: checkout, hot cache,
//!   overlay upper), the default one, retention;
//! - [`hotcache`]: the compact index of a generation's tree early boot reads;
//! - [`overlay_upper`]: what a running root's overlay upper layer changed;
//! - [`posix`]: commits of those changes around package runs, and their classes;
//! - [`dpkg`]: what dpkg says changed between two trees, in package terms;
//! - [`rollback`]: a new commit whose tree is an older one (whole or per path);
//! - [`live_apply`]: writing a tree difference into the live root (`--now`);
//! - [`rev`]: `gen:N` and `last-apt-upgrade`, then the store's revision names.
//!
//! Depends on the store only; lake-boot and lake-initramfs build on it.

pub mod dpkg;
pub mod generation;
pub mod hotcache;
pub mod live_apply;
pub mod overlay_upper;
pub mod posix;
pub mod rev;
pub mod rollback;
