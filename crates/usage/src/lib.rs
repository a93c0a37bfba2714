//! Signed usage reports: what one world consumed over a window of ticks.
//!
//! - [`report`]: the report, its canonical encoding (docs/FORMATS.md §Usage
//!   report), its digest and the operator's signature;
//! - [`count`]: the window counted from the journal (read, never re-executed);
//! - [`backlog`]: reports stored under the world (`usage/`) before anything
//!   is sent, acknowledgements per sink, damaged files quarantined and rebuilt;
//! - [`sink`]: HTTP(S), Redis stream and directory sinks, idempotent by digest;
//! - [`deliver`]: producing reports and delivering the backlog with capped,
//!   jittered exponential backoff.
//!
//! This crate is *not* responsible for when reports are made (the node's
//! timer, or the `usage report` command), for execution (nothing here
//! re-executes a tick: every number the journal proves is read from its tick
//! and input records), nor for keys (it signs through the store's
//! [`everarcade_store::keys::OperatorKeys`]).
//!
//! Architecture invariants:
//! - nothing a report carries feeds a root; the jitter of retries comes
//!   from the OS and touches only delivery timing;
//! - a report is on disk, durable and 0600, before any sink sees it, and it
//!   leaves a sink's backlog only after that sink acknowledged it;
//! - nothing is deleted: damaged report files move to the world's
//!   `quarantine/` and their window is rebuilt from the journal;
//! - every decoder bounds every length and never panics on outside bytes.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod backlog;
pub mod count;
pub mod deliver;
pub mod report;
pub mod sink;

pub use backlog::{Backlog, BacklogError, Scan};
pub use count::{CountError, Resume, WindowCount, count_window, count_window_from, journal_head};
pub use deliver::{Counters, DeliveryConfig, Pending, ProduceError, Producer, backoff, deliver};
pub use report::{Counted, Metadata, Outcomes, ReportError, SignedReport, UsageReport};
pub use sink::{Sink, SinkConfig, SubmitError};
