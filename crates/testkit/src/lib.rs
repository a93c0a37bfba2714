//! Fixtures shared by the integration tests of the workspace's crates, so
//! that each lives in one place: the 2d-arena sample package compiled once
//! ([`arena`], feature `arena`), bots that sign its inputs ([`bots`]), a seeded
//! generator ([`rng`]), temporary directories ([`temp`]), the manifest of a
//! small test package ([`manifest`]), a journal forger ([`journal`]) and the
//! committed fuzz corpora ([`corpus`]) and self-signed TLS certificates
//! ([`tls`]).
//!
//! It *is* responsible for building test inputs the same way every time: a
//! fixture is a function of its arguments (seeds, counts, labels), never of
//! the clock or of the order tests run in.
//!
//! It is *not* a test suite (it asserts nothing about the crates it drives;
//! the tests that use it do), it is never a dependency of non-test code
//! (every crate names it under `[dev-dependencies]` only), and it writes
//! nothing outside the system's temporary directory.
//!
//! Its encoders ([`journal`]) are written from `docs/FORMATS.md`, not by
//! calling the store's, so a test that forges a journal does not inherit a
//! bug of the encoder it is testing.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

#[cfg(feature = "arena")]
pub mod arena;
pub mod bots;
pub mod corpus;
pub mod journal;
pub mod manifest;
pub mod rng;
pub mod temp;
pub mod tls;

use everarcade_protocol::WorldId;

/// The world id the tests use.
pub const WORLD: &str = "world-001";

/// [`WORLD`] as a [`WorldId`].
pub fn world_id() -> WorldId {
    WorldId::new(WORLD).expect("a valid world id")
}
