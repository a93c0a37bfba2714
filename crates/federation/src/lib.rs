//! Replicated worlds (docs/FEDERATION.md): one node holds input authority
//! for a world, followers replicate it.
//!
//! - [`compare`]: a local journal against a peer's record stream, checksum
//!   by checksum and root by root (`federation compare`);
//! - [`wire`]: a journal record as carried between hosts (its exact journal
//!   bytes and its ordinal) and a position in a journal;
//! - [`role`]: a node's role for a world, kept in one place;
//! - [`stream`]: the record stream's framing and the hand-off of carried
//!   records to a follower's world (`DurableWorld::apply_records`);
//! - [`replicate`]: the two seams a node plugs transports into: where an
//!   authority's durable records go ([`replicate::Replicator`]) and where a
//!   follower's records come from ([`replicate::RecordSource`]);
//! - [`http`]: the embedded transport (a follower pulls the authority's
//!   record stream from its node);
//! - [`nats`]: the JetStream transport (a world's records as one stream,
//!   published with the fencing token, consumed by durable pull consumers);
//! - [`lease`]: the authority lease in a JetStream key-value bucket;
//! - [`fence`]: a fenced authority's unreplicated journal suffix, moved to
//!   the quarantine.
//!
//! This crate is *not* responsible for the record encoding, the chain or
//! verification (`everarcade-store`, `everarcade-world` and
//! `everarcade-audit` own them and are reused here), nor for the node's
//! HTTP surface (`everarcade-node`).
//!
//! Architecture invariants:
//! - a follower journals exactly the authority's record bytes, after checking
//!   them as replay does and re-executing each tick: its journal's chain is
//!   the authority's chain;
//! - an authority hands a record to a transport only once it is durable in
//!   its own journal.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod compare;
pub mod error;
pub mod fence;
pub mod http;
pub mod lease;
pub mod nats;
pub mod replicate;
pub mod role;
pub mod stream;
pub mod wire;

pub use error::FederationError;
pub use replicate::{DurableReports, RecordSource, ReplicationWait, Replicator};
pub use role::Role;
pub use wire::{Position, WireRecord};
