//! Integration tests of everarcade-store, in one test binary to keep link
//! time low. Every random choice comes from a fixed seed, so any failure
//! reproduces exactly.

mod bit_flips;
mod checkpoints;
mod common;
mod fixtures;
mod forgery;
mod fuzz_corpus;
mod journal;
mod layout;
mod lock;
mod meta;
mod sim;
mod torn;
