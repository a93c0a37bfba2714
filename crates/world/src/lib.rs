//! A durable world: the engine's `World` over the store's journal and
//! checkpoints. It creates worlds, recovers them on open, executes and
//! journals ticks, takes checkpoints, replays the journal to verify it, and
//! binds each world to the package it was created with. Every caller
//! enters a world through [`front_door::FrontDoor::open`].
//!
//! It is not responsible for byte formats or file integrity (that is
//! `everarcade-store`), for execution (`everarcade-engine`), or for the
//! command line and its output (the binary).
//!
//! Architecture invariants:
//! - an input is acknowledged only after the fdatasync covering its journal
//!   record, and a tick's record is journaled before the next tick begins;
//! - recovery and `replay-verify` are the same walk ([`replay::replay`]): the
//!   roots replay reaches must equal the recorded ones at every tick;
//! - after any failure that may have left memory ahead of the disk, a
//!   [`DurableWorld`] refuses further work until it is reopened;
//! - a world's state changes only through its node or through a holder of
//!   a world opened by the front door with its lock.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod audit;
mod binding;
pub mod catch_up;
mod diff;
mod durable;
mod error;
pub mod follow;
pub mod front_door;
pub mod incident;
pub mod lineage;
pub mod repair;
pub mod replay;
pub mod upgrade;

pub use binding::{
    Bound, bind_package, bound_package, bound_package_root, check_binding, current_package_root,
};
pub use diff::{StateDiff, state_diff};
pub use durable::{CheckpointTaken, DurableWorld, Listening, Recovery, WorldConfig, genesis_file};
pub use error::{Divergence, ErrorClass, WorldError};
pub use front_door::{
    Arrival, Create, Entry, FrontDoor, Keys, Lock, Opened, Step, Way, world_exists,
};

/// The runtime version recorded in `genesis.json` (the workspace version).
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");
