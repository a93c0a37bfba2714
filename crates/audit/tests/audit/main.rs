//! Proof bundles, player proofs, the accumulator and archive recovery,
//! against real worlds of the sample package on the real disk (each test in
//! a temporary runtime root of its own).

mod archive;
mod bundles;
mod common;
mod fuzz_corpus;
mod proofs;
mod vectors;
