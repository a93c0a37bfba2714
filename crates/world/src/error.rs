//! World errors, each with a stable code and a class that the command line
//! maps to its exit status.

use std::path::PathBuf;

use everarcade_engine::EngineError;
use everarcade_protocol::{EnvelopeError, Hash, Tick};
use everarcade_store::StoreError;

use crate::diff::StateDiff;

/// Which kind of failure an error is, for exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The disk or OS failed, or something else operational.
    Operational,
    /// Bytes on disk do not check out (checksum, chain, signature, structure).
    Integrity,
    /// Replay reached different roots than recorded.
    Divergence,
    /// The package is invalid or not the one bound at genesis.
    Package,
}

/// The first tick at which replay disagreed with the record.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// The tick.
    pub tick: Tick,
    /// Each root that differs: (name, recorded, replayed).
    pub roots: Vec<(&'static str, Hash, Hash)>,
    /// What the replayed tick changed in the state.
    pub diff: Option<StateDiff>,
}

/// Why a durable world operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// From the store (I/O, corruption, torn tail, lock, poisoning).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// From the engine.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The package given is not the one bound at genesis.
    #[error(
        "package mismatch: the world is bound to package root {bound}, but the package given has root {given}"
    )]
    PackageMismatch {
        /// The root bound at genesis.
        bound: Hash,
        /// The root of the package given.
        given: Hash,
    },
    /// A world already exists where one was to be created.
    #[error("world already exists at {}", path.display())]
    Exists {
        /// The world directory.
        path: PathBuf,
    },
    /// A journaled input fails admission at replay: a forged or reordered record.
    #[error("tick {tick}: journaled input {index} ({}, byte {offset}) is refused at replay: {error}", path.display())]
    InputRefused {
        /// The tick.
        tick: Tick,
        /// The input's position in the tick.
        index: usize,
        /// The segment holding it.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// Why admission refused it.
        error: EnvelopeError,
    },
    /// The journal's records do not form a valid lineage (ticks out of order,
    /// counts that disagree, a checkpoint that contradicts the journal).
    #[error("{} (byte {offset}): {what}", path.display())]
    Lineage {
        /// The file.
        path: PathBuf,
        /// Byte offset.
        offset: u64,
        /// What is inconsistent.
        what: String,
    },
    /// An operator signature is missing where one is due, or does not
    /// verify against the world's key history.
    #[error("operator signature: {0}")]
    OperatorSignature(String),
    /// Replay diverged from the record.
    #[error("{}", divergence_message(.0))]
    Divergence(Box<Divergence>),
    /// The world cannot do this now (e.g. a checkpoint with inputs pending).
    #[error("{0}")]
    Busy(String),
    /// An unresolved incident record is in the world's `incidents/`: the
    /// front door does not open a lineage under investigation.
    #[error(
        "incident {} is unresolved ({kind} at tick {tick}): the node does not serve a lineage under investigation; once resolved (restore, rollback, or a fixed runtime), move the record to incidents/resolved/",
        path.display()
    )]
    Incident {
        /// The record.
        path: PathBuf,
        /// Its kind.
        kind: String,
        /// Its tick.
        tick: Tick,
    },
    /// A previous failure left the in-memory world unusable; reopen it.
    #[error("the world is poisoned by an earlier failure and must be reopened: {0}")]
    Poisoned(String),
}

fn divergence_message(divergence: &Divergence) -> String {
    let roots: Vec<String> = divergence
        .roots
        .iter()
        .map(|(name, recorded, replayed)| {
            format!("{name} recorded {recorded}, replayed {replayed}")
        })
        .collect();
    format!(
        "replay diverged at tick {}: {}",
        divergence.tick,
        roots.join("; ")
    )
}

impl WorldError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            WorldError::Store(error) => error.code(),
            WorldError::Engine(error) => error.code(),
            WorldError::PackageMismatch { .. } => "package_mismatch",
            WorldError::Exists { .. } => "world_exists",
            WorldError::InputRefused { .. } => "input_refused_at_replay",
            WorldError::Lineage { .. } => "lineage_broken",
            WorldError::Divergence(_) => "divergence",
            WorldError::OperatorSignature(_) => "bad_operator_signature",
            WorldError::Busy(_) => "busy",
            WorldError::Poisoned(_) => "world_poisoned",
            WorldError::Incident { .. } => "incident_unresolved",
        }
    }

    /// The failure class.
    pub fn class(&self) -> ErrorClass {
        match self {
            WorldError::Store(error) if error.is_integrity() => ErrorClass::Integrity,
            WorldError::Store(_) | WorldError::Busy(_) | WorldError::Poisoned(_) => {
                ErrorClass::Operational
            }
            WorldError::Exists { .. } => ErrorClass::Operational,
            WorldError::Engine(EngineError::GenesisMismatch { .. }) => ErrorClass::Integrity,
            WorldError::Engine(_) => ErrorClass::Operational,
            WorldError::PackageMismatch { .. } => ErrorClass::Package,
            WorldError::InputRefused { .. }
            | WorldError::Lineage { .. }
            | WorldError::OperatorSignature(_) => ErrorClass::Integrity,
            WorldError::Divergence(_) | WorldError::Incident { .. } => ErrorClass::Divergence,
        }
    }
}
