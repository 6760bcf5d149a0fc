//! lake-installer: puts Lake OS on a disk or into a disk image.
//!
//! Where things are:
//! - [`plan`]: the install plan: the target as it is (size, partition table,
//!   file systems, mounts), the layout to write, and the --yes rules;
//! - [`gpt_layout`]: the GPT layout (ESP, optional XBOOTLDR /boot, lake) and
//!   writing it with the `gpt` crate;
//! - [`esp`]: FAT32 volumes written with `fatfs` inside the image at a
//!   partition's offset (no loop device);
//! - the BLS entries, loader.conf and kernels stored by content hash come from
//!   `lake_boot::bls` (shared with `lakectl generation`);
//! - [`rootfs`]: the root file system to install (directory or tar archive);
//! - [`lake_partition`]: staging the lake (import into `posix/main`, deploy
//!   generation 1) and writing it with `mke2fs -d`;
//! - [`install`]: carrying out a plan, and the report; from a lake image too
//!   (`--lake-image`: copied into the lake partition and grown, no import);
//! - [`lake_image`]: the lake as a minimal ext4 image file (the ISO's payload);
//! - [`iso`]: the hybrid ISO install medium (xorriso, El Torito EFI image);
//! - [`disks`]: the disks of the system and which may be targets;
//! - [`live`]: installing from the install medium's live system (interactive or unattended);
//! - [`password_prompt`]: reading a password on the terminal, echo off before the prompt;
//! - [`config`]: the install configuration (first-boot settings, TOML) and its checks;
//! - [`settings`]: writing those settings into a root file system tree;
//! - [`repro`]: reproducible builds (SOURCE_DATE_EPOCH, seed-derived ids);
//! - [`units`]: byte sizes.
//!
//! ```no_run
//! use lake_installer::{install, plan::{InstallOptions, Plan}};
//! let mut o = InstallOptions::new("disk.raw".into(), "rootfs/".into(), "vmlinuz".into(), "initrd.img".into());
//! o.size = Some(8 << 30);
//! let plan = Plan::new(&o)?;
//! eprintln!("{}", plan.render());
//! plan.check_allowed(false)?;
//! let report = install::run(&plan, &install::Quiet)?;
//! println!("generation {} of commit {}", report.lake.generation, report.lake.commit);
//! # Ok::<(), lake_installer::Error>(())
//! ```

pub mod build;
pub mod config;
pub mod disks;
pub mod error;
pub mod esp;
pub mod gpt_layout;
pub mod install;
pub mod iso;
pub mod lake_copy;
pub mod lake_image;
pub mod lake_partition;
pub mod live;
pub mod password_prompt;
pub mod plan;
pub mod repro;
pub mod rootfs;
pub mod settings;
pub mod units;

pub use error::{Error, Result};
