//! The state of one EverArcade world: an in-memory ordered key-value store
//! whose contents are committed by a Merkle root, with membership and absence
//! proofs for single keys.
//!
//! This crate *is* responsible for holding the key-value contents, for
//! computing the state root incrementally (the work per [`State::root`] call is
//! proportional to the keys changed since the previous call times `log n`),
//! for building a whole state at once from sorted entries ([`StateBuilder`],
//! which hashes every node once, on several threads for large states), and
//! for producing and checking [`Proof`]s and their byte encoding.
//!
//! It is deliberately *not* responsible for limits (key and value sizes,
//! number of keys, bytes per tick: the engine enforces those), for
//! persistence, journals or snapshots (the storage layer), for undo logs
//! (callers keep the previous values that [`State::set`] and
//! [`State::delete`] return), or for deciding when a root is taken (the
//! engine calls [`State::root`] once per tick).
//!
//! Architecture invariant: the root is a pure function of the current
//! contents. It never depends on write order, on deleted keys, on how often
//! `root` was called, or on hash-map iteration order (this crate iterates no
//! hash map).
//!
//! # State root (protocol)
//!
//! All hashes are `H(domain, bytes)` from `everarcade_protocol::hash`.
//!
//! - `key_hash   = H(StateKey, key)` (domain `ea/state/key/v1`)
//! - `value_hash = H(StateValue, value)` (domain `ea/state/value/v1`)
//! - `leaf       = H(StateLeaf, key_hash || value_hash)` (domain `ea/state/leaf/v1`)
//! - `EMPTY      = H(StateEmpty, "")` (domain `ea/state/empty/v1`)
//!
//! Keys are placed in a binary trie by the bits of their `key_hash`, most
//! significant bit first: bit `i` is bit `7 - i % 8` of byte `i / 8`, so bit 0
//! is the top bit of byte 0. At depth `i` a key whose bit `i` is 0 goes to the
//! left child and one whose bit `i` is 1 to the right child.
//!
//! The hash `S(d, K)` of the subtree at depth `d` holding the set of keys `K`
//! (all of which share their first `d` bits) is
//!
//! - `EMPTY` if `K` is empty;
//! - the key's `leaf` hash if `K` holds exactly one key, whatever `d` is;
//! - `H(StateNode, S(d + 1, K0) || S(d + 1, K1))` (domain `ea/state/node/v1`)
//!   if `K` holds two or more keys, where `K0` and `K1` are the keys of `K`
//!   whose bit `d` is 0 and 1 respectively.
//!
//! The state root is `S(0, all keys)`. So the root of an empty state is
//! `EMPTY` and the root of a one-key state is that key's `leaf` hash. Note
//! that a chain of single-child levels above a branching point is *not*
//! skipped: each level hashes its one non-empty child against `EMPTY`.
//! Two distinct keys are assumed never to share a `key_hash`.
//!
//! Test vectors (keys and values as ASCII bytes; checked by `tests/vectors.rs`):
//!
//! - empty state: `1f388647f225b598a1cfeb29ddbd014628b67e1da91e47db6ddab375191d043f`
//! - `{"a" → "1"}`: `7f3a22619d40e6b51e8118baee87cc42a571f336cada51d5aa24a5e9f72fabac`
//! - `{"alpha" → "1", "beta" → "2", "gamma" → "3"}`:
//!   `a8cec6b26d1ba814fa0d661858e779c3dd2c247a4dc4e370d0dee3b459b564ec`.
//!   The key hashes begin with bits `00…` (alpha), `10…` (beta) and `01…`
//!   (gamma), so this root is
//!   `H(StateNode, H(StateNode, leaf(alpha) || leaf(gamma)) || leaf(beta))`.
//!
//! Proofs and their encoding are specified in the [`proof`] module.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod build;
mod bytes;
pub mod error;
pub mod proof;
mod store;
mod trie;

pub use build::StateBuilder;
pub use bytes::{InlineBytes, Key, Value};
pub use error::{BuildError, ProofError};
pub use proof::{Proof, Terminal};
pub use store::State;
