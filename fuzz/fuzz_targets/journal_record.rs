//! Fuzz target `journal_record`: the input as a record body of each kind
//! (genesis, inputs, tick); whatever decodes must re-encode to the input.
//!
//! The body is `everarcade_store::fuzz::journal_record`, which the store's
//! tests also run over the committed corpus (`fuzz/corpus/journal_record/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| everarcade_store::fuzz::journal_record(data));
