//! Audit material that leaves the operator's machine: proof bundles that
//! another machine replays, proofs a player checks against one head
//! commitment, and the rebuild of a world from archived material.
//!
//! - [`bundle`]: the bundle file format (versioned, checksummed, signed);
//! - [`export`]: a window of a world's journal as a bundle;
//! - [`verify`]: a bundle checked and replayed with nothing but itself;
//! - [`mmr`]: the accumulator of ticks (a Merkle mountain range) behind the
//!   head commitment;
//! - [`proof`]: receipt and state proofs for a player;
//! - [`archive`]: archive recovery from a backup, bundles and journals.
//!
//! This crate is *not* responsible for the journal, checkpoints or keys (it
//! reads them through `everarcade-store`), nor for execution (it replays
//! through `everarcade-engine` and `everarcade-world`, the same code that
//! runs worlds). It never writes inside an existing world: export and prove
//! only read, and archive recovery builds a new world in a staging directory.
//!
//! Architecture invariants:
//! - a verifier trusts nothing in a bundle before its checksum, structure and
//!   operator signature check out, and then trusts only what replay
//!   reproduces: every recorded root is recomputed;
//! - every decoder here bounds every length before allocating and never
//!   panics on outside bytes;
//! - the accumulator depends only on the recorded roots, tick by tick, so
//!   anyone holding the journal (or bundles from genesis) computes the same
//!   head commitment.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod archive;
pub mod bundle;
pub mod error;
pub mod export;
pub mod fuzz;
pub mod journal;
pub mod mmr;
pub mod proof;
pub mod verify;

pub use bundle::{Bundle, BundleError, SealedBundle};
pub use error::{Class, RootMismatch, SourceError, VerifyError};
pub use everarcade_store::codec::DecodeError;
pub use mmr::{Mmr, MmrProof, MmrProver, leaf_hash};
pub use proof::{Claim, PlayerProof, PlayerProofError, ProofQuery};
pub use verify::{VerifyOptions, VerifyReport, verify_bundle};
