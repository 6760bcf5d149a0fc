//! The early-boot program that finds the lake partition, mounts it and assembles the
//! overlay root for the chosen generation.
//!
//! Empty on purpose: the bootable-image issue fills this crate.
