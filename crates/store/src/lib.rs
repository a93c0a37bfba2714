//! The durable side of a world: where its files live, who may write them,
//! and the byte formats of its journal and checkpoints.
//!
//! This crate knows files and bytes, never execution: it does not know the
//! engine, and it never decides whether a tick's roots are *right*, only
//! whether the bytes that record them are intact and chained. Replaying the
//! journal to check the roots is the job of `everarcade-world`.
//!
//! Architecture invariants:
//! - every file operation goes through [`Storage`], so crash tests can run
//!   the same code on [`SimStorage`], which loses unsynced bytes on "power loss";
//! - an appended record is acknowledged only after the fdatasync that covers
//!   it returned `Ok`; a failed fsync poisons the writer for good;
//! - nothing here deletes data except checkpoint retention (older checkpoints
//!   are redundant with the journal, which is kept whole); suspect files are
//!   moved to `quarantine/`;
//! - every multi-byte integer on disk is little-endian; every format has a
//!   magic and a version (docs/FORMATS.md).

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod codec;
mod error;

pub mod checkpoint;
pub mod fuzz;
pub mod journal;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod meta;
pub mod sim;
pub mod storage;

pub use checkpoint::{Checkpoint, CheckpointSummary};
pub use error::StoreError;
pub use journal::{JournalConfig, JournalReader, JournalWriter, Record};
pub use layout::WorldDir;
pub use lock::{LockState, WorldLock, lock_world};
pub use sim::{Reboot, SimStorage};
pub use storage::{DiskStorage, Storage};
