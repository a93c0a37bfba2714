//! Fuzz target `checkpoint`: the input as a checkpoint file, then again with
//! its trailing checksum recomputed; whatever decodes must re-encode to the
//! input.
//!
//! The body is `everarcade_store::fuzz::checkpoint`, which the store's tests
//! also run over the committed corpus (`fuzz/corpus/checkpoint/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| everarcade_store::fuzz::checkpoint(data));
