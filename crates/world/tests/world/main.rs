//! Integration tests of the durable world on the simulated disk: crash
//! consistency at random syncs, lost unsynced writes, fsync failures,
//! forged journals, checkpoint fallback, torn tails, mid-file corruption and
//! package binding. One test binary, so wasmtime is linked once; the sample
//! package is compiled once and shared.

mod binding;
mod catch_up;
mod check;
mod checkpoints;
mod common;
mod corruption;
mod crash;
mod follow;
mod forgery;
mod front_door;
mod lost_writes;
mod poison;
mod torn_tail;
