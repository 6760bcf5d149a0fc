//! The FUSE driver of the LAKE zone (see docs/lake-zone.md).

pub mod hooks;
