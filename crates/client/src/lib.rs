//! A client of the EverArcade world node's HTTP API (docs/HTTP.md).
//!
//! This crate *is* responsible for speaking the node's API: encoding signed
//! envelopes as JSON or binary bodies, reading every answer into typed
//! values, turning the node's `{"error":{"code","message"}}` bodies into
//! [`ClientError::Node`] with the HTTP status and stable code, and checking
//! what can be checked without trusting the node: a state value's proof
//! against the state root it came with ([`Client::state`]) and a tick's
//! receipts against its receipt root ([`Client::tick`]). [`load`] is a
//! bounded load generator over the same client.
//!
//! It is deliberately *not* responsible for signing keys or nonces (callers
//! sign with `everarcade_protocol::Envelope::sign` and choose nonces), for
//! deciding whether a state root is the right one (compare it with a root you
//! trust), for retries (a refusal is returned, never retried: a retried
//! input after a lost answer could be admitted twice under a new nonce).
//! It speaks TLS to `https://` nodes, trusting exactly the certificates it
//! is given ([`Trust`]), never a system root store.
//!
//! The HTTP stack is hyper 1 with hyper-util's pooled client on tokio; calls
//! are async, and [`BlockingClient`] wraps them for code without a runtime.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod api;
mod blocking;
mod client;
pub mod error;
pub mod load;
mod tls;

pub use api::{
    Ack, Authority, BackupTaken, Encoding, Incident, Refusal, Status, TickInfo, Version,
};
pub use blocking::BlockingClient;
pub use client::{
    ANSWER_BYTES_MAX, CHECKPOINT_ANSWER_BYTES_MAX, CHECKPOINT_TICK_HEADER, CheckpointFile, Client,
    HEAD_TICK_HEADER, IDLE_CONNECTIONS_MAX, ProvenValue, READY_POLL_INTERVAL, RecordsPage,
    RecordsQuery, TIMEOUT_DEFAULT, verify_state_answer,
};
pub use error::ClientError;
pub use tls::{PEM_FILE_BYTES_MAX, Trust};
