//! Errors of the operator procedures, each with a stable [`OpsError::code`]
//! and a [`ErrorClass`] the command line maps to its exit status.

use std::io;
use std::path::PathBuf;

use everarcade_protocol::Hash;
use everarcade_store::StoreError;
use everarcade_store::keys::KeyError;
use everarcade_world::{ErrorClass, WorldError};

/// Why a backup, a restore or a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// From the store (I/O, corruption, lock).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// From the durable world (recovery, audit, replay).
    #[error(transparent)]
    World(#[from] WorldError),
    /// The operating system refused an operation.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The backup folder (or its temporary twin) already exists; nothing is
    /// ever overwritten.
    #[error("{} already exists; a backup never overwrites anything", path.display())]
    BackupExists {
        /// The existing path.
        path: PathBuf,
    },
    /// The backup directory lies inside the runtime root, where it would be
    /// lost with the root.
    #[error(
        "the backup directory {} is inside the runtime root {}; a backup must survive the loss of the root",
        dir.display(),
        root.display()
    )]
    BackupDirInsideRoot {
        /// The backup directory.
        dir: PathBuf,
        /// The runtime root.
        root: PathBuf,
    },
    /// What a backup was asked to copy does not hang together (a journal
    /// end that is not a record boundary, a checkpoint the journal
    /// contradicts, a file name a checksum list cannot carry).
    #[error("cannot back up {}: {what}", path.display())]
    SourceInconsistent {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A file of the backup is missing, or the manifest, its signature or
    /// `SHA256SUMS` is absent.
    #[error("the backup at {} is incomplete: {what}", dir.display())]
    BackupIncomplete {
        /// The backup folder.
        dir: PathBuf,
        /// What is missing.
        what: String,
    },
    /// `manifest.json` does not parse, has an unknown format or field, or
    /// contradicts itself.
    #[error("the backup manifest {} is malformed: {what}", path.display())]
    ManifestMalformed {
        /// `manifest.json`.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The manifest's signature does not verify, or its key is not in the
    /// key history the backup carries (or not anchored to the trusted key).
    #[error("the backup's signature is not valid: {what}")]
    SignatureInvalid {
        /// Why.
        what: String,
    },
    /// A file's size or BLAKE3 hash is not the one the manifest records.
    #[error("backup file {path} changed: {what}")]
    FileChanged {
        /// The file, relative to the backup folder.
        path: String,
        /// What differs.
        what: String,
    },
    /// A line of `SHA256SUMS` does not match its file, or the list does not
    /// cover every file.
    #[error("SHA256SUMS does not match the backup: {what}")]
    ChecksumMismatch {
        /// Which line or file, and what differs.
        what: String,
    },
    /// The backup is of another world.
    #[error("the backup is of world {backup}, not {given}")]
    WrongWorld {
        /// The world the backup holds.
        backup: String,
        /// The world named on the command line.
        given: String,
    },
    /// The backup's package is not the package given.
    #[error(
        "package mismatch: the backup's world is bound to package root {backup}, but the package given has root {given}"
    )]
    PackageMismatch {
        /// The package root in the backup.
        backup: Hash,
        /// The root of the package given.
        given: Hash,
    },
    /// The restored world recovered to other roots than the backup records.
    #[error("the restored world reached {what}, but the backup records {expected}")]
    RestoredRootsMismatch {
        /// What the restored world reached (which check, which root).
        what: String,
        /// What the manifest records.
        expected: String,
    },
    /// The operator key given for the restore is not the backup's current key.
    #[error("operator key: {what}")]
    OperatorKey {
        /// What is wrong.
        what: String,
    },
    /// A restore failed after the backup was staged; the current world was
    /// not touched and the staged copy is kept for inspection.
    #[error("{source}\nthe current world is untouched; the staged copy is kept at {}", staging.display())]
    Staged {
        /// The staging directory.
        staging: PathBuf,
        /// The failure.
        source: Box<OpsError>,
    },
}

impl OpsError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::Store(error) => error.code(),
            OpsError::World(error) => error.code(),
            OpsError::Io { .. } => "io",
            OpsError::BackupExists { .. } => "backup_exists",
            OpsError::BackupDirInsideRoot { .. } => "backup_dir_inside_root",
            OpsError::SourceInconsistent { .. } => "backup_source_inconsistent",
            OpsError::BackupIncomplete { .. } => "backup_incomplete",
            OpsError::ManifestMalformed { .. } => "backup_manifest_malformed",
            OpsError::SignatureInvalid { .. } => "backup_signature_invalid",
            OpsError::FileChanged { .. } => "backup_file_changed",
            OpsError::ChecksumMismatch { .. } => "backup_checksum_mismatch",
            OpsError::WrongWorld { .. } => "backup_wrong_world",
            OpsError::PackageMismatch { .. } => "package_mismatch",
            OpsError::RestoredRootsMismatch { .. } => "restore_roots_mismatch",
            OpsError::OperatorKey { .. } => "operator_key_mismatch",
            OpsError::Staged { source, .. } => source.code(),
        }
    }

    /// The failure class, for exit codes.
    pub fn class(&self) -> ErrorClass {
        match self {
            OpsError::Store(error) if error.is_integrity() => ErrorClass::Integrity,
            OpsError::Store(_) => ErrorClass::Operational,
            OpsError::World(error) => error.class(),
            OpsError::Io { .. }
            | OpsError::BackupExists { .. }
            | OpsError::BackupDirInsideRoot { .. }
            | OpsError::WrongWorld { .. }
            | OpsError::OperatorKey { .. } => ErrorClass::Operational,
            OpsError::SourceInconsistent { .. }
            | OpsError::BackupIncomplete { .. }
            | OpsError::ManifestMalformed { .. }
            | OpsError::SignatureInvalid { .. }
            | OpsError::FileChanged { .. }
            | OpsError::ChecksumMismatch { .. }
            | OpsError::RestoredRootsMismatch { .. } => ErrorClass::Integrity,
            OpsError::PackageMismatch { .. } => ErrorClass::Package,
            OpsError::Staged { source, .. } => source.class(),
        }
    }

    /// A closure that wraps an I/O error with what was attempted on which path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> OpsError {
        let path = path.into();
        move |source| OpsError::Io { op, path, source }
    }

    /// The innermost error (through [`OpsError::Staged`]).
    pub fn inner(&self) -> &OpsError {
        match self {
            OpsError::Staged { source, .. } => source.inner(),
            other => other,
        }
    }
}

impl From<KeyError> for OpsError {
    fn from(error: KeyError) -> OpsError {
        OpsError::SignatureInvalid {
            what: format!("{error} [{}]", error.code()),
        }
    }
}
