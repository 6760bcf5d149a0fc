//! lakefs: the lake, a content-addressed, versioned file store.
//!
//! Where things are:
//! - [`superblock`]: the file that marks and versions a lake;
//! - [`id`]: BLAKE3 object ids; [`encoding`]: canonical byte encodings;
//! - [`tree`], [`commit`], [`chunklist`]: the object encodings (docs/format.md);
//! - [`pack`]: the pack writer and reader; [`loose`]: hard-linkable loose objects;
//! - [`meta`]: the SQLite index; [`lake`]: opening a lake and reading objects;
//! - [`writer`]: write sessions (crash-safe ordering); [`import`]: the tree importer
//!   and chunker driver; [`checkout`], [`diff`], [`verify`], [`gc`], [`rev`]
//!   (revisions and times); [`ops`]: whole operations such as committing a directory;
//! - [`names`]: file names and paths as bytes, and how they are shown and sent as JSON.

pub mod beneath;
pub mod catalog;
pub mod checkout;
pub mod chunker;
pub mod chunklist;
pub mod commit;
pub mod diff;
pub mod dpkg;
pub mod encoding;
pub mod error;
pub mod fsmeta;
pub mod fuse;
pub mod gc;
pub mod generation;
pub mod hotcache;
pub mod id;
pub mod import;
pub mod lake;
pub mod live_apply;
pub mod loose;
pub mod meta;
pub mod names;
pub mod ops;
pub mod overlay_upper;
pub mod pack;
pub mod posix;
pub mod privacy;
pub mod progress;
pub mod reach;
pub mod rev;
pub mod rollback;
pub mod sparse;
pub mod substrate;
pub mod superblock;
pub mod sys;
pub mod tree;
pub mod tree_check;
pub mod tree_edit;
pub mod util;
pub mod verify;
pub mod volume;
pub mod writer;
pub mod zones;

pub use error::{Error, Result};
pub use id::ObjectId;
pub use lake::Lake;
