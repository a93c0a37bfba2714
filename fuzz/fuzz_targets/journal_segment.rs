//! Fuzz target `journal_segment`: the input as segment 1 of a journal on a
//! simulated disk, read whole with `JournalReader` and every record decoded;
//! then again with the header checksum and every record's chain link and
//! checksum repaired, so that mutations reach the record decoders.
//!
//! The body is `everarcade_store::fuzz::journal_segment`, which the store's
//! tests also run over the committed corpus (`fuzz/corpus/journal_segment/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| everarcade_store::fuzz::journal_segment(data));
