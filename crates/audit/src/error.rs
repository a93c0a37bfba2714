//! Errors of this crate, one enum per operation family, each with a stable
//! `code()` and a [`Class`] the command line maps to its exit status.

use std::path::PathBuf;

use everarcade_engine::EngineError;
use everarcade_package::PackageError;
use everarcade_protocol::{EnvelopeError, Hash, Tick};
use everarcade_store::StoreError;
use everarcade_world::{ErrorClass, WorldError};

use crate::bundle::BundleError;

/// Which kind of failure an error is, for exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The disk or OS failed, or something else operational.
    Operational,
    /// A request that cannot be served as asked (a tick beyond the journal, a
    /// receipt that does not exist, a world that already exists).
    Usage,
    /// Bytes do not check out, or material does not chain to the lineage.
    Integrity,
    /// Replay reached different roots than recorded.
    Divergence,
    /// The package is invalid or not the one bound at genesis.
    Package,
    /// A bundle or proof file is not well formed.
    Malformed,
    /// The operator signature does not verify or is not trusted.
    BadSignature,
}

/// The class of a world error.
pub fn world_class(error: &WorldError) -> Class {
    match error.class() {
        ErrorClass::Operational => Class::Operational,
        ErrorClass::Integrity => Class::Integrity,
        ErrorClass::Divergence => Class::Divergence,
        ErrorClass::Package => Class::Package,
    }
}

/// A recorded root that replay did not reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootMismatch {
    /// The tick.
    pub tick: Tick,
    /// Which root: `input_root`, `receipt_root`, `state_root`,
    /// `continuity_root`, or another recorded value (`package_root`,
    /// `genesis_root`, `receipts`, `accumulator`).
    pub root: &'static str,
    /// What the material records.
    pub recorded: Hash,
    /// What replay (or recomputation) reached.
    pub replayed: Hash,
}

impl std::fmt::Display for RootMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "divergence at tick {}: {} recorded {}, replay reached {}",
            self.tick, self.root, self.recorded, self.replayed
        )
    }
}

/// Why `verify-bundle` refused a bundle.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a well-formed bundle.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A part of the bundle that decodes later (the checkpoint) is malformed.
    #[error("malformed bundle: {what}")]
    Part {
        /// What.
        what: String,
    },
    /// The operator signature or key history does not verify.
    #[error("bad operator signature: {what}")]
    BadSignature {
        /// What.
        what: String,
    },
    /// The signature verifies, but by no key the verifier trusts.
    #[error(
        "the bundle is signed by operator key {signer}, which does not descend from a trusted key"
    )]
    Untrusted {
        /// The signing key, hex.
        signer: String,
    },
    /// The bundle's protocol version is not this runtime's.
    #[error(
        "the bundle's lineage is protocol version {found}; this runtime replays version {supported}"
    )]
    Protocol {
        /// The bundle's.
        found: u32,
        /// This runtime's.
        supported: u32,
    },
    /// The bundled package does not validate.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The engine failed (not a divergence: it could not run at all).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A recorded input is refused on admission (signature, nonce, world, size).
    #[error("tick {tick}, input {index}: the recorded input is refused on replay: {error}")]
    InputRefused {
        /// The tick.
        tick: Tick,
        /// Its position in the tick.
        index: usize,
        /// Why.
        error: EnvelopeError,
    },
    /// Replay reached other roots than the bundle records.
    #[error("{first}{}", also_differing(.others))]
    Divergence {
        /// The first root that differs.
        first: RootMismatch,
        /// Other roots of the same tick that differ too.
        others: Vec<RootMismatch>,
    },
}

fn also_differing(others: &[RootMismatch]) -> String {
    others
        .iter()
        .map(|other| {
            format!(
                "; {} recorded {}, reached {}",
                other.root, other.recorded, other.replayed
            )
        })
        .collect()
}

impl VerifyError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Bundle(error) => error.code(),
            VerifyError::Part { .. } => "malformed_bundle",
            VerifyError::BadSignature { .. } => "bad_bundle_signature",
            VerifyError::Untrusted { .. } => "untrusted_operator_key",
            VerifyError::Protocol { .. } => "unsupported_protocol_version",
            VerifyError::Package(error) => error.code(),
            VerifyError::Engine(error) => error.code(),
            VerifyError::InputRefused { .. } => "input_refused_at_replay",
            VerifyError::Divergence { .. } => "divergence",
        }
    }

    /// The class.
    pub fn class(&self) -> Class {
        match self {
            VerifyError::Bundle(_) | VerifyError::Part { .. } | VerifyError::Protocol { .. } => {
                Class::Malformed
            }
            VerifyError::BadSignature { .. } | VerifyError::Untrusted { .. } => Class::BadSignature,
            VerifyError::Package(_) => Class::Package,
            VerifyError::Engine(_) => Class::Operational,
            VerifyError::InputRefused { .. } => Class::Integrity,
            VerifyError::Divergence { .. } => Class::Divergence,
        }
    }

    /// A divergence from the mismatches of one tick (at least one).
    pub(crate) fn divergence(mut mismatches: Vec<RootMismatch>) -> VerifyError {
        assert!(!mismatches.is_empty());
        let first = mismatches.remove(0);
        VerifyError::Divergence {
            first,
            others: mismatches,
        }
    }
}

/// Why reading a world's material (export, prove, archive sources) failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// From the store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// From the world layer (replay, binding).
    #[error(transparent)]
    World(#[from] WorldError),
    /// The records do not form a lineage.
    #[error("{}: {what}", path.display())]
    Lineage {
        /// The file.
        path: PathBuf,
        /// What.
        what: String,
    },
    /// A request the material cannot serve.
    #[error("{what}")]
    Request {
        /// What.
        what: String,
        /// A stable code.
        code: &'static str,
    },
    /// A package file could not be read.
    #[error("cannot read package file {}: {source}", path.display())]
    PackageFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl SourceError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            SourceError::Store(error) => error.code(),
            SourceError::World(error) => error.code(),
            SourceError::Lineage { .. } => "lineage_broken",
            SourceError::Request { code, .. } => code,
            SourceError::PackageFile { .. } => "package_unreadable",
        }
    }

    /// The class.
    pub fn class(&self) -> Class {
        match self {
            SourceError::Store(error) if error.is_integrity() => Class::Integrity,
            SourceError::Store(_) => Class::Operational,
            SourceError::World(error) => world_class(error),
            SourceError::Lineage { .. } => Class::Integrity,
            SourceError::Request { .. } => Class::Usage,
            SourceError::PackageFile { .. } => Class::Package,
        }
    }

    pub(crate) fn request(code: &'static str, what: impl Into<String>) -> SourceError {
        SourceError::Request {
            what: what.into(),
            code,
        }
    }
}
