//! Disk layout (GPT, ESP with systemd-boot and BLS entries, lake partition), rootfs
//! import and image builds.
//!
//! Empty on purpose: the bootable-image issue fills this crate. Nothing here is
//! exported yet, so nothing can be mistaken for a working installer.
