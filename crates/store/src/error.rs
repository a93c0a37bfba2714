//! Store errors: each names the file (and offset) it is about, and has a
//! stable code through [`StoreError::code`].

use std::io;
use std::path::PathBuf;

use everarcade_protocol::Hash;

/// Why a durable operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The operating system refused an operation.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted ("read", "create", "fsync", …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another live process holds the world lock.
    #[error("world is locked by pid {pid} ({}); stop that process first", path.display())]
    Locked {
        /// The holder's pid, as written in the lock file (0 if unreadable).
        pid: u32,
        /// The lock file.
        path: PathBuf,
    },
    /// A checksum, chain link or structural check failed in the middle of a
    /// file: corruption, never repaired automatically.
    #[error("{} is corrupt at byte {offset}: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the damaged record or field.
        offset: u64,
        /// What did not check out.
        what: String,
    },
    /// The final record of the newest journal segment is incomplete: a write
    /// that a crash interrupted. `recover` truncates it.
    #[error(
        "{} ends with a torn record: {bytes} bytes from byte {offset} are not a complete record; run `recover` to truncate them",
        path.display()
    )]
    TornTail {
        /// The segment.
        path: PathBuf,
        /// Where the torn record begins (the length the file is truncated to).
        offset: u64,
        /// How many bytes follow the last complete record.
        bytes: u64,
    },
    /// An fsync (or write) failed earlier; the journal refuses further writes.
    #[error("the journal is poisoned and refuses writes: {reason}")]
    Poisoned {
        /// The original failure.
        reason: String,
    },
    /// The file is a format version this runtime does not read.
    #[error("{} has format version {found}; this runtime reads version {supported}", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
        /// The version this runtime reads.
        supported: u16,
    },
    /// A file belongs to another world lineage (its genesis root differs).
    #[error("{} belongs to genesis {found}, but this world's genesis is {expected}", path.display())]
    WrongLineage {
        /// The file.
        path: PathBuf,
        /// This world's `C(0)`.
        expected: Hash,
        /// The file's `C(0)`.
        found: Hash,
    },
    /// The world has no journal (it was never created, or the journal is gone).
    #[error("no world at {}: {what}", path.display())]
    Missing {
        /// The path that should exist.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
}

impl StoreError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Io { .. } => "io",
            StoreError::Locked { .. } => "world_locked",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::TornTail { .. } => "torn_tail",
            StoreError::Poisoned { .. } => "journal_poisoned",
            StoreError::UnsupportedVersion { .. } => "unsupported_format_version",
            StoreError::WrongLineage { .. } => "wrong_lineage",
            StoreError::Missing { .. } => "world_missing",
        }
    }

    /// Whether the error means the bytes on disk cannot be trusted (integrity).
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            StoreError::Corrupt { .. }
                | StoreError::TornTail { .. }
                | StoreError::UnsupportedVersion { .. }
                | StoreError::WrongLineage { .. }
        )
    }

    /// A closure that wraps an I/O error with what was attempted on which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}
