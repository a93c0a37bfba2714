//! Operator procedures over a durable world: signed, checksummed backups
//! ([`backup`]), their verification ([`verify`]), restores that prove the
//! restored world before it replaces anything ([`restore`]), and operator
//! key rotation and history ([`operator`]).
//!
//! It is responsible for the backup folder's format ([`manifest`]) and for
//! the order of the manual's backup and restore steps. It is not
//! responsible for the world's own files and their formats (that is
//! `everarcade-store`), for recovery, audit and replay (`everarcade-world`,
//! which it calls), or for finding a running node and printing (the binary).
//!
//! Architecture invariants:
//! - nothing here deletes or overwrites a file that existed before: a backup
//!   is written into a new folder, a restore moves the world it replaces
//!   into quarantine whole;
//! - a backup never holds an operator secret, only the public key history;
//! - a restore verifies every byte of the backup (BLAKE3 per file, the
//!   signature over the manifest, `SHA256SUMS`) before it writes anything
//!   into the runtime root, and proves the staged world (recovery, audit,
//!   replay verification, all reaching the manifest's head roots) before it
//!   moves anything;
//! - [`backup::write_backup`] only reads the world directory, so the process
//!   that holds the world (the node) can call it for a hot backup.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod error;
mod files;

pub mod backup;
pub mod manifest;
pub mod operator;
pub mod restore;
pub mod verify;

pub use backup::{
    BackupReport, BackupSource, OfflineBackup, OfflineBackupReport, backup_offline,
    default_backup_parent, next_backup_dir, write_backup,
};
pub use error::OpsError;
pub use files::{FileDigest, HOST_NAME_BYTES_MAX, host_name, rfc3339};
pub use restore::{
    KeySource, ReplayFrom, RestoreOptions, RestorePhase, RestoreReport, RestoreRequest, restore,
    restore_observed,
};
pub use verify::{VerifiedBackup, VerifyOptions, verify_backup};
