//! Byte-exact protocol types of the EverArcade runtime.
//!
//! This crate is the vocabulary every other crate speaks: the domain-separated
//! hash, world ids, signed input envelopes, receipts, the Merkle list root used
//! for input and receipt roots, the continuity chain `C(t)`, the determinism
//! profile and the deterministic test keys used by `simulate --inputs`.
//!
//! It is deliberately *not* responsible for state (see `everarcade-state`),
//! for reading packages from disk (`everarcade-package`) or for executing
//! anything (`everarcade-engine`). Every encoding here is specified byte by byte
//! in `docs/PROTOCOL.md`, and the test vectors there are checked by this
//! crate's tests.
//!
//! Architecture invariant: nothing in this crate reads a clock, the OS random
//! source, or iterates a hash map; every function is a pure function of its
//! arguments.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod envelope;
pub mod hash;
pub mod merkle;
pub mod profile;
pub mod receipt;
pub mod roots;
pub mod signature;
pub mod world_id;

pub use envelope::{Envelope, EnvelopeError, Verified, test_signing_key};
pub use hash::{Domain, Hash};
pub use merkle::{list_proof, list_root, list_root_from_proof};
pub use profile::{BotSeedRule, Limits, Profile, SignatureRule};
pub use receipt::{Outcome, RECEIPT_BYTES, Receipt, ReceiptKind, TrapClass, events_hash};
pub use roots::{TickRoots, continuity_root, genesis_root, random_seed};
pub use world_id::{WorldId, WorldIdError};

/// The protocol version bound into every genesis root `C(0)`.
pub const PROTOCOL_VERSION: u32 = 1;

/// A tick number. Tick 0 is genesis; the first tick that takes inputs is 1.
pub type Tick = u64;

/// An ed25519 public key as it travels in envelopes and receipts.
pub type PublicKey = [u8; 32];
