//! The usage crate's tests: the encoding and its vector, counting against a
//! model of a forged journal, the backlog's quarantine and rebuild, the
//! sinks against a real HTTP server, a real Redis and a directory, and the
//! delivery loop's retries.

mod backlog;
mod common;
mod count;
mod deliver;
mod report;
mod sinks;
