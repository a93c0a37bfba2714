//! The world node: one durable world behind a live tick loop, signed input
//! admission over HTTP, and the admin plane (docs/HTTP.md; docs/OPERATIONS.md,
//! "Running a node").
//!
//! It is responsible for the process's lifetime around a world: the startup
//! order (fail fast, before any listener opens), the tick loop at the
//! manifest's rate, group-committed admission (an input is answered `202`
//! only once it is durable), readiness, metrics, hardening limits and a
//! graceful shutdown. It is not responsible for execution (`everarcade-engine`),
//! bytes on disk (`everarcade-store`) or recovery (`everarcade-world`), and it
//! knows nothing of the command line (the binary parses flags into a
//! [`config::NodeConfig`]).
//!
//! Architecture invariants:
//! - one thread, the world actor ([`actor`]), owns the world; HTTP handlers
//!   only send it messages, so admission order is the order the actor
//!   receives them;
//! - the wall clock paces ticks and measures latency, and never reaches a
//!   root: a tick's inputs are exactly those journaled for it;
//! - every non-2xx response is the error envelope of [`error::ApiError`].

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod actor;
pub mod audit;
pub mod config;
pub mod error;
pub mod follow;
pub mod http;
pub mod jetstream;
pub mod launch;
pub mod metrics;
pub mod registry;
pub mod server;
pub mod signatures;
pub mod tls;
pub mod usage;

pub use config::NodeConfig;
pub use error::{ApiError, NodeError};
pub use server::{Node, NodeSpec};
