//! Deterministic execution of world packages on wasmtime.
//!
//! The engine turns a validated package into a running [`World`]: it runs
//! `ea_genesis`, then, tick after tick, each admitted input in order and the
//! `ea_tick` hook, producing a receipt per call, the tick's input, receipt and
//! state roots, and the continuity root `C(t)`. It also drives a package's
//! bots (`ea_bot`) for simulations and load tests.
//!
//! Responsibilities it does *not* have: it never touches the disk or the
//! network (the journal and node crates do), and it never verifies signatures
//! inside the tick loop: [`World::admit`] does that, once, before an input is
//! queued, and replay calls it again.
//!
//! Architecture invariants:
//! - the engine never reads a clock or the OS random source; time arrives as
//!   the tick number and randomness as `random_seed`, derived from `C(t-1)`;
//! - a fresh instance serves each tick, so nothing survives a tick outside the
//!   state store; after a trap the instance is discarded and a fresh one
//!   serves the rest of the tick;
//! - a call that does not end `applied` leaves the state exactly as before it.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod bot;
mod engine;
mod error;
mod host;
mod world;

pub use bot::{bot_random_seed, bot_random_seeds};
pub use engine::{CompiledPackage, Engine};
pub use error::EngineError;
pub use host::{LOG_LINE_BYTES_MAX, LOG_LINES_MAX};
pub use world::{CallTrace, GenesisOutput, Snapshot, TickOutput, World};
