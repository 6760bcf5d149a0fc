//! lakefs: the lake store, a content-addressed, versioned file store. It knows
//! objects, trees, commits, refs and the files of a lake; the layers above it
//! (lake-posix: the POSIX zone; lake-fuse, lake-catalog, lake-volume: the LAKE
//! zone; see docs/architecture.md) build on it, never the other way round.
//!
//! Where things are:
//! - [`superblock`]: the file that marks and versions a lake;
//! - [`id`]: BLAKE3 object ids; [`encoding`]: canonical byte encodings;
//! - [`tree`], [`commit`], [`chunklist`]: the object encodings (docs/format.md);
//!   [`tree_edit`]: changing a tree below a path; [`tree_check`]: refusing crafted trees;
//! - [`pack`]: the pack writer and reader; [`loose`]: hard-linkable loose objects;
//! - [`meta`]: the SQLite index; [`lake`]: opening a lake, its refs, reading objects;
//! - [`writer`]: write sessions (crash-safe ordering); [`import`]: the tree importer
//!   and [`chunker`] driver; [`checkout`] (below a directory fd: [`beneath`]),
//!   [`sparse`] files, [`fsmeta`] (inode metadata), [`diff`], [`verify`], [`gc`]
//!   (with [`reach`]), [`rev`] (revisions and times); [`ops`]: whole operations
//!   such as committing a directory;
//! - [`names`]: file names and paths as bytes, and how they are shown and sent as JSON;
//! - [`privacy`]: who may read a lake's files; [`substrate`]: the file system a lake lives on;
//! - [`error`]: the store's typed errors; [`progress`]: progress reporting;
//!   [`util`], [`sys`] (the store's raw syscalls).

pub mod beneath;
pub mod checkout;
pub mod chunker;
pub mod chunklist;
pub mod commit;
pub mod diff;
pub mod encoding;
pub mod error;
pub mod fsmeta;
pub mod gc;
pub mod id;
pub mod import;
pub mod lake;
pub mod loose;
pub mod meta;
pub mod names;
pub mod ops;
pub mod pack;
pub mod privacy;
pub mod progress;
pub mod reach;
pub mod rev;
pub mod sparse;
pub mod substrate;
pub mod superblock;
pub mod sys;
pub mod tree;
pub mod tree_check;
pub mod tree_edit;
pub mod util;
pub mod verify;
pub mod writer;

pub use error::{Error, Result};
pub use id::ObjectId;
pub use lake::Lake;
